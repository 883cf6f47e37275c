//! Small hand-written cases under `scenarios/cases/<name>/`, embedded in the
//! binary: each has `stream.ndjson`, `args` (one line of `merge` options),
//! files the options refer to, `expected.json` (the canonical report,
//! pretty-printed) and a `README.md` that explains every verdict.

use tracemerge_records::{parse_duration, Config, Record};

/// One hand-written case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub name: &'static str,
    /// The record stream (NDJSON).
    pub stream: &'static str,
    /// One line of `merge` options, e.g. `--ttl 10s --strategy quorum:3:2`.
    pub args: &'static str,
    /// Files the options refer to (e.g. a quarantine list): (file name, contents).
    pub files: Vec<(&'static str, &'static str)>,
    /// The expected report, `Report::to_pretty_json` form.
    pub expected: &'static str,
    /// What the case is for and why each result is what it is.
    pub readme: &'static str,
}

macro_rules! case {
    ($name:literal $(, $file:literal)*) => {
        Case {
            name: $name,
            stream: include_str!(concat!("../cases/", $name, "/stream.ndjson")),
            args: include_str!(concat!("../cases/", $name, "/args")),
            files: vec![$(($file, include_str!(concat!("../cases/", $name, "/", $file)))),*],
            expected: include_str!(concat!("../cases/", $name, "/expected.json")),
            readme: include_str!(concat!("../cases/", $name, "/README.md")),
        }
    };
}

/// Every hand-written case; `shop` (the demo) comes first.
pub fn cases() -> Vec<Case> {
    vec![
        case!("shop", "quarantine.txt"),
        case!("plugins"),
        case!("replay"),
    ]
}

/// The case called `name`.
pub fn case(name: &str) -> Option<Case> {
    cases().into_iter().find(|c| c.name == name)
}

impl Case {
    /// The records of the stream, in order; errors name the line.
    pub fn records(&self) -> Result<Vec<Record>, String> {
        self.stream
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                Record::from_json(l).map_err(|e| format!("{}: line {}: {e}", self.name, i + 1))
            })
            .collect()
    }

    /// The options of `args` as words.
    pub fn arg_words(&self) -> Vec<&'static str> {
        self.args.split_whitespace().collect()
    }

    /// The configuration `args` describe (the `merge` options `--ttl`,
    /// `--lateness`, `--strategy`, `--min-coverage`, `--quarantine FILE`).
    pub fn config(&self) -> Result<Config, String> {
        let mut config = Config::default();
        let words = self.arg_words();
        let mut i = 0;
        while i < words.len() {
            let opt = words[i];
            let value = *words
                .get(i + 1)
                .ok_or_else(|| format!("{}: {opt} needs a value", self.name))?;
            match opt {
                "--ttl" | "--lateness" | "--min-coverage" => {
                    let ms =
                        parse_duration(value).map_err(|e| format!("{}: {opt}: {e}", self.name))?;
                    match opt {
                        "--ttl" => config.ttl = ms,
                        "--lateness" => config.lateness = ms,
                        _ => config.min_coverage = ms,
                    }
                }
                "--strategy" => config.strategy = value.parse().map_err(|e| format!("{e}"))?,
                "--quarantine" => {
                    let text = self
                        .files
                        .iter()
                        .find(|(f, _)| *f == value)
                        .ok_or_else(|| format!("{}: no file {value}", self.name))?
                        .1;
                    config
                        .add_quarantine(text)
                        .map_err(|e| format!("{}: {value}: {e}", self.name))?;
                }
                _ => return Err(format!("{}: unknown option {opt}", self.name)),
            }
            i += 2;
        }
        Ok(config)
    }
}

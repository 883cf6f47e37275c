//! Small hand-written cases under `scenarios/cases/<name>/`, embedded in the
//! binary: each has `stream.ndjson`, `args` (one line of `merge` options),
//! files the options refer to, `expected.json` (the canonical report,
//! pretty-printed) and a `README.md` that explains every verdict.

use std::path::Path;

use tracemerge_records::args::{ConfigArgs, ConfigError};
use tracemerge_records::{Config, Record, RecordError};

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
    pub fn records(&self) -> Result<Vec<Record>, CaseError> {
        self.stream
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                Record::from_json(l).map_err(|source| CaseError::Record {
                    case: self.name,
                    line: i + 1,
                    source,
                })
            })
            .collect()
    }

    /// The options of `args` as words.
    pub fn arg_words(&self) -> Vec<&'static str> {
        self.args.split_whitespace().collect()
    }

    /// The configuration `args` describe: the `merge` options `--ttl`,
    /// `--lateness`, `--strategy`, `--min-coverage`, `--quarantine FILE`, read
    /// by the command's own parser ([`ConfigArgs`]); FILE is one of `files`.
    pub fn config(&self) -> Result<Config, CaseError> {
        let args = ConfigArgs::from_words(self.arg_words()).map_err(|source| CaseError::Args {
            case: self.name,
            source,
        })?;
        args.config(|path| {
            self.files
                .iter()
                .find(|(f, _)| Path::new(f) == path)
                .map(|(_, text)| text.to_string())
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file in the case")
                })
        })
        .map_err(|source| CaseError::Config {
            case: self.name,
            source,
        })
    }
}

/// A hand-written case that cannot be read; each names the case.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// A line of `stream.ndjson` that is not a record (1-based).
    #[error("{case}: line {line}: {source}")]
    Record {
        case: &'static str,
        line: usize,
        source: RecordError,
    },
    /// `args` that the `merge` options parser refuses.
    #[error("{case}: {source}")]
    Args {
        case: &'static str,
        source: clap::Error,
    },
    /// A file `args` names that is missing from the case or wrong.
    #[error("{case}: {source}")]
    Config {
        case: &'static str,
        source: ConfigError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_errors_name_the_case_and_the_place() {
        let mut case = case("shop").unwrap();
        case.stream = "{\"type\":\"watermark\",\"at\":1}\n\nnot json\n";
        let err = case.records().unwrap_err();
        assert!(
            matches!(
                err,
                CaseError::Record {
                    case: "shop",
                    line: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("shop: line 3: "), "{err}");

        case.files.clear();
        let err = case.config().unwrap_err();
        assert!(
            matches!(&err, CaseError::Config { case: "shop", source: ConfigError::Read { path, .. } } if path == Path::new("quarantine.txt")),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "shop: quarantine.txt: no such file in the case"
        );

        case.args = "--ttl";
        let err = case.config().unwrap_err();
        assert!(
            matches!(err, CaseError::Args { case: "shop", .. }),
            "{err:?}"
        );
    }
}

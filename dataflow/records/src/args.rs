//! The command-line options that make a [`Config`] (`--ttl`, `--lateness`,
//! `--strategy`, `--quarantine`, `--min-coverage`): one parser for the
//! `merge`/`replay`/`watch` commands and the scenarios' `args` files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{parse_duration, Config, QuarantineError, Strategy, Time};

/// The options of [`Config`], as `tracemerge merge` takes them.
#[derive(clap::Args, Clone, Debug)]
pub struct ConfigArgs {
    /// How long an observation stays live. A duration: a whole number and ms, s, m or h (250ms, 10s, 10m, 2h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub ttl: Time,
    /// How far behind the watermark a record may arrive. A duration: a whole number and ms, s, m or h (250ms, 10s, 10m, 2h).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub lateness: Time,
    /// union, static or quorum:HITS:SOURCES.
    #[arg(long, default_value = "union")]
    pub strategy: Strategy,
    /// Symbols (one per line) or edges (`caller -> callee`) never accepted.
    #[arg(long)]
    pub quarantine: Option<PathBuf>,
    /// How long a target must be covered before it counts as unobserved. A duration: a whole number and ms, s, m or h (250ms, 10s, 10m, 2h).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub min_coverage: Time,
}

impl ConfigArgs {
    /// Parses these options alone from `words` (no program name).
    pub fn from_words<I, T>(words: I) -> Result<ConfigArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        use clap::{Args, FromArgMatches};
        let command = ConfigArgs::augment_args(clap::Command::new("merge").no_binary_name(true));
        ConfigArgs::from_arg_matches(&command.try_get_matches_from(words)?)
    }

    /// The configuration; `read` gives the text of the quarantine file
    /// (errors name the file).
    pub fn config(
        &self,
        read: impl FnOnce(&Path) -> std::io::Result<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config {
            ttl: self.ttl,
            lateness: self.lateness,
            strategy: self.strategy,
            min_coverage: self.min_coverage,
            ..Config::default()
        };
        if let Some(path) = &self.quarantine {
            let text = read(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            config
                .add_quarantine(&text)
                .map_err(|source| ConfigError::Quarantine {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(config)
    }
}

/// A [`Config`] that the options cannot make: a file they name cannot be
/// read or is wrong. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The quarantine file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The quarantine file has a bad line.
    #[error("{}: {source}", path.display())]
    Quarantine {
        path: PathBuf,
        source: QuarantineError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_file() {
        let args = ConfigArgs::from_words(["--quarantine", "q.txt"]).unwrap();
        let err = args.config(|_| Ok("a ->\n".into())).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Quarantine { path, source: QuarantineError::HalfEdge { line: 1 } } if path == Path::new("q.txt")),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "q.txt: line 1: edge needs caller -> callee"
        );
        let err = args
            .config(|_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)))
            .unwrap_err();
        assert!(matches!(&err, ConfigError::Read { path, .. } if path == Path::new("q.txt")));
        assert!(err.to_string().starts_with("q.txt: "), "{err}");
    }
}

//! What the end-to-end tests of the `tracemerge` binary share: running it,
//! scratch directories, checking its exit, writing record streams.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tracemerge_records::Record;

pub const BIN: &str = env!("CARGO_BIN_EXE_tracemerge");

/// A fresh directory for one test (test binaries differ in process id).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracemerge-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn tracemerge(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("runs")
}

/// Runs the binary with `input` on its stdin.
pub fn tracemerge_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Asserts that the command succeeded, showing its stderr if not.
pub fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `command` (the binary or any other program); asserts that it
/// succeeded, showing its stderr if not, and returns its output.
pub fn run_ok(command: &mut Command) -> Output {
    let out = command.output().expect("runs");
    ok(&out);
    out
}

/// The JSON a successful command printed (a report).
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&ok(out).stdout).expect("report is JSON")
}

/// Writes `records` as an NDJSON stream; returns its text.
pub fn write_ndjson(file: &Path, records: &[Record]) -> String {
    let text: String = records.iter().map(|r| r.to_json() + "\n").collect();
    std::fs::write(file, &text).unwrap();
    text
}

//! The `probe` benchmark suite: cost of a probed call against the unprobed
//! program, drain throughput, and attach/detach time by function count.
//! Runs on a C program generated and built here with `cc` (root needed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::exact::{Config, Session};
use crate::ProbeError;

/// Why the benchmark could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// eBPF probing cannot run here (why not).
    #[error("{0}")]
    Unsupported(String),
    /// A file or directory that cannot be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A program that could not be started.
    #[error("running {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// `cc` failed on the generated or copied source file.
    #[error("cc failed on {}", file.display())]
    Compile { file: PathBuf },
    /// A timing run printed something other than ns per call.
    #[error("{}: bad output {output:?}", exe.display())]
    BadOutput { exe: PathBuf, output: String },
    /// The benchmark program exited with an error.
    #[error("benchmark program {} failed ({status})", exe.display())]
    ProgramFailed {
        exe: PathBuf,
        status: std::process::ExitStatus,
    },
    /// Fewer functions attached than asked for.
    #[error("attached {attached} of {asked} functions")]
    Attached { attached: usize, asked: usize },
    /// The collector failed.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the generated program is built (reused when present).
    pub work_dir: PathBuf,
    /// Calls per timing run of the per-call cost.
    pub calls: u64,
    /// Timing runs per variant (the median is reported).
    pub repeats: usize,
    /// Function counts for attach/detach timing.
    pub attach_sizes: Vec<usize>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            work_dir: std::env::temp_dir().join("tracemerge-probe-bench"),
            calls: 2_000_000,
            repeats: 3,
            attach_sizes: vec![100, 1_000, 10_000],
        }
    }
}

/// Writes and compiles a program with `n` trivial functions `f0…f{n-1}`:
/// * `prog all`: calls every `fI` once from `main` (n distinct edges);
/// * `prog wait`: prints `ready`, waits for a line on stdin, then `all`.
pub fn generate_program(dir: &Path, n: usize) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // Bump the suffix when the generated source changes (the build is cached).
    let exe = dir.join(format!("many{n}-v3"));
    if exe.is_file() {
        return Ok(exe);
    }
    let mut c = String::with_capacity(n * 64 + 2048);
    c.push_str("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <time.h>\n");
    c.push_str("volatile long sink;\n");
    for i in 0..n {
        c.push_str(&format!(
            "__attribute__((noinline)) void f{i}(void) {{ sink += {i}; }}\n"
        ));
    }
    c.push_str("void (*const table[])(void) = {");
    for i in 0..n {
        c.push_str(&format!("f{i},"));
    }
    c.push_str(
        r#"};
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        char line[16];
        printf("ready\n"); fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) return 3;
    }
    for (unsigned long i = 0; i < sizeof table / sizeof table[0]; i++) table[i]();
    return 0;
}
"#,
    );
    let src = dir.join(format!("many{n}.c"));
    std::fs::write(&src, c).map_err(io(&src))?;
    let tmp = dir.join(format!("many{n}.tmp{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O1", "-fno-omit-frame-pointer", "-fno-inline", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .map_err(|source| BenchError::Spawn {
            program: "cc".into(),
            source,
        })?;
    if !status.success() {
        return Err(BenchError::Compile { file: src });
    }
    std::fs::rename(&tmp, &exe).map_err(io(&exe))?;
    Ok(exe)
}

fn ns_per_call(exe: &Path, first: &str, second: &str) -> Result<f64, BenchError> {
    let out = Command::new(exe)
        .args([first, second])
        .output()
        .map_err(|source| BenchError::Spawn {
            program: exe.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| BenchError::BadOutput {
        exe: exe.to_path_buf(),
        output: text.trim().to_string(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Builds tests/programs/entries.c (one function per kind of entry).
pub fn build_entries_program(dir: &Path) -> Result<PathBuf, BenchError> {
    const SOURCE: &str = include_str!("../tests/programs/entries.c");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let src = dir.join("entries.c");
    std::fs::write(&src, SOURCE).map_err(io(&src))?;
    let exe = dir.join("entries");
    let status = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .map_err(|source| BenchError::Spawn {
            program: "cc".into(),
            source,
        })?;
    if !status.success() {
        return Err(BenchError::Compile { file: src });
    }
    Ok(exe)
}

/// Per-call cost of probing `function` of the entries program: median ns
/// per call unprobed and probed, and whether every call was counted.
fn call_cost(
    exe: &Path,
    function: &str,
    calls: u64,
    repeats: usize,
    kind: &str,
) -> Result<serde_json::Value, BenchError> {
    let time = || -> Result<f64, BenchError> {
        Ok(median(
            (0..repeats)
                .map(|_| ns_per_call(exe, &calls.to_string(), function))
                .collect::<Result<_, _>>()?,
        ))
    };
    let plain = time()?;
    let mut config = Config::new(exe);
    config.functions = Some(vec![function.into()]);
    let mut session = Session::attach(&config)?;
    // The program's own run time, as the kernel measures it.
    let stats_sysctl = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_before = std::fs::read_to_string(stats_sysctl).unwrap_or_default();
    let _ = std::fs::write(stats_sysctl, "1");
    let probed = time()?;
    let prog_stats = session.program_stats();
    let _ = std::fs::write(stats_sysctl, stats_before.trim());
    let records = session.finish()?;
    let counted: u64 = records
        .iter()
        .filter_map(|r| match r {
            tracemerge_records::Record::Edge(e) if e.callee == function => Some(e.hits),
            _ => None,
        })
        .sum();
    Ok(json!({
        "function": function,
        "entry": kind,
        "unprobed_ns": (plain * 1e3).round() / 1e3,
        "probed_ns": (probed * 1e3).round() / 1e3,
        "cost_ns": ((probed - plain) * 1e3).round() / 1e3,
        "ratio": ((probed / plain) * 1e3).round() / 1e3,
        "calls_made": calls * repeats as u64,
        "calls_counted": counted,
        "bpf_program_ns": prog_stats
            .filter(|&(_, runs)| runs > 0)
            .map(|(ns, runs)| ((ns as f64 / runs as f64) * 1e3).round() / 1e3),
    }))
}

/// Per-call cost of `function` of the entries program with its nop entry
/// patched into a call of the in-process counting stub (`crate::patch`):
/// the program waits until the patch is in, then times its calls.
fn patched_call_cost(
    exe: &Path,
    function: &str,
    calls: u64,
    repeats: usize,
) -> Result<serde_json::Value, BenchError> {
    use std::io::{BufRead, BufReader, Write};
    let spawn_err = |source| BenchError::Spawn {
        program: exe.to_path_buf(),
        source,
    };
    let plain = median(
        (0..repeats)
            .map(|_| ns_per_call(exe, &calls.to_string(), function))
            .collect::<Result<_, _>>()?,
    );
    let mut times = Vec::new();
    let mut counted = 0u64;
    let mut lost = 0u64;
    for _ in 0..repeats {
        let mut child = Command::new(exe)
            .args([&calls.to_string(), function, "wait"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).map_err(spawn_err)?;
        let pid = child.id();
        let sites = crate::patch::sites(pid, exe, Some(&[function.to_string()]))?;
        let addrs: Vec<u64> = sites.iter().map(|s| s.1).collect();
        let mut patch = crate::patch::Patch::inject(pid, &addrs, crate::patch::DEFAULT_SLOTS)?;
        writeln!(child.stdin.as_mut().expect("piped")).map_err(spawn_err)?;
        line.clear();
        out.read_line(&mut line).map_err(spawn_err)?;
        let status = child.wait().map_err(spawn_err)?;
        if !status.success() {
            return Err(BenchError::ProgramFailed {
                exe: exe.to_path_buf(),
                status,
            });
        }
        times.push(line.trim().parse().map_err(|_| BenchError::BadOutput {
            exe: exe.to_path_buf(),
            output: line.trim().to_string(),
        })?);
        counted += patch.read().iter().map(|&(_, _, n)| n).sum::<u64>();
        lost += patch.lost();
    }
    let patched = median(times);
    Ok(json!({
        "function": function,
        "entry": "patched",
        "unprobed_ns": (plain * 1e3).round() / 1e3,
        "probed_ns": (patched * 1e3).round() / 1e3,
        "cost_ns": ((patched - plain) * 1e3).round() / 1e3,
        "ratio": ((patched / plain) * 1e3).round() / 1e3,
        "calls_made": calls * repeats as u64,
        "calls_counted": counted,
        "calls_lost": lost,
    }))
}

/// Attach and detach times for the first `n` functions of `exe`.
pub fn attach_detach(exe: &Path, n: usize) -> Result<(Duration, Duration, Duration), BenchError> {
    let mut config = Config::new(exe);
    let mut names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
    names.truncate(n);
    config.functions = Some(names);
    let mut session = Session::attach(&config)?;
    if session.functions().len() != n {
        return Err(BenchError::Attached {
            attached: session.functions().len(),
            asked: n,
        });
    }
    session.detach();
    let s = session.summary();
    Ok((s.load, s.attach, s.detach))
}

/// Runs the suite; the result is one JSON object (see the README).
pub fn run(options: &Options) -> Result<serde_json::Value, BenchError> {
    if let Some(why) = crate::unsupported() {
        return Err(BenchError::Unsupported(why));
    }
    let max = options
        .attach_sizes
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1000);
    let exe = generate_program(&options.work_dir, max)?;

    // Cost per probed call: a trivial function in a tight loop, probed vs
    // not, once per kind of entry (tests/programs/entries.c): the trap with
    // an emulated `push %rbp`, the trap with a single-stepped first
    // instruction, the 5-byte nop the kernel turns into a trampoline call,
    // and five one-byte nops (gcc -fpatchable-function-entry=5).
    let entries = build_entries_program(&options.work_dir)?;
    let repeats = options.repeats.max(1);
    let mut call = serde_json::Map::new();
    let kernel = crate::plan::KernelFeatures::running();
    for (key, function) in [
        ("emulated_push", "entry_push"),
        ("single_step", "entry_rip"),
        ("nop5", "entry_nop5"),
        ("nops_x5", "entry_nops"),
        ("endbr_push", "entry_endbr_push"),
    ] {
        let (plans, _) = crate::exact::plan(&entries, Some(&[function.to_string()]))?;
        let kind = plans.first().map(|p| p.kind.name()).unwrap_or("?");
        call.insert(
            key.into(),
            call_cost(&entries, function, options.calls, repeats, kind)?,
        );
    }
    // The same nops patched into a call of the in-process counter.
    for (key, function) in [
        ("patched_nop5", "entry_nop5"),
        ("patched_nops_x5", "entry_nops"),
    ] {
        call.insert(
            key.into(),
            patched_call_cost(&entries, function, options.calls, repeats)?,
        );
    }
    call.insert("kernel_optimizes_nop5".into(), json!(kernel.nop_probes));
    let cost = |k: &str| call.get(k)?.get("cost_ns")?.as_f64();
    let ratio =
        |a: &str, b: &str| -> Option<f64> { Some((cost(a)? / cost(b)? * 1e3).round() / 1e3) };
    let nop_vs_trap = json!({
        "nop5_over_single_step": ratio("nop5", "single_step"),
        "nop5_over_emulated": ratio("nop5", "emulated_push"),
        "emulated_over_single_step": ratio("emulated_push", "single_step"),
        "patched_nop5_over_single_step": ratio("patched_nop5", "single_step"),
        "patched_nop5_over_emulated": ratio("patched_nop5", "emulated_push"),
        "patched_nop5_over_nop5": ratio("patched_nop5", "nop5"),
        "patched_nops_x5_over_nops_x5": ratio("patched_nops_x5", "nops_x5"),
    });
    call.insert("ratios".into(), nop_vs_trap);

    // Drain throughput: every function called once from main → `max`
    // distinct edges in the kernel map, drained and named in one window.
    let mut config = Config::new(&exe);
    config.functions = Some((0..max).map(|i| format!("f{i}")).collect());
    let mut session = Session::attach(&config)?;
    let status = Command::new(&exe)
        .arg("all")
        .status()
        .map_err(|source| BenchError::Spawn {
            program: exe.clone(),
            source,
        })?;
    if !status.success() {
        return Err(BenchError::ProgramFailed { exe, status });
    }
    let started = Instant::now();
    let records = session.drain()?;
    let drain = started.elapsed();
    let edges = records
        .iter()
        .filter(|r| matches!(r, tracemerge_records::Record::Edge(_)))
        .count();
    drop(session);

    let mut attach = Vec::new();
    for &n in &options.attach_sizes {
        let (load, a, d) = attach_detach(&exe, n)?;
        attach.push(json!({
            "functions": n,
            "load_ms": ms(load),
            "attach_ms": ms(a),
            "detach_ms": ms(d),
            "attach_plus_detach_ms": ms(a + d),
        }));
    }
    Ok(json!({
        "suite": "probe",
        "call": call,
        "drain": {
            "edges": edges,
            "ms": ms(drain),
            "records_per_s": (edges as f64 / drain.as_secs_f64()).round(),
        },
        "attach": attach,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A work directory that cannot be made is an I/O error naming it.
    #[test]
    fn an_unusable_work_dir_is_named() {
        let file =
            std::env::temp_dir().join(format!("tracemerge-bench-file-{}", std::process::id()));
        std::fs::write(&file, "not a directory").unwrap();
        let dir = file.join("sub");
        let err = generate_program(&dir, 1).unwrap_err();
        assert!(
            matches!(&err, BenchError::Io { path, .. } if *path == dir),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(&format!("{}: ", dir.display())),
            "{err}"
        );
        let err = build_entries_program(&dir).unwrap_err();
        assert!(
            matches!(&err, BenchError::Io { path, .. } if *path == dir),
            "{err:?}"
        );
        let _ = std::fs::remove_file(&file);
    }
}

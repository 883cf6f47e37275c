//! `research`: static call graphs of real C code bases measured against
//! what really ran. Lua (from crate `lua-src`) and zlib (from `libz-sys`)
//! are each built twice with gcc: with `-fcallgraph-info` (the static
//! graph; this binary runs under `tracemerge probe exact`) and with
//! `-finstrument-functions` plus a small tracer (an exact ground truth of
//! call edges). `tracemerge eval` measures the graph against the probe's
//! edges; the probe's edges are checked against the ground truth; an
//! LLVM build of Lua (`opt -passes=print-callgraph`) shows how the two
//! compilers' graphs differ. Everything runs through the `tracemerge`
//! binary, as a researcher would.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::{skipped, BenchError};

/// What the suite runs.
#[derive(Clone, Debug)]
pub struct ResearchPlan {
    /// The `tracemerge` binary (`probe`, `convert`, `eval`); `None` skips.
    pub tracemerge: Option<PathBuf>,
    /// Iterations of the Lua workload's loops.
    pub lua_size: u32,
    /// Lua source files the zlib program compresses (all when `None`).
    pub zlib_files: Option<usize>,
    /// Also build Lua with clang and compare the LLVM graph.
    pub llvm: bool,
}

/// The suite's own files (drivers, tracer, workload, vendor manifest).
fn research_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("research")
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a command in `dir`; its stdout, or an error with its stderr.
fn run_in(
    dir: &Path,
    program: &str,
    args: &[String],
    env: &[(&str, String)],
) -> Result<Vec<u8>, BenchError> {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .output()
        .map_err(|source| BenchError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(BenchError::Failed {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: tail,
        });
    }
    Ok(out.stdout)
}

/// Source directories of the vendoring crates, from `cargo metadata` on
/// the suite's manifest (which fetches the pinned crates if needed).
fn vendored_sources() -> Result<(PathBuf, PathBuf), BenchError> {
    let manifest = research_dir().join("Cargo.toml");
    let out = run_in(
        &research_dir(),
        "cargo",
        &[
            "metadata".into(),
            "--format-version".into(),
            "1".into(),
            "--manifest-path".into(),
            manifest.display().to_string(),
        ],
        &[],
    )?;
    let meta: Value = serde_json::from_slice(&out).map_err(|source| BenchError::Json {
        what: "cargo metadata".into(),
        source,
    })?;
    let crate_dir = |name: &'static str| -> Result<PathBuf, BenchError> {
        meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .and_then(|p| p["manifest_path"].as_str())
            .and_then(|m| Path::new(m).parent().map(Path::to_path_buf))
            .ok_or(BenchError::MissingCrate { name })
    };
    Ok((
        crate_dir("lua-src")?.join("lua-5.4.9"),
        crate_dir("libz-sys")?.join("src/zlib"),
    ))
}

/// The `.c` files directly in `dir`, sorted.
fn c_files(dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(BenchError::io(dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    files.sort();
    Ok(files)
}

/// Functions of an ELF by address range, from `nm -n -S`.
struct Symbols(Vec<(u64, u64, String)>);

impl Symbols {
    fn of(binary: &Path) -> Result<Symbols, BenchError> {
        let out = run_in(
            binary.parent().unwrap_or(Path::new(".")),
            "nm",
            &[
                "-n".into(),
                "-S".into(),
                "--defined-only".into(),
                binary.display().to_string(),
            ],
            &[],
        )?;
        let text = String::from_utf8_lossy(&out);
        let mut symbols = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [addr, size, kind, name] = fields.as_slice() {
                if matches!(*kind, "T" | "t" | "W" | "w") {
                    let number = |s: &str| {
                        u64::from_str_radix(s, 16).map_err(|source| BenchError::NmLine {
                            line: line.to_string(),
                            source,
                        })
                    };
                    let (addr, size) = (number(addr)?, number(size)?);
                    symbols.push((addr, size, name.to_string()));
                }
            }
        }
        Ok(Symbols(symbols))
    }

    fn function_at(&self, address: u64) -> Option<&str> {
        let i = self.0.partition_point(|s| s.0 <= address).checked_sub(1)?;
        let (start, size, name) = &self.0[i];
        (address < start + size).then_some(name.as_str())
    }
}

/// Call edges from the tracer's dump: (caller, callee) by name, both in
/// the program.
fn ground_truth(dump: &Path, binary: &Path) -> Result<BTreeSet<(String, String)>, BenchError> {
    let symbols = Symbols::of(binary)?;
    let text = std::fs::read_to_string(dump).map_err(BenchError::io(dump))?;
    let mut edges = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["dropped", n] if *n != "0" => {
                return Err(BenchError::TracerOverflow {
                    path: dump.to_path_buf(),
                    dropped: n.to_string(),
                })
            }
            ["dropped", _] => {}
            [site, function, _count] => {
                let parse = |s: &str| {
                    u64::from_str_radix(s, 16).map_err(|source| BenchError::TracerNumber {
                        path: dump.to_path_buf(),
                        line: i + 1,
                        source,
                    })
                };
                let (site, function) = (parse(site)?, parse(function)?);
                // The call site is the return address: the call is just before it.
                let caller = symbols.function_at(site.saturating_sub(1));
                let callee = symbols.function_at(function);
                if let (Some(caller), Some(callee)) = (caller, callee) {
                    edges.insert((caller.to_string(), callee.to_string()));
                }
            }
            _ => {
                return Err(BenchError::TracerLine {
                    path: dump.to_path_buf(),
                    line: i + 1,
                })
            }
        }
    }
    Ok(edges)
}

/// The `edge` records of an NDJSON stream, as (caller, callee).
fn probe_edges(stream: &Path) -> Result<BTreeSet<(String, String)>, BenchError> {
    let text = std::fs::read_to_string(stream).map_err(BenchError::io(stream))?;
    let mut edges = BTreeSet::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).map_err(|source| json_error(stream, source))?;
        if v["type"] == "edge" {
            if let (Some(a), Some(b)) = (v["caller"].as_str(), v["callee"].as_str()) {
                edges.insert((a.to_string(), b.to_string()));
            }
        }
    }
    Ok(edges)
}

/// `graph` edges of a converted call graph.
fn graph_edges(stream: &Path) -> Result<BTreeSet<(String, String)>, BenchError> {
    let text = std::fs::read_to_string(stream).map_err(BenchError::io(stream))?;
    let mut edges = BTreeSet::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).map_err(|source| json_error(stream, source))?;
        for e in v["edges"].as_array().into_iter().flatten() {
            if let (Some(a), Some(b)) = (e[0].as_str(), e[1].as_str()) {
                edges.insert((a.to_string(), b.to_string()));
            }
        }
    }
    Ok(edges)
}

fn write_edges(
    path: &Path,
    artifact: &str,
    edges: &BTreeSet<(String, String)>,
) -> Result<(), BenchError> {
    let mut text = String::new();
    for (a, b) in edges {
        text.push_str(&json!({"type": "edge", "artifact": artifact, "caller": a, "callee": b, "at": 1, "source": "ground-truth"}).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).map_err(BenchError::io(path))
}

/// A JSON file (or line of one) that cannot be read.
fn json_error(path: &Path, source: serde_json::Error) -> BenchError {
    BenchError::Json {
        what: path.display().to_string(),
        source,
    }
}

fn eval_json(
    dir: &Path,
    tracemerge: &Path,
    inputs: &[String],
    artifact: &str,
    out: &str,
) -> Result<Value, BenchError> {
    let mut args = vec![
        "eval".to_string(),
        "--artifact".into(),
        artifact.into(),
        "-o".into(),
        out.into(),
    ];
    args.extend(inputs.iter().cloned());
    run_in(dir, &tracemerge.display().to_string(), &args, &[])?;
    let path = dir.join(out);
    let text = std::fs::read(&path).map_err(BenchError::io(&path))?;
    let v: Value = serde_json::from_slice(&text).map_err(|source| json_error(&path, source))?;
    Ok(v["artifacts"][0].clone())
}

/// The figures of one evaluated artifact that the table shows.
fn summary(e: &Value) -> Value {
    json!({
        "functions": e["functions"],
        "static_edges": e["static_edges"],
        "runtime_edges": e["runtime_edges"],
        "runtime_edges_known": e["runtime_edges_known"],
        "matched": e["matched"],
        "recall": e["recall"],
        "misses_by_class": e["misses_by_class"],
        "executed_statically_unreachable": e["executed_statically_unreachable"].as_array().map_or(0, Vec::len),
        "unexercised_static_edges": e["unexercised_static_edges"],
        "indirect_call_sites": e["indirect_call_sites"],
    })
}

struct Program<'a> {
    name: &'a str,
    include: PathBuf,
    sources: Vec<PathBuf>,
    /// Arguments of the workload run (relative to the build directory).
    workload: Vec<String>,
    env: Vec<(&'a str, String)>,
}

fn measure(
    program: &Program,
    plan: &ResearchPlan,
    tracemerge: &Path,
    work: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Value, BenchError> {
    let started = Instant::now();
    let dir = work.join(program.name);
    std::fs::create_dir_all(&dir).map_err(BenchError::io(&dir))?;
    let sources: Vec<String> = program
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let include = format!("-I{}", program.include.display());
    let name = program.name;

    // 1. The static graph (and the binary the probe watches).
    let t = Instant::now();
    let mut args: Vec<String> = vec![
        "-O0".into(),
        "-fcallgraph-info".into(),
        include.clone(),
        "-o".into(),
        name.into(),
    ];
    args.extend(sources.iter().cloned());
    args.push("-lm".into());
    run_in(&dir, "gcc", &args, &[])?;
    let build_seconds = t.elapsed().as_secs_f64();
    let mut ci_files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(BenchError::io(&dir))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".ci"))
        .collect();
    ci_files.sort();
    log(&format!(
        "research: {name}: built, {} call-graph files",
        ci_files.len()
    ));

    // 2. The ground truth: an instrumented build, same sources and flags.
    let truth_binary = format!("{name}-truth");
    let mut args: Vec<String> = vec![
        "-O0".into(),
        "-no-pie".into(),
        "-fno-pie".into(),
        "-finstrument-functions".into(),
        include.clone(),
        "-o".into(),
        truth_binary.clone(),
    ];
    args.extend(sources.iter().cloned());
    args.push(research_dir().join("tracer.c").display().to_string());
    args.push("-lm".into());
    run_in(&dir, "gcc", &args, &[])?;
    let mut env = program.env.clone();
    env.push((
        "TM_GROUND_TRUTH",
        dir.join("truth.txt").display().to_string(),
    ));
    run_in(
        &dir,
        &dir.join(&truth_binary).display().to_string(),
        &program.workload,
        &env,
    )?;
    let truth = ground_truth(&dir.join("truth.txt"), &dir.join(&truth_binary))?;
    write_edges(&dir.join("truth.ndjson"), name, &truth)?;

    // 3. The probe, on the static build, same workload.
    let t = Instant::now();
    let probe = match tracemerge_ebpf::unsupported() {
        Some(why) => Err(why),
        None => {
            let _lock = tracemerge_ebpf::lock::exclusive().map_err(BenchError::os("BPF lock"))?;
            let mut args: Vec<String> = vec![
                "probe".into(),
                "exact".into(),
                "--binary".into(),
                name.into(),
                "--artifact".into(),
                name.into(),
                "-o".into(),
                "probe.ndjson".into(),
                "--".into(),
                dir.join(name).display().to_string(),
            ];
            args.extend(program.workload.iter().cloned());
            run_in(&dir, &tracemerge.display().to_string(), &args, &program.env)?;
            Ok(probe_edges(&dir.join("probe.ndjson"))?)
        }
    };
    let probe_seconds = t.elapsed().as_secs_f64();

    // 4. The evaluation: against the probe's edges, and against the truth.
    let mut inputs = ci_files.clone();
    let vs_truth = {
        let mut i = inputs.clone();
        i.push("truth.ndjson".into());
        eval_json(&dir, tracemerge, &i, name, "eval-truth.json")?
    };
    let mut result = json!({
        "functions": vs_truth["functions"],
        "static_edges": vs_truth["static_edges"],
        "truth_edges": truth.len(),
        "against_truth": summary(&vs_truth),
        "build_seconds": crate::driver::sig(build_seconds),
    });
    match &probe {
        Ok(probe) => {
            inputs.push("probe.ndjson".into());
            let t = Instant::now();
            let vs_probe = eval_json(&dir, tracemerge, &inputs, name, "eval.json")?;
            let eval_seconds = t.elapsed().as_secs_f64();
            // Probe edges between the program's own functions.
            let functions: BTreeSet<&str> = truth
                .iter()
                .flat_map(|(a, b)| [a.as_str(), b.as_str()])
                .collect();
            let own: BTreeSet<(String, String)> = probe
                .iter()
                .filter(|(a, b)| !a.contains('!') && !a.starts_with('[') && !b.contains('!'))
                .cloned()
                .collect();
            let matching = own.intersection(&truth).count();
            result["runtime_edges"] = vs_probe["runtime_edges"].clone();
            result["probe"] = json!({
                "edges": probe.len(),
                "edges_in_program": own.len(),
                "matching_truth": matching,
                "only_probe": own.difference(&truth).take(20).map(|(a, b)| format!("{a} -> {b}")).collect::<Vec<_>>(),
                "only_probe_count": own.difference(&truth).count(),
                "only_truth_count": truth.difference(&own).count(),
                "only_truth": truth.difference(&own).take(20).map(|(a, b)| format!("{a} -> {b}")).collect::<Vec<_>>(),
                "truth_functions": functions.len(),
                "probe_seconds": crate::driver::sig(probe_seconds),
            });
            result["against_probe"] = summary(&vs_probe);
            result["recall"] = vs_probe["recall"].clone();
            result["misses_by_class"] = vs_probe["misses_by_class"].clone();
            result["eval_seconds"] = json!(crate::driver::sig(eval_seconds));
        }
        Err(why) => {
            result["probe"] = skipped(why.clone());
            result["recall"] = vs_truth["recall"].clone();
            result["misses_by_class"] = vs_truth["misses_by_class"].clone();
        }
    }

    // 5. The LLVM graph of the same sources.
    if plan.llvm && name == "lua" {
        result["llvm"] = llvm_variant(program, tracemerge, &dir, &ci_files, probe.is_ok())
            .unwrap_or_else(|e| json!({ "error": e.to_string() }));
    }
    result["pipeline_seconds"] = json!(crate::driver::sig(started.elapsed().as_secs_f64()));
    log(&format!(
        "research: {name}: recall {} in {:.1} s",
        result["recall"],
        started.elapsed().as_secs_f64()
    ));
    Ok(result)
}

/// The clang and opt of LLVM 19, when installed (Debian's `clang-19`, `llvm-19`).
pub fn llvm_tools() -> Option<(&'static str, &'static str)> {
    let clang = ["clang-19", "clang"]
        .into_iter()
        .find(|c| runs(c, &["--version"]))?;
    let opt = ["opt-19", "/usr/lib/llvm-19/bin/opt"]
        .into_iter()
        .find(|c| runs(c, &["--version"]))?;
    Some((clang, opt))
}

fn llvm_variant(
    program: &Program,
    tracemerge: &Path,
    dir: &Path,
    ci_files: &[String],
    with_probe: bool,
) -> Result<Value, BenchError> {
    let Some((clang, opt)) = llvm_tools() else {
        return Ok(skipped(
            "clang-19 and opt-19 (Debian llvm-19) are not installed",
        ));
    };
    let llvm_dir = dir.join("llvm");
    std::fs::create_dir_all(&llvm_dir).map_err(BenchError::io(&llvm_dir))?;
    let mut texts = Vec::new();
    for source in &program.sources {
        let stem = source
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let ll = format!("{stem}.ll");
        run_in(
            &llvm_dir,
            clang,
            &[
                "-O0".into(),
                "-S".into(),
                "-emit-llvm".into(),
                format!("-I{}", program.include.display()),
                "-o".into(),
                ll.clone(),
                source.display().to_string(),
            ],
            &[],
        )?;
        let out = Command::new(opt)
            .args(["-passes=print-callgraph", "-disable-output", &ll])
            .current_dir(&llvm_dir)
            .output()
            .map_err(|source| BenchError::Spawn {
                program: opt.to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(BenchError::ToolFailed {
                tool: opt.to_string(),
                input: ll,
            });
        }
        let text = llvm_dir.join(format!("{stem}.cg.txt"));
        std::fs::write(&text, &out.stderr).map_err(BenchError::io(&text))?;
        texts.push(text.display().to_string());
    }
    let name = program.name;
    let to_graph =
        |inputs: &[String], out: &str| -> Result<BTreeSet<(String, String)>, BenchError> {
            let mut args = vec![
                "convert".to_string(),
                "--artifact".into(),
                name.into(),
                "-o".into(),
                out.into(),
            ];
            args.extend(inputs.iter().cloned());
            run_in(dir, &tracemerge.display().to_string(), &args, &[])?;
            graph_edges(&dir.join(out))
        };
    let gcc_edges = to_graph(ci_files, "gcc-graph.ndjson")?;
    let clang_edges = to_graph(&texts, "clang-graph.ndjson")?;
    let mut inputs = texts.clone();
    inputs.push(
        if with_probe {
            "probe.ndjson"
        } else {
            "truth.ndjson"
        }
        .into(),
    );
    let e = eval_json(dir, tracemerge, &inputs, name, "eval-llvm.json")?;
    Ok(json!({
        "evaluated_against": if with_probe { "probe" } else { "truth" },
        "summary": summary(&e),
        "recall": e["recall"],
        "static_edges": clang_edges.len(),
        "gcc_static_edges": gcc_edges.len(),
        "common_edges": gcc_edges.intersection(&clang_edges).count(),
        "only_gcc": gcc_edges.difference(&clang_edges).count(),
        "only_clang": clang_edges.difference(&gcc_edges).count(),
        "only_clang_sample": clang_edges.difference(&gcc_edges).take(10).map(|(a, b)| format!("{a} -> {b}")).collect::<Vec<_>>(),
        "only_gcc_sample": gcc_edges.difference(&clang_edges).take(10).map(|(a, b)| format!("{a} -> {b}")).collect::<Vec<_>>(),
    }))
}

pub fn run(
    plan: &ResearchPlan,
    work_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Value, BenchError> {
    let Some(tracemerge) = &plan.tracemerge else {
        return Ok(skipped(
            "needs the tracemerge binary: run it as `tracemerge bench research`",
        ));
    };
    for (tool, args) in [
        ("gcc", "--version"),
        ("nm", "--version"),
        ("cargo", "--version"),
    ] {
        if !runs(tool, &[args]) {
            return Ok(skipped(format!("{tool} is not installed")));
        }
    }
    let (lua_dir, zlib_dir) = vendored_sources()?;
    let work = work_dir.join("research");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(BenchError::io(&work))?;
    let lua_sources = c_files(&lua_dir)?;
    let mut lua = lua_sources.clone();
    lua.push(research_dir().join("lua_host.c"));
    let mut zlib = c_files(&zlib_dir)?;
    zlib.push(research_dir().join("zlib_host.c"));
    // zlib compresses real files: Lua's sources.
    let inputs: Vec<String> = lua_sources
        .iter()
        .take(plan.zlib_files.unwrap_or(usize::MAX))
        .map(|p| p.display().to_string())
        .collect();
    let programs = [
        Program {
            name: "lua",
            include: lua_dir.clone(),
            sources: lua,
            workload: vec![research_dir().join("workload.lua").display().to_string()],
            env: vec![("TM_WORKLOAD_SIZE", plan.lua_size.to_string())],
        },
        Program {
            name: "zlib",
            include: zlib_dir.clone(),
            sources: zlib,
            workload: inputs,
            env: vec![],
        },
    ];
    let mut out = serde_json::Map::new();
    for program in &programs {
        let v =
            measure(program, plan, tracemerge, &work, log).map_err(|e| BenchError::Program {
                name: program.name.to_string(),
                source: Box::new(e),
            })?;
        out.insert(program.name.into(), v);
    }
    out.insert(
        "sources".into(),
        json!({"lua": lua_dir.display().to_string(), "zlib": zlib_dir.display().to_string()}),
    );
    Ok(Value::Object(out))
}

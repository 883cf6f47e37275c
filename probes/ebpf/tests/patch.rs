//! Patched entries (src/patch.rs): a program built with
//! `-fpatchable-function-entry=5` is patched while its threads run or
//! block, runs a known call pattern (threads, one indirect call site with
//! two callees, threads started while patched), and every call is counted
//! per (caller, callee) exactly;
//! after the restore its code equals the file's; a process that exits
//! while patched leaves its counts readable.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use tracemerge_ebpf::patch::{self, Patch};
use tracemerge_ebpf::symbolize::{file_id, Symbolizer};

const FUNCTIONS: [&str; 11] = [
    "args8",
    "vsum",
    "main",
    "leaf",
    "middle",
    "red",
    "blue",
    "dispatch",
    "spin",
    "worker",
    "late_worker",
];

/// Root is needed to ptrace and write another process's code; the lock
/// keeps probe runs apart.
fn root_or_skip(test: &str) -> Option<tracemerge_ebpf::testing::Exclusive> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        tracemerge_skip::skip(test, "not root (patching needs ptrace of another process)");
        return None;
    }
    Some(tracemerge_ebpf::testing::exclusive().expect("the probe lock file"))
}

fn program(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/patched.c");
    let out = dir.join("patched");
    common::cc(&src, &out, &["-fpatchable-function-entry=5", "-pthread"]);
    out
}

struct Running {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Running {
    fn start(prog: &Path, mode: &str) -> Running {
        let mut child = Command::new(prog)
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut r = Running { child, out };
        assert_eq!(r.line(), "ready");
        r
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn line(&mut self) -> String {
        let mut s = String::new();
        self.out.read_line(&mut s).unwrap();
        s.trim().to_string()
    }
    fn go(&mut self) {
        writeln!(self.child.stdin.as_mut().unwrap()).unwrap();
    }
    /// Reads "spins N": the spinner's calls of spin.
    fn spins(&mut self) -> u64 {
        let line = self.line();
        line.strip_prefix("spins ").unwrap().parse().unwrap()
    }
}

/// Patches every function of FUNCTIONS in the running program.
fn patch(prog: &Path, pid: u32) -> (Patch, Vec<String>, Symbolizer) {
    let wanted: Vec<String> = FUNCTIONS.map(String::from).to_vec();
    let sites = patch::sites(pid, prog, Some(&wanted)).unwrap();
    assert_eq!(sites.len(), FUNCTIONS.len(), "{sites:?}");
    let mut symbolizer = Symbolizer::new(Some(file_id(prog).unwrap()));
    // Read its maps now: they are gone once it has exited.
    assert!(symbolizer.refresh(pid));
    let addrs: Vec<u64> = sites.iter().map(|s| s.1).collect();
    let p = Patch::inject(pid, &addrs, patch::DEFAULT_SLOTS).unwrap();
    (p, sites.into_iter().map(|s| s.0).collect(), symbolizer)
}

fn add(
    edges: &mut BTreeMap<(String, String), u64>,
    p: &mut Patch,
    names: &[String],
    sym: &mut Symbolizer,
) {
    for (ret, site, n) in p.read() {
        let caller = sym.resolve(p.pid(), ret - 1);
        *edges.entry((caller, names[site].clone())).or_default() += n;
    }
}

/// The known pattern (the spinner's edge and the workers' start aside).
fn check(edges: &BTreeMap<(String, String), u64>, spins: u64) {
    let get = |a: &str, b: &str| edges.get(&(a.to_string(), b.to_string())).copied();
    assert_eq!(get("main", "middle"), Some(1000), "{edges:?}");
    assert_eq!(get("middle", "leaf"), Some(3000), "{edges:?}");
    assert_eq!(get("main", "dispatch"), Some(700), "{edges:?}");
    assert_eq!(get("dispatch", "red"), Some(300), "{edges:?}");
    assert_eq!(get("dispatch", "blue"), Some(400), "{edges:?}");
    assert_eq!(get("worker", "leaf"), Some(20_000), "{edges:?}");
    let of = |callee: &str| -> u64 {
        edges
            .iter()
            .filter(|((_, c), _)| c == callee)
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(get("late_worker", "leaf"), Some(2000), "{edges:?}");
    assert_eq!(get("main", "args8"), Some(1), "{edges:?}");
    assert_eq!(get("main", "vsum"), Some(1), "{edges:?}");
    // Threads started while patched run the patched code; those already
    // inside worker never enter it again.
    assert_eq!(of("late_worker"), 2, "{edges:?}");
    assert_eq!(of("worker"), 0, "{edges:?}");
    assert_eq!(of("leaf"), 25_000, "{edges:?}");
    // Patched while it ran: some of its calls came before; it made 1000
    // at least after.
    let spin = get("spinner", "spin").unwrap_or(0);
    assert!(
        spin >= 1000 && spin <= spins && of("spin") == spin,
        "{spin} of {spins}: {edges:?}"
    );
    // main itself was running, never called again.
    assert_eq!(of("main"), 0, "{edges:?}");
}

/// The program's executable mappings equal the file's bytes.
fn code_equals_file(pid: u32, prog: &Path) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let file = std::fs::read(prog).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut checked = 0;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || !f[1].contains('x') || Path::new(f[5]) != prog {
            continue;
        }
        let (a, b) = f[0].split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let offset = u64::from_str_radix(f[2], 16).unwrap() as usize;
        let len = ((b - a) as usize).min(file.len() - offset);
        let mut buf = vec![0; len];
        mem.seek(SeekFrom::Start(a)).unwrap();
        mem.read_exact(&mut buf).unwrap();
        assert!(buf == file[offset..offset + len], "code at {a:#x} differs");
        checked += len;
    }
    assert!(checked > 0, "no code mapping of {}", prog.display());
}

#[test]
fn patched_entries_count_every_call_exactly() {
    let Some(_guard) = root_or_skip("patched_entries_count_every_call_exactly") else {
        return;
    };
    let dir = common::scratch("patch");
    let prog = program(&dir);
    for run in 0..3 {
        let mut r = Running::start(&prog, "stay");
        let (mut p, names, mut sym) = patch(&prog, r.pid());
        let mut edges = BTreeMap::new();
        add(&mut edges, &mut p, &names, &mut sym);
        r.go();
        // A read while it runs: the next one gives the growth since.
        std::thread::sleep(std::time::Duration::from_millis(run * 2));
        add(&mut edges, &mut p, &names, &mut sym);
        let spins = r.spins();
        assert_eq!(r.line(), "done");
        add(&mut edges, &mut p, &names, &mut sym);
        check(&edges, spins);
        assert_eq!(p.lost(), 0);
        assert!(p.restore().unwrap());
        code_equals_file(r.pid(), &prog);
        assert!(p.read().is_empty());
        r.go();
        assert!(r.child.wait().unwrap().success());
    }
}

#[test]
fn a_process_that_exits_while_patched_keeps_its_counts() {
    let Some(_guard) = root_or_skip("a_process_that_exits_while_patched_keeps_its_counts") else {
        return;
    };
    let dir = common::scratch("patch-exit");
    let prog = program(&dir);
    let mut r = Running::start(&prog, "exit");
    let (mut p, names, mut sym) = patch(&prog, r.pid());
    r.go();
    let spins = r.spins();
    assert!(r.child.wait().unwrap().success());
    let mut edges = BTreeMap::new();
    add(&mut edges, &mut p, &names, &mut sym);
    check(&edges, spins);
    // Nothing left to restore; no error either.
    assert!(!p.restore().unwrap());
    assert!(Patch::inject(r.pid(), &[0x1000], 1 << 4).is_err());
}

/// A table too small for the program's edges counts the calls that found
/// no slot as lost; the ones it counts are still right.
#[test]
fn a_full_table_counts_its_losses() {
    let Some(_guard) = root_or_skip("a_full_table_counts_its_losses") else {
        return;
    };
    let dir = common::scratch("patch-full");
    let prog = program(&dir);
    let mut r = Running::start(&prog, "exit");
    let wanted: Vec<String> = FUNCTIONS.map(String::from).to_vec();
    let sites = patch::sites(r.pid(), &prog, Some(&wanted)).unwrap();
    let mut sym = Symbolizer::new(Some(file_id(&prog).unwrap()));
    assert!(sym.refresh(r.pid()));
    let addrs: Vec<u64> = sites.iter().map(|s| s.1).collect();
    let names: Vec<String> = sites.into_iter().map(|s| s.0).collect();
    let mut p = Patch::inject(r.pid(), &addrs, 4).unwrap();
    r.go();
    let _ = r.spins();
    assert!(r.child.wait().unwrap().success());
    let mut edges = BTreeMap::new();
    add(&mut edges, &mut p, &names, &mut sym);
    assert_eq!(edges.len(), 4, "{edges:?}");
    let known = [
        ("main", "middle", 1000),
        ("middle", "leaf", 3000),
        ("main", "dispatch", 700),
        ("dispatch", "red", 300),
        ("dispatch", "blue", 400),
        ("worker", "leaf", 20_000),
        ("late_worker", "leaf", 2000),
    ];
    for ((caller, callee), n) in &edges {
        if let Some(k) = known.iter().find(|k| (k.0, k.1) == (caller, callee)) {
            assert_eq!(*n, k.2, "{caller} -> {callee}");
        }
    }
    let counted: u64 = edges.values().sum();
    assert!(p.lost() > 0);
    assert!(
        counted + p.lost() >= 27_400 + 1000,
        "{counted} + {}",
        p.lost()
    );
}

/// Patched and restored again and again while the spinner runs through the
/// nops (a thread stopped inside the five one-byte nops is stepped past
/// them) and the other threads block in system calls (restarted each
/// time): the program goes on unharmed, and a last patch counts exactly.
#[test]
fn patched_and_restored_repeatedly_while_threads_run() {
    let Some(_guard) = root_or_skip("patched_and_restored_repeatedly_while_threads_run") else {
        return;
    };
    let dir = common::scratch("patch-repeat");
    let prog = program(&dir);
    let mut r = Running::start(&prog, "stay");
    let mut spun = 0;
    for _ in 0..20 {
        let (mut p, names, mut sym) = patch(&prog, r.pid());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut edges = BTreeMap::new();
        add(&mut edges, &mut p, &names, &mut sym);
        spun += edges.values().sum::<u64>();
        assert!(
            edges
                .keys()
                .all(|(caller, callee)| caller == "spinner" && callee == "spin"),
            "{edges:?}"
        );
        assert!(p.restore().unwrap());
        code_equals_file(r.pid(), &prog);
    }
    assert!(spun > 0);
    let (mut p, names, mut sym) = patch(&prog, r.pid());
    let mut edges = BTreeMap::new();
    r.go();
    let spins = r.spins();
    assert_eq!(r.line(), "done");
    add(&mut edges, &mut p, &names, &mut sym);
    check(&edges, spins);
    assert!(p.restore().unwrap());
    r.go();
    assert!(r.child.wait().unwrap().success());
}

/// A thread stopped between two of the one-byte nops (one that loops
/// through them, so nearly every stop lands there) is stepped past them
/// before they become a call: it goes on, calling the stub, and restored
/// it goes on again.
#[test]
fn a_thread_inside_the_nops_is_stepped_out() {
    let Some(_guard) = root_or_skip("a_thread_inside_the_nops_is_stepped_out") else {
        return;
    };
    let dir = common::scratch("patch-sled");
    let prog = program(&dir);
    let mut r = Running::start(&prog, "sled");
    let sled = vec!["nop_sled".to_string()];
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let sites = patch::sites(r.pid(), &prog, Some(&sled)).unwrap();
        assert_eq!(sites.len(), 1);
        let mut p = Patch::inject(r.pid(), &[sites[0].1], 1 << 4).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while p.read().is_empty() {
            assert!(std::time::Instant::now() < deadline, "no call of the stub");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(p.restore().unwrap());
        code_equals_file(r.pid(), &prog);
    }
    r.go();
    assert!(r.child.wait().unwrap().success());
}

/// A child forked while patched inherits the patched code and the shared
/// table: its calls are counted with the parent's (README, limits).
#[test]
fn a_forked_child_counts_into_the_same_table() {
    let Some(_guard) = root_or_skip("a_forked_child_counts_into_the_same_table") else {
        return;
    };
    let dir = common::scratch("patch-fork");
    let prog = program(&dir);
    let mut r = Running::start(&prog, "fork");
    let wanted = vec!["child_work".to_string(), "leaf".to_string()];
    let sites = patch::sites(r.pid(), &prog, Some(&wanted)).unwrap();
    assert_eq!(sites.len(), 2);
    let mut sym = Symbolizer::new(Some(file_id(&prog).unwrap()));
    assert!(sym.refresh(r.pid()));
    let addrs: Vec<u64> = sites.iter().map(|s| s.1).collect();
    let names: Vec<String> = sites.into_iter().map(|s| s.0).collect();
    let mut p = Patch::inject(r.pid(), &addrs, patch::DEFAULT_SLOTS).unwrap();
    r.go();
    assert!(r.child.wait().unwrap().success());
    let mut edges = BTreeMap::new();
    add(&mut edges, &mut p, &names, &mut sym);
    let get = |a: &str, b: &str| edges.get(&(a.to_string(), b.to_string())).copied();
    assert_eq!(get("main", "child_work"), Some(1), "{edges:?}");
    assert_eq!(get("child_work", "leaf"), Some(100), "{edges:?}");
}

/// A session (the CLI's `--entries patch --pid`) dropped without its
/// `finish` (an error on the way) still puts the nops back; its records
/// are the usual edge and coverage records.
#[test]
fn a_session_dropped_early_restores_the_nops() {
    let Some(_guard) = root_or_skip("a_session_dropped_early_restores_the_nops") else {
        return;
    };
    let dir = common::scratch("patch-session");
    let prog = program(&dir);
    let mut r = Running::start(&prog, "stay");
    let mut config = tracemerge_ebpf::exact::Config::new(&prog);
    config.pid = Some(r.pid());
    let wanted: Vec<String> = FUNCTIONS.map(String::from).to_vec();
    let mut session = patch::Session::attach(&config, &wanted, true).unwrap();
    assert_eq!(session.functions().len(), FUNCTIONS.len());
    r.go();
    let _ = r.spins();
    assert_eq!(r.line(), "done");
    // A window closes with coverage only if it lasted (times are in ms):
    // attach, the calls and the drain can all fall in one millisecond.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let records = session.drain().unwrap();
    let edges = common::edges(&records);
    assert_eq!(edges[&("main".to_string(), "middle".to_string())], 1000);
    let coverage = records.iter().find_map(|rec| match rec {
        tracemerge_records::Record::Coverage(c) => Some(c),
        _ => None,
    });
    assert_eq!(coverage.unwrap().symbols.len(), FUNCTIONS.len());
    drop(session);
    code_equals_file(r.pid(), &prog);
    r.go();
    assert!(r.child.wait().unwrap().success());
}

//! `--budget PCT`: which functions stop being probed for a while so that
//! the traced program's slowdown stays near PCT, and how their counts are
//! estimated meanwhile.
//!
//! A probed call costs what its entry kind costs ([`EntryKind::cost_ns`]);
//! the calls counted times those costs estimate the time the probes took
//! from the program. The budget is kept over the whole session, as a
//! ledger ([`Ledger`]): the program's own time so far earns `PCT` of itself
//! in credit, the probes' cost spends it. When one process is traced its
//! CPU times measure both (a probed call's trap and BPF program run in the
//! kernel, in its system time; its own work is its user time, so a program
//! that makes many system calls is budgeted conservatively), and the ratio
//! of measured to estimated cost corrects the per-call estimates; otherwise
//! wall time less the estimate is the own time.
//! The first windows (warm-up) keep every function probed, so that start-up
//! edges are all seen. After that, once a window's probes cost more than
//! half the budget, the functions that cost most leave the uprobe_multi
//! link: first those whose callers were stable (no new caller in the last
//! window), then, if that is not enough, the others; only functions that
//! ran (so their callers are known), and cold functions never: they are the
//! ones whose absence coverage proves. Paused functions come back for short
//! visits, one after the other as the credit allows, oldest visit first,
//! cheap ones together and hot ones alone, each long enough for the program
//! to do a fixed amount of its own work meanwhile; the visits measure their
//! rates again and catch new callers. Their edges carry estimated counts.

use crate::plan::EntryKind;

/// What the budget asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Allowed slowdown, as a fraction of the program's own time (0.10).
    pub fraction: f64,
    /// A paused function is visited once every this many windows.
    pub revisit_every: u64,
    /// Each visit lasts until the program has run this long on its own (so
    /// longer for hot functions, which slow it meanwhile); its counts give
    /// the visited functions' rates.
    pub revisit_for: std::time::Duration,
    /// At most this many functions visit at once.
    pub revisits_at_once: usize,
    /// Windows at the start with every function probed.
    pub warmup_windows: u64,
}

/// A budget that is not a percentage in (0, 1000].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad budget {0:?}: a percentage above 0, like 10% or 2.5")]
pub struct BadBudget(pub String);

impl Budget {
    pub fn new(fraction: f64) -> Budget {
        Budget {
            fraction,
            revisit_every: 2,
            revisit_for: std::time::Duration::from_millis(5),
            revisits_at_once: 64,
            warmup_windows: 2,
        }
    }

    /// Parses `10%` or `10` (percent).
    pub fn parse(text: &str) -> Result<Budget, BadBudget> {
        let number = text.trim().trim_end_matches('%').trim();
        match number.parse::<f64>() {
            Ok(p) if p > 0.0 && p <= 1000.0 => Ok(Budget::new(p / 100.0)),
            _ => Err(BadBudget(text.to_string())),
        }
    }
}

/// One probed function's share of a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    /// Index of the function (its attach cookie).
    pub function: usize,
    /// Calls counted in the window.
    pub calls: u64,
    pub kind: EntryKind,
    /// No new caller in the last window.
    pub stable: bool,
}

impl Load {
    fn cost_ns(&self) -> f64 {
        self.calls as f64 * self.kind.cost_ns()
    }
}

/// The functions to pause so that the probes' estimated cost over a window
/// of `window_ns` takes at most half the budget (the visits take the
/// rest): the costliest first, those with stable callers before the others,
/// only functions that ran. The program's own time is the window less the
/// probes' cost. `cost_scale` corrects the per-call costs of the entry
/// kinds (what the probes were measured to cost ÷ what those estimate).
pub fn choose_pauses(loads: &[Load], window_ns: f64, fraction: f64, cost_scale: f64) -> Vec<usize> {
    let cost = |l: &Load| l.cost_ns() * cost_scale;
    let total: f64 = loads.iter().map(cost).sum();
    let own = (window_ns - total).max(window_ns * 0.01);
    let allowed = 0.5 * fraction * own;
    if total <= allowed {
        return Vec::new();
    }
    let mut by_cost: Vec<&Load> = loads.iter().filter(|l| l.calls > 0).collect();
    by_cost.sort_by(|a, b| {
        b.stable
            .cmp(&a.stable)
            .then(cost(b).total_cmp(&cost(a)))
            .then(a.function.cmp(&b.function))
    });
    let mut remaining = total;
    let mut paused = Vec::new();
    for load in by_cost {
        if remaining <= allowed {
            break;
        }
        remaining -= cost(load);
        paused.push(load.function);
    }
    paused
}

/// The budget over the whole session: time so far and what the probes
/// cost of it (estimated from the calls counted).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ledger {
    pub elapsed_ms: f64,
    pub spent_ms: f64,
}

impl Ledger {
    /// The program's own time: elapsed less the probes' cost (at least 1%).
    pub fn own_ms(&self) -> f64 {
        (self.elapsed_ms - self.spent_ms).max(self.elapsed_ms * 0.01)
    }

    /// What is left to spend: `fraction` of the own time less what the
    /// probes cost (negative: in debt).
    pub fn credit_ms(&self, fraction: f64) -> f64 {
        fraction * self.own_ms() - self.spent_ms
    }
}

/// A paused function that may visit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub function: usize,
    /// Window of its last visit (or of its pause).
    pub last_visit: u64,
    /// Probe time per ms of the program's own time while it is probed
    /// (its calls per own ms × cost per call).
    pub load: f64,
}

/// A visit lasts at most this many times its `own_ms`: a function whose
/// probe costs hundreds of times its own work would otherwise stay probed
/// for seconds.
pub const MAX_VISIT_STRETCH: f64 = 10.0;

/// One visit of paused functions.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitPlan {
    pub functions: Vec<usize>,
    /// How long the link stays: `own_ms` × (1 + their load X), capped.
    pub ms: f64,
    /// Its estimated cost: `ms` × X / (1 + X).
    pub cost_ms: f64,
}

/// The next visit with `credit_ms` to spend: the paused function whose
/// visit is oldest, and with it the next oldest as long as their summed
/// load stays at most 1 (the program then runs at least half its speed,
/// and covers `own_ms` of its own work in at most 2 × `own_ms`); at most
/// `max`. A hot function visits alone, for longer (at most
/// [`MAX_VISIT_STRETCH`] × `own_ms`). `None` when the
/// oldest's visit costs more than the credit (it keeps its turn).
pub fn choose_visit(
    candidates: &[Candidate],
    own_ms: f64,
    credit_ms: f64,
    max: usize,
) -> Option<VisitPlan> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| {
        a.last_visit
            .cmp(&b.last_visit)
            .then(a.function.cmp(&b.function))
    });
    // How long a visit of load X lasts, and what it costs.
    let ms = |x: f64| (own_ms * (1.0 + x)).min(own_ms * MAX_VISIT_STRETCH);
    let cost = |x: f64| ms(x) * x / (1.0 + x);
    let first = order.first()?;
    let mut load = first.load.max(0.0);
    if cost(load) > credit_ms {
        return None;
    }
    let mut functions = vec![first.function];
    for c in order.iter().skip(1) {
        let with = load + c.load.max(0.0);
        if functions.len() >= max || with > 1.0 || cost(with) > credit_ms {
            continue;
        }
        load = with;
        functions.push(c.function);
    }
    Some(VisitPlan {
        functions,
        ms: ms(load),
        cost_ms: cost(load),
    })
}

/// A visit of every paused function at once, after the traced thread made
/// a new edge (a new phase of the program is likely to give paused
/// functions new callers): as long as [`choose_visit`] would make it for
/// their summed load, capped the same way. It is what the budget keeps in
/// reserve while such stops are armed. `None` when nothing is paused.
pub fn phase_visit(candidates: &[Candidate], own_ms: f64) -> Option<VisitPlan> {
    if candidates.is_empty() {
        return None;
    }
    let load: f64 = candidates.iter().map(|c| c.load.max(0.0)).sum();
    let ms = (own_ms * (1.0 + load)).min(own_ms * MAX_VISIT_STRETCH);
    let mut functions: Vec<usize> = candidates.iter().map(|c| c.function).collect();
    functions.sort_unstable();
    Some(VisitPlan {
        functions,
        ms,
        cost_ms: ms * load / (1.0 + load),
    })
}

/// Estimated calls over `window_ms` at the rate of `measured` calls in
/// `measured_ms`: at least one (the edge is live), rounded.
pub fn estimate(measured: u64, measured_ms: f64, window_ms: f64) -> u64 {
    if measured == 0 {
        return 0;
    }
    ((measured as f64) * window_ms / measured_ms.max(1.0))
        .round()
        .max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(function: usize, calls: u64, kind: EntryKind) -> Load {
        Load {
            function,
            calls,
            kind,
            stable: true,
        }
    }

    #[test]
    fn budget_parses_percentages() {
        assert_eq!(Budget::parse("10%").unwrap().fraction, 0.10);
        assert_eq!(Budget::parse(" 2.5 ").unwrap().fraction, 0.025);
        for bad in ["0", "-5%", "ten", "", "5000%"] {
            assert_eq!(Budget::parse(bad), Err(BadBudget(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn nothing_is_paused_within_budget() {
        // 1 s window, 10,000 emulated calls ≈ 10 ms: 1% < 10%.
        let loads = [load(0, 10_000, EntryKind::Emulated)];
        assert!(choose_pauses(&loads, 1e9, 0.10, 1.0).is_empty());
    }

    #[test]
    fn hottest_functions_go_first_until_the_rest_fits() {
        // 1 s window: f0 costs 400 ms, f1 75 ms (single-stepped), f2 30 ms,
        // f3 never ran; the budget allows 0.5 × 10% × 495 ms ≈ 25 ms.
        let loads = [
            load(0, 400_000, EntryKind::Emulated),
            load(1, 10_000, EntryKind::SingleStepped),
            load(2, 30_000, EntryKind::Emulated),
            load(3, 0, EntryKind::SingleStepped),
        ];
        let paused = choose_pauses(&loads, 1e9, 0.10, 1.0);
        assert_eq!(paused, vec![0, 1, 2]);
        // A generous budget pauses only the hottest.
        assert_eq!(choose_pauses(&loads, 1e9, 1.0, 1.0), vec![0]);
        // A function that did not run is never paused, whatever the budget.
        assert!(!choose_pauses(&loads, 1e9, 0.0001, 1.0).contains(&3));
    }

    #[test]
    fn stable_functions_are_paused_before_those_with_new_callers() {
        // f0 (100 ms) has a new caller, f1 (400 ms) has not.
        let mut loads = [
            load(0, 100_000, EntryKind::Emulated),
            load(1, 400_000, EntryKind::Emulated),
            load(2, 0, EntryKind::Emulated),
        ];
        loads[0].stable = false;
        // Pausing f1 is not enough for 10% (25 ms allowed): f0 goes too.
        assert_eq!(choose_pauses(&loads, 1e9, 0.10, 1.0), vec![1, 0]);
        // For 50% (125 ms) it is: f0 stays.
        assert_eq!(choose_pauses(&loads, 1e9, 0.5, 1.0), vec![1]);
    }

    #[test]
    fn the_ledger_earns_a_fraction_of_the_own_time() {
        let ledger = Ledger {
            elapsed_ms: 1100.0,
            spent_ms: 100.0,
        };
        assert_eq!(ledger.own_ms(), 1000.0);
        assert!((ledger.credit_ms(0.10) - 0.0).abs() < 1e-9);
        assert!(ledger.credit_ms(0.05) < 0.0);
    }

    #[test]
    fn visits_go_oldest_first_hot_ones_alone() {
        let c = |function, last_visit, load| Candidate {
            function,
            last_visit,
            load,
        };
        // f1 visited longest ago and cheap (load 0.25), f0 hot (load 9),
        // f2 and f3 cheap.
        let candidates = [c(0, 5, 9.0), c(1, 2, 0.25), c(2, 7, 0.5), c(3, 8, 0.5)];
        // 5 ms of the program's own time: the cheap ones that fit under a
        // load of 1 go together, the hot one waits for its turn.
        let plan = choose_visit(&candidates, 5.0, 100.0, 64).unwrap();
        assert_eq!(plan.functions, vec![1, 2]);
        assert_eq!((plan.ms, plan.cost_ms), (8.75, 3.75));
        // Next time f0 is the oldest: alone, ten times as long.
        let later = [c(0, 5, 9.0), c(1, 9, 0.25), c(2, 9, 0.5), c(3, 8, 0.5)];
        let plan = choose_visit(&later, 5.0, 100.0, 64).unwrap();
        assert_eq!(plan.functions, vec![0]);
        assert_eq!((plan.ms, plan.cost_ms), (50.0, 45.0));
        // A function 999 times costlier probed than its own work: capped.
        let hottest = [c(0, 5, 999.0)];
        let plan = choose_visit(&hottest, 5.0, 100.0, 64).unwrap();
        assert_eq!((plan.ms, plan.cost_ms), (50.0, 49.95));
        // Without the credit for it, it keeps its turn and no one visits.
        assert_eq!(choose_visit(&later, 5.0, 40.0, 64), None);
        assert_eq!(
            choose_visit(&candidates, 5.0, 100.0, 1).unwrap().functions,
            vec![1]
        );
        assert_eq!(choose_visit(&[], 5.0, 100.0, 64), None);
    }

    #[test]
    fn a_phase_visit_takes_every_paused_function_at_its_summed_load() {
        let c = |function, load| Candidate {
            function,
            last_visit: 0,
            load,
        };
        assert_eq!(phase_visit(&[], 5.0), None);
        let plan = phase_visit(&[c(3, 0.5), c(1, 0.5)], 5.0).unwrap();
        assert_eq!(plan.functions, vec![1, 3]);
        assert_eq!((plan.ms, plan.cost_ms), (10.0, 5.0));
        // Hot ones: capped like any visit.
        let plan = phase_visit(&[c(0, 9.0), c(1, 90.0)], 5.0).unwrap();
        assert_eq!(plan.ms, 50.0);
        assert!((plan.cost_ms - 49.5).abs() < 1e-9);
    }

    #[test]
    fn estimates_scale_the_measured_rate() {
        assert_eq!(estimate(500, 50.0, 1000.0), 10_000);
        assert_eq!(estimate(1, 50.0, 10.0), 1);
        assert_eq!(estimate(0, 50.0, 1000.0), 0);
    }
}

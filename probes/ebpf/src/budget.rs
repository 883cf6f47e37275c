//! `--budget PCT`: which functions stop being probed for a while so that
//! the traced program's slowdown stays near PCT, and how their counts are
//! estimated meanwhile.
//!
//! A probed call costs what its entry kind costs ([`EntryKind::cost_ns`]);
//! the calls of one window times those costs estimate the time the probes
//! took from the program. When that exceeds the budget, the functions that
//! cost most leave the uprobe_multi link (hottest first), but only those
//! that ran in the window (so their callers are known), and cold functions
//! never: they are the ones whose absence coverage proves. A paused function
//! comes back for a short visit every few windows to measure its rate again
//! and catch new callers; its edges carry estimated counts until then.

use crate::plan::EntryKind;

/// What the budget asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Allowed slowdown, as a fraction of the program's own time (0.10).
    pub fraction: f64,
    /// A paused function is visited once every this many windows.
    pub revisit_every: u64,
    /// For this long (the visit's counts give its rates).
    pub revisit_for: std::time::Duration,
    /// At most this many functions visit at once.
    pub revisits_at_once: usize,
}

/// A budget that is not a percentage in (0, 1000].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad budget {0:?}: a percentage above 0, like 10% or 2.5")]
pub struct BadBudget(pub String);

impl Budget {
    pub fn new(fraction: f64) -> Budget {
        Budget {
            fraction,
            revisit_every: 4,
            revisit_for: std::time::Duration::from_millis(20),
            revisits_at_once: 16,
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
}

impl Load {
    fn cost_ns(&self) -> f64 {
        self.calls as f64 * self.kind.cost_ns()
    }
}

/// The functions to pause so that the probes' estimated cost over a window
/// of `window_ns` fits the budget: hottest first, only functions that ran.
/// The program's own time is the window less the probes' cost; the rest
/// must fit in 80% of the budget (the visits and the estimate's error take
/// the other 20%).
pub fn choose_pauses(loads: &[Load], window_ns: f64, fraction: f64) -> Vec<usize> {
    let total: f64 = loads.iter().map(Load::cost_ns).sum();
    let own = (window_ns - total).max(window_ns * 0.01);
    let allowed = 0.8 * fraction * own;
    if total <= allowed {
        return Vec::new();
    }
    let mut by_cost: Vec<&Load> = loads.iter().filter(|l| l.calls > 0).collect();
    by_cost.sort_by(|a, b| {
        b.cost_ns()
            .total_cmp(&a.cost_ns())
            .then(a.function.cmp(&b.function))
    });
    let mut remaining = total;
    let mut paused = Vec::new();
    for load in by_cost {
        if remaining <= allowed {
            break;
        }
        remaining -= load.cost_ns();
        paused.push(load.function);
    }
    paused
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
        assert!(choose_pauses(&loads, 1e9, 0.10).is_empty());
    }

    #[test]
    fn hottest_functions_go_first_until_the_rest_fits() {
        // 1 s window: f0 costs 400 ms, f1 75 ms (single-stepped), f2 30 ms,
        // f3 never ran; the budget allows 0.8 × 10% × 495 ms ≈ 40 ms.
        let loads = [
            load(0, 400_000, EntryKind::Emulated),
            load(1, 10_000, EntryKind::SingleStepped),
            load(2, 30_000, EntryKind::Emulated),
            load(3, 0, EntryKind::SingleStepped),
        ];
        let paused = choose_pauses(&loads, 1e9, 0.10);
        assert_eq!(paused, vec![0, 1]);
        // A generous budget pauses only the hottest.
        assert_eq!(choose_pauses(&loads, 1e9, 1.0), vec![0]);
        // A function that did not run is never paused, whatever the budget.
        assert!(!choose_pauses(&loads, 1e9, 0.0001).contains(&3));
    }

    #[test]
    fn estimates_scale_the_measured_rate() {
        assert_eq!(estimate(500, 50.0, 1000.0), 10_000);
        assert_eq!(estimate(1, 50.0, 10.0), 1);
        assert_eq!(estimate(0, 50.0, 1000.0), 0);
    }
}

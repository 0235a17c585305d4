//! Ranking the combinations: confidence over seeds, a delay budget, the
//! energy-against-delay Pareto front, and the server share at which partial
//! migration stops paying over full migration. Pure functions of reports.

use serde::{Deserialize, Serialize};

use crate::report::{Outcome, Report};

/// A 95 % confidence interval of a mean over seeds (Student's t).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ci95 {
    /// Mean over the seeds.
    pub mean: f64,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Seeds (samples).
    pub seeds: u32,
}

/// Two-sided 97.5 % quantiles of Student's t for 1..=10 degrees of freedom,
/// then 1.96.
fn t975(df: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        d if d <= 10 => T[d - 1],
        d if d <= 30 => 2.042 + (2.228 - 2.042) * (30 - d) as f64 / 20.0,
        _ => 1.96,
    }
}

/// The 95 % interval of the mean of `xs`; `None` with fewer than two.
pub fn ci95(xs: &[f64]) -> Option<Ci95> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    Some(Ci95 {
        mean,
        lo: mean - half,
        hi: mean + half,
        seeds: n as u32,
    })
}

/// Fills `savings_ci95` of every combination, oracle and baseline of
/// `main` from the same keys of `reports` (one per seed, `main`'s among
/// them).
pub fn fill_savings_ci95(main: &mut Report, reports: &[&Report]) {
    let of = |pick: &dyn Fn(&Report) -> Option<f64>| {
        let xs: Vec<f64> = reports.iter().filter_map(|r| pick(r)).collect();
        ci95(&xs)
    };
    for (k, o) in main.policies.iter_mut() {
        o.savings_ci95 = of(&|r| r.policies.get(k).map(|o| o.savings_pct));
    }
    for (k, o) in main.oracles.iter_mut() {
        o.savings_ci95 = of(&|r| r.oracles.get(k).map(|o| o.savings_pct));
    }
    main.oracle.savings_ci95 = of(&|r| Some(r.oracle.savings_pct));
    main.full_migration.savings_ci95 = of(&|r| Some(r.full_migration.savings_pct));
    main.plain_sleep.savings_ci95 = of(&|r| Some(r.plain_sleep.savings_pct));
}

/// A delay budget: what a combination may cost its users.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DelayBudget {
    /// Largest p99 of the per-miss stall, ms.
    pub stall_p99_ms: u64,
    /// Most wakes by a miss per idle hour.
    pub wakes_per_idle_hour: f64,
}

impl Default for DelayBudget {
    /// p99 stall at most 1 s, at most 4 wakes per idle hour.
    fn default() -> Self {
        Self {
            stall_p99_ms: 1_000,
            wakes_per_idle_hour: 4.0,
        }
    }
}

impl DelayBudget {
    /// Whether `o` stays within it (an outcome without stalls recorded
    /// does not).
    pub fn admits(&self, o: &Outcome) -> bool {
        o.stall_ms.is_some_and(|s| s.p99 <= self.stall_p99_ms)
            && o.wakes_per_idle_hour <= self.wakes_per_idle_hour
    }
}

/// The best combination under a budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetPick {
    /// The budget it used.
    pub budget: DelayBudget,
    /// The combination's key, `None` if none stays within the budget.
    pub combination: Option<String>,
    /// Its savings, percent (0 without one).
    pub savings_pct: f64,
    /// Combinations within the budget.
    pub admitted: u32,
}

/// The online combination with the most savings among those within
/// `budget`.
pub fn best_under_budget(r: &Report, budget: DelayBudget) -> BudgetPick {
    let ok: Vec<(&String, &Outcome)> = r
        .policies
        .iter()
        .filter(|(_, o)| budget.admits(o))
        .collect();
    let best = ok
        .iter()
        .max_by(|a, b| a.1.savings_pct.total_cmp(&b.1.savings_pct));
    BudgetPick {
        budget,
        combination: best.map(|(k, _)| (*k).clone()),
        savings_pct: best.map_or(0.0, |(_, o)| o.savings_pct),
        admitted: ok.len() as u32,
    }
}

/// The online combinations not dominated in (savings, p99 stall, wakes per
/// idle hour): no other saves at least as much with no more delay on both
/// and is better on one. Sorted by p99 stall.
pub fn pareto_front(r: &Report) -> Vec<(&str, &Outcome)> {
    let key = |o: &Outcome| {
        (
            o.savings_pct,
            o.stall_ms.map_or(u64::MAX, |s| s.p99),
            o.wakes_per_idle_hour,
        )
    };
    let mut out: Vec<(&str, &Outcome)> = r
        .policies
        .iter()
        .filter(|(_, o)| {
            let (s, p, w) = key(o);
            !r.policies.values().any(|x| {
                let (s2, p2, w2) = key(x);
                s2 >= s && p2 <= p && w2 <= w && (s2 > s || p2 < p || w2 < w)
            })
        })
        .map(|(k, o)| (k.as_str(), o))
        .collect();
    out.sort_by_key(|(_, o)| o.stall_ms.map_or(u64::MAX, |s| s.p99));
    out
}

/// `o`'s savings (percent of `always_on_j`) had each partially migrated VM
/// been charged `peak_w / n` instead of the share it was simulated with
/// (`peak_w / n0`): the server's share scales every period's server joules
/// and changes no decision.
pub fn savings_with_share(o: &Outcome, always_on_j: f64, n0: f64, n: f64) -> f64 {
    let energy = o.energy_j - o.server_j + o.server_j * n0 / n;
    100.0 * (always_on_j - energy) / always_on_j
}

/// The `partial_vms_per_server` at which `o` (simulated with `n0`) saves
/// as much as full migration, by bisection on [`savings_with_share`] over
/// 0.01 to 10,000 VMs per server; `None` if it is above or below full
/// migration on the whole range (or charged no server share).
pub fn crossover_partial_vms_per_server(r: &Report, o: &Outcome, n0: f64) -> Option<f64> {
    let f = |n: f64| savings_with_share(o, r.always_on_j, n0, n) - r.full_migration.savings_pct;
    let (mut lo, mut hi) = (0.01, 10_000.0);
    if o.server_j <= 0.0 || r.always_on_j <= 0.0 || f(lo) > 0.0 || f(hi) < 0.0 {
        return None;
    }
    // f rises with n: more VMs per server, a smaller share each
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-9 {
            break;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
#[path = "rank_tests.rs"]
mod tests;

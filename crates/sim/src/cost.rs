//! The cost of one idle period for one scheme: its fetch events (the misses)
//! and the user's return cut it into gaps, and each gap is either spent
//! awake or slept from some point on.
//!
//! A gap of `g` ms slept from `t` ms after its start costs
//! `P_i t + E_s + E_r + P_s max(0, g - t - L_s - L_r)`, awake `P_i g`, the
//! resume charged as if it ended at the gap's end (see the engine's module
//! documentation). The resume `(L_r, E_r)` is the full one, except with
//! selective resume for a gap that ends in a miss: that wake only serves
//! pages and resumes the service devices
//! ([`PowerProfile::service_resume`]). A desktop so woken draws idle power
//! (an upper bound: its display and disk stay off) and, if the user comes
//! back while it is still in that state, pays the rest of the resume then
//! (`E_r - E_r'`); a gap slept up to the user's return ends in a full resume.

use jettison_power::profile::Transition;
use jettison_power::{Decision, PowerProfile, SleepPolicy};

use crate::report::Outcome;
use crate::trace::Span;

/// The resumes of a period's wakes.
#[derive(Clone, Debug)]
pub(crate) struct Wakes {
    /// A wake by a miss.
    pub page: Transition,
    /// Joules to finish resuming at the user's return after a page wake.
    pub rest_j: f64,
}

impl Wakes {
    /// The wakes of `p`, with or without selective resume.
    pub(crate) fn new(p: &PowerProfile, selective: bool) -> Self {
        let page = if selective {
            p.service_resume()
        } else {
            p.resume.clone()
        };
        let rest_j = (p.resume.energy_j - page.energy_j).max(0.0);
        Self { page, rest_j }
    }
}

/// Desktop joules of a gap of `gap` ms, slept from `sleep_at` ms if any,
/// ending in `resume`.
pub(crate) fn gap_j(p: &PowerProfile, gap: u64, sleep_at: Option<u64>, resume: &Transition) -> f64 {
    let d = &p.desktop;
    match sleep_at {
        None => d.idle_w * gap as f64 / 1000.0,
        Some(t) => {
            let l = p.suspend.latency_ms + resume.latency_ms;
            let asleep = gap.saturating_sub(t + l);
            (d.idle_w * t as f64 + d.asleep_w * asleep as f64) / 1000.0
                + p.suspend.energy_j
                + resume.energy_j
        }
    }
}

/// The gaps of a period: `(start, end, ends in a miss)`, empty ones skipped.
fn gaps(span: Span, misses: &[u64]) -> impl Iterator<Item = (u64, u64, bool)> + '_ {
    let ends = misses
        .iter()
        .map(|&t| (t, true))
        .chain([(span.end_ms, false)]);
    let mut s = span.start_ms;
    ends.filter_map(move |(b, miss)| {
        if b <= s {
            return None;
        }
        let g = (s, b, miss);
        s = b;
        Some(g)
    })
}

/// Runs the online `policy` over a period with fetch events at `misses`;
/// returns the desktop's joules and counts sleeps and delayed requests.
pub(crate) fn run_period(
    p: &PowerProfile,
    wakes: &Wakes,
    policy: &mut dyn SleepPolicy,
    span: Span,
    misses: &[u64],
    out: &mut Outcome,
) -> f64 {
    policy.on_request(span.start_ms);
    let (mut joules, mut serving) = (0.0, false);
    for (s, b, miss) in gaps(span, misses) {
        let mut now = s;
        let sleep_at = loop {
            match policy.decide(now, s) {
                Decision::Sleep => break Some(now - s),
                Decision::StayAwake { recheck_in_ms } => {
                    now = now.saturating_add(recheck_in_ms.max(1));
                    if now >= b {
                        break None;
                    }
                }
            }
        };
        let resume = if miss { &wakes.page } else { &p.resume };
        joules += gap_j(p, b - s, sleep_at, resume);
        if sleep_at.is_some() {
            out.sleeps += 1;
            out.delayed_requests += u64::from(miss);
            serving = miss;
        }
        policy.on_request(b);
    }
    if serving {
        joules += wakes.rest_j;
    }
    joules
}

/// The offline optimum of a period: it knows every gap and sleeps through
/// exactly the set of gaps (each from its start) that costs least, found by
/// dynamic programming over "fully resumed" and "woken for pages". Returns
/// its joules and counts its sleeps (its wakes come ahead of the requests,
/// so none is delayed).
pub(crate) fn oracle_period(
    p: &PowerProfile,
    wakes: &Wakes,
    span: Span,
    misses: &[u64],
    out: &mut Outcome,
) -> f64 {
    // best (joules, sleeps) so far, fully resumed / serving after a page wake
    let inf = (f64::INFINITY, 0u64);
    let (mut full, mut serving) = ((0.0, 0u64), inf);
    let better = |a: (f64, u64), b: (f64, u64)| if b.0 < a.0 { b } else { a };
    for (s, b, miss) in gaps(span, misses) {
        let awake = gap_j(p, b - s, None, &p.resume);
        let from_best = better(full, serving);
        if miss {
            let slept = gap_j(p, b - s, Some(0), &wakes.page);
            let after_sleep = (from_best.0 + slept, from_best.1 + 1);
            let new_full = (full.0 + awake, full.1);
            let new_serving = (serving.0 + awake, serving.1);
            if wakes.rest_j > 0.0 {
                (full, serving) = (new_full, better(new_serving, after_sleep));
            } else {
                (full, serving) = (better(better(new_full, new_serving), after_sleep), inf);
            }
        } else {
            let slept = gap_j(p, b - s, Some(0), &p.resume);
            let stay = better(
                (full.0 + awake, full.1),
                (serving.0 + awake + wakes.rest_j, serving.1),
            );
            full = better(stay, (from_best.0 + slept, from_best.1 + 1));
            serving = inf;
        }
    }
    let (joules, sleeps) = better(full, serving);
    out.sleeps += sleeps;
    joules
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;

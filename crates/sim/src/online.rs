//! An online sleep policy over one idle period, as the desktop agent runs
//! it (see [`crate::cost`] for the model).

use jettison_power_model::{Decision, PowerProfile, SleepPolicy};

use crate::cost::{gap_j, page_cycle, rest_at_return, Wakes};
use crate::report::Outcome;
use crate::trace::Span;

/// The first tick of the grid `phase + k tick` at or after `t`.
fn tick_at_or_after(phase: u64, tick: u64, t: u64) -> u64 {
    phase + (t.saturating_sub(phase)).div_ceil(tick) * tick
}

/// Runs the online `policy` over a period with fetch events at `misses`
/// (sorted), asked every `tick_ms`; returns the desktop's joules and the
/// ms from the user's return until the desktop is back in use (its
/// resume, [`crate::delay`]), and counts sleeps, page wakes, delayed
/// requests and each miss's stall. The policy is told the period's start
/// ([`SleepPolicy::on_period_start`]). The first sleep waits `durable_ms`
/// after the policy first says sleep (the agent makes the VM's memory
/// durable first, serving misses meanwhile).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_period(
    p: &PowerProfile,
    wakes: &Wakes,
    policy: &mut dyn SleepPolicy,
    span: Span,
    misses: &[u64],
    tick_ms: u64,
    durable_ms: u64,
    out: &mut Outcome,
) -> (f64, u64) {
    let (start, end) = (span.start_ms, span.end_ms);
    policy.on_period_start(start);
    let tick = tick_ms.max(1);
    let idle_w = p.desktop.idle_w;
    let mut joules = 0.0;
    // awake from `up` (energy counted up to it); the last request; the
    // tick grid's phase; the next miss; the last page wake's end
    let (mut up, mut last, mut phase, mut next) = (start, start, start, 0usize);
    let mut woken_at: Option<u64> = None;
    let mut durable_left = durable_ms;
    // the agent decides at once when the VM has left, then every tick
    let mut t = start;
    loop {
        while next < misses.len() && misses[next] <= t.min(end) {
            let r = misses[next].max(up);
            policy.on_request(r);
            out.stalls.add(0);
            last = r;
            next += 1;
        }
        if t >= end {
            break;
        }
        let recheck = match policy.decide(t, last) {
            Decision::StayAwake { recheck_in_ms } => recheck_in_ms.max(1),
            Decision::Sleep => {
                if durable_left > 0 {
                    // the memory copy first; misses meanwhile are served awake
                    let s = (t + durable_left).min(end);
                    durable_left = 0;
                    // (the decision is taken: the sleep follows the copy)
                    while next < misses.len() && misses[next] <= s && misses[next] < end {
                        policy.on_request(misses[next].max(up));
                        out.stalls.add(0);
                        next += 1;
                    }
                    if s >= end {
                        break;
                    }
                    t = s;
                }
                joules += idle_w * (t - up) as f64 / 1000.0;
                out.sleeps += 1;
                match misses.get(next).filter(|&&r| r < end) {
                    None => {
                        // asleep until the user comes back
                        let j = joules + gap_j(p, end - t, Some(0), &p.resume);
                        // resumed fully at the return (or still suspending)
                        let wait = (t + p.suspend.latency_ms).saturating_sub(end);
                        return (j, wait + p.resume.latency_ms);
                    }
                    Some(&r) => {
                        let (j, back) = page_cycle(p, wakes, t, r);
                        joules += j;
                        let waited = misses[next..].partition_point(|&m| m <= back);
                        out.delayed_requests += waited as u64;
                        out.page_wakes += 1;
                        for &m in &misses[next..next + waited] {
                            out.stalls.add(back - m);
                        }
                        next += waited;
                        if back >= end {
                            // the user came back while it resumed for pages
                            let wait = back - end + wakes.rest.latency_ms;
                            return (joules + wakes.rest_j, wait);
                        }
                        // the waiting requests are served as it is up
                        policy.on_request(back);
                        (up, last, phase, woken_at) = (back, back, back, Some(back));
                        t = back + tick;
                        continue;
                    }
                }
            }
        };
        let mut want = t.saturating_add(recheck);
        if let Some(&r) = misses.get(next) {
            want = want.min(r);
        }
        t = tick_at_or_after(phase, tick, want.min(end).max(t + 1));
    }
    joules += idle_w * (end - up) as f64 / 1000.0;
    let mut wait = 0;
    if let Some(w) = woken_at {
        joules += rest_at_return(p, wakes, end - w);
        // the rest resumes when the user is back (the energy is charged as
        // if it had ended then, a convention of the model)
        wait = wakes.rest.latency_ms;
    }
    (joules, wait)
}

//! An online sleep policy over one idle period, as the desktop agent runs
//! it (see [`crate::cost`] for the model).

use jettison_power_model::{Decision, PowerProfile, PullDecision, PullPolicy, SleepPolicy};

use crate::cost::{gap_j, page_cycle, rest_at_return, Wakes};
use crate::fetch::PAGE_BYTES;
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
#[cfg(test)]
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
    let (j, wait, _) = run_period_pulling(
        p, wakes, policy, None, span, misses, tick_ms, durable_ms, out,
    );
    (j, wait)
}

/// The pull policy of a period ([`PullPolicy`]) and what it needs to know.
#[derive(Debug)]
pub(crate) struct Pulling<'a> {
    pub policy: &'a mut PullPolicy,
    /// Pages of the VM.
    pub total_pages: u64,
    /// Pages on the server once each miss is served (same length as the
    /// misses).
    pub present_after: &'a [u64],
}

/// A pull made in a period: when it ended, and the pages it brought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pulled {
    pub done_ms: u64,
    pub pages: u64,
}

/// [`run_period`] with a pull policy: at each wake by a miss it is asked
/// ([`PullPolicy::on_wake`]); a pull keeps the desktop up for its
/// rate-limited transfer, serving the misses that come meanwhile, after
/// which the VM misses nothing more this period. Returns also the pull.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_period_pulling(
    p: &PowerProfile,
    wakes: &Wakes,
    policy: &mut dyn SleepPolicy,
    mut pull: Option<Pulling<'_>>,
    span: Span,
    misses: &[u64],
    tick_ms: u64,
    durable_ms: u64,
    out: &mut Outcome,
) -> (f64, u64, Option<Pulled>) {
    let (start, end) = (span.start_ms, span.end_ms);
    let mut misses = misses;
    let mut pulled = None;
    policy.on_period_start(start);
    if let Some(pl) = pull.as_mut() {
        pl.policy.on_period_start();
    }
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
                        return (j, wait + p.resume.latency_ms, pulled);
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
                            return (joules + wakes.rest_j, wait, pulled);
                        }
                        // the waiting requests are served as it is up
                        policy.on_request(back);
                        (up, last, phase, woken_at) = (back, back, back, Some(back));
                        t = back + tick;
                        if let Some(pl) = pull.as_mut() {
                            let have = next.checked_sub(1).map_or(0, |i| pl.present_after[i]);
                            let missing = pl.total_pages.saturating_sub(have) * PAGE_BYTES;
                            if let PullDecision::Pull { duration_ms, .. } =
                                pl.policy.on_wake(back, missing)
                            {
                                // up for the transfer, serving what comes
                                let done = (back + duration_ms).min(end);
                                while next < misses.len() && misses[next] <= done {
                                    policy.on_request(misses[next]);
                                    out.stalls.add(0);
                                    next += 1;
                                }
                                // and nothing is missing after it
                                misses = &misses[..next];
                                out.pulls += 1;
                                let pages = pl.total_pages.saturating_sub(have);
                                pulled = Some(Pulled {
                                    done_ms: done,
                                    pages,
                                });
                                policy.on_request(done);
                                (last, phase) = (done, done);
                                t = if done >= end { end } else { done + tick };
                            }
                        }
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
    (joules, wait, pulled)
}

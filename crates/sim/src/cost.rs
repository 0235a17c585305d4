//! The cost of one idle period for one scheme, in the model of the desktop
//! agent's power loop (`crates/agent/src/power_loop.rs`):
//!
//! * The sleep policy is asked on the agent's decision tick
//!   ([`crate::SimConfig::decision_tick_ms`]): at the period's start (the
//!   VM has just left; the quiet time counts from then) and every tick
//!   after, the ticks starting afresh after each wake. It is told each
//!   served request ([`jettison_power_model::SleepPolicy::on_request`]) and asked
//!   with the last request's time (or the wake's). Between ticks nothing is
//!   decided: a burst of fetches is served awake. A policy's answer changes
//!   only at a request or at the time it asked to be asked again (the
//!   trait's contract), so the simulator asks at the first tick after
//!   either; the answers are the agent's.
//! * A sleep suspends for `L_s` at once (the agent announces it to the
//!   server first, which takes no time here). The next miss wakes the
//!   desktop *when it comes*, or at the end of the suspend if it came during
//!   it (the NIC keeps the magic packet); the resume takes `L_r` and every
//!   miss up to its end waits for it ([`crate::Outcome::delayed_requests`])
//!   and is served then, as one request at the resume's end.
//! * A desktop asleep at the user's return resumes fully, the resume charged
//!   as if it ended at the return (every scheme alike, so that the period
//!   ends when the desktop is back in use); one woken for pages and still
//!   up resumes the rest of its devices, charged likewise
//!   ([`rest_at_return`]).
//!
//! The resume of a wake by a miss is the full one, or with selective resume
//! the service devices' ([`jettison_power_model::PowerProfile::service_resume`]);
//! a desktop so woken draws idle power (an upper bound: its display and
//! disk stay off).

use jettison_power_model::profile::Transition;
use jettison_power_model::PowerProfile;

/// The resumes of a period's wakes.
#[derive(Clone, Debug)]
pub(crate) struct Wakes {
    /// A wake by a miss.
    pub page: Transition,
    /// The rest of the devices, resumed at the user's return after a page
    /// wake (nothing without selective resume).
    pub rest: Transition,
    /// Joules to finish resuming at the user's return after a page wake.
    pub rest_j: f64,
}

impl Wakes {
    /// The wakes of `p`, with or without selective resume.
    pub(crate) fn new(p: &PowerProfile, selective: bool) -> Self {
        let (page, rest) = if selective {
            (
                p.service_resume(),
                jettison_power_model::energy::rest_resume(p),
            )
        } else {
            (
                p.resume.clone(),
                Transition {
                    latency_ms: 0,
                    energy_j: 0.0,
                },
            )
        };
        let rest_j = rest.energy_j;
        Self { page, rest, rest_j }
    }
}

/// Desktop joules of a gap of `gap` ms, slept from `sleep_at` ms if any,
/// ending in `resume` (charged as if it ended at the gap's end).
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

/// Joules of resuming the rest of the devices at the user's return, the
/// desktop having been up (idle) for `up_ms` since its page wake: the rest's
/// energy, less the idle power of the part of those `up_ms` it replaces
/// (the resume ends at the return).
pub(crate) fn rest_at_return(p: &PowerProfile, wakes: &Wakes, up_ms: u64) -> f64 {
    wakes.rest_j - p.desktop.idle_w * up_ms.min(wakes.rest.latency_ms) as f64 / 1000.0
}

/// Joules of a sleep cycle from `t` that a miss at `r` ends (`r >= t`):
/// suspend, asleep until the wake (at `r`, or at the suspend's end if `r`
/// comes during it), the page resume. Returns the joules and when the
/// desktop is up again.
pub(crate) fn page_cycle(p: &PowerProfile, wakes: &Wakes, t: u64, r: u64) -> (f64, u64) {
    let w = r.max(t + p.suspend.latency_ms);
    let asleep = w - t - p.suspend.latency_ms;
    let j = p.suspend.energy_j + p.desktop.asleep_w * asleep as f64 / 1000.0 + wakes.page.energy_j;
    (j, w + wakes.page.latency_ms)
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;

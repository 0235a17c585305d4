//! [`BreakEven`]: the break-even timeout, sleeping at once only after a
//! streak of long gaps.

use super::{break_even_ms, sleep_after, Decision, SleepPolicy, NEVER_RECHECK_MS};
use crate::profile::PowerProfile;

/// Sleeps once the host has been quiet for the break-even time `B`
/// ([`break_even_ms`]); sleeps *at once* after a request only when each of
/// the last `streak` gaps it saw in this idle period was at least `B`.
///
/// What it learns is the period's own: [`SleepPolicy::on_period_start`]
/// forgets the gaps seen before, so the hours between two periods (the
/// user's work) never count, and the first decision of a period (the VM's
/// arrival burst is about to come) always waits `B`. A gap that ended in a
/// wake is measured conservatively, as its length less the suspend and
/// resume latencies (`L_s + L_r` of the profile): it is never counted long
/// when the request that woke the host came earlier than `B` after the last
/// one.
///
/// # Bound
///
/// Waiting `B` before sleeping is the deterministic ski-rental rule. A
/// sleep at once that turns out wrong (the next request within `B`) costs
/// at most one sleep cycle and a tick; it needs `streak` long gaps since
/// the previous wrong one, in each of which the offline optimum pays at
/// least a cycle, so its cost is spread over them: the per-gap ratio is
/// `(T + tau + B*) / B* + (1 + tau / B*) / streak`, `T` the timeout, `B*`
/// the exact break-even time, `tau` the decision tick. The bound in the
/// simulator's model, with its derivation, is
/// [`crate::bound::competitive_bound`].
#[derive(Clone, Debug)]
pub struct BreakEven {
    break_even_ms: Option<u64>,
    streak_needed: u32,
    transitions_ms: u64,
    last_seen_ms: Option<u64>,
    slept: bool,
    streak: u32,
}

impl BreakEven {
    /// Long gaps in a row before it sleeps at once after a request.
    pub const DEFAULT_STREAK: u32 = 2;

    /// The policy for `profile`, with [`BreakEven::DEFAULT_STREAK`].
    pub fn new(profile: &PowerProfile) -> Self {
        Self::with_streak(profile, Self::DEFAULT_STREAK)
    }

    /// The policy for `profile`, sleeping at once after `streak` long gaps
    /// in a row (at least 1).
    pub fn with_streak(profile: &PowerProfile, streak: u32) -> Self {
        Self {
            break_even_ms: break_even_ms(profile),
            streak_needed: streak.max(1),
            transitions_ms: profile.suspend.latency_ms + profile.resume.latency_ms,
            last_seen_ms: None,
            slept: false,
            streak: 0,
        }
    }

    /// The break-even time in use.
    pub fn break_even_ms(&self) -> Option<u64> {
        self.break_even_ms
    }

    /// Long gaps in a row needed to sleep at once.
    pub fn streak_needed(&self) -> u32 {
        self.streak_needed
    }

    /// Long gaps in a row seen so far in this period.
    pub fn streak(&self) -> u32 {
        self.streak
    }
}

impl SleepPolicy for BreakEven {
    fn on_request(&mut self, t_ms: u64) {
        match self.last_seen_ms {
            Some(prev) if t_ms <= prev => return,
            Some(prev) => {
                // after a sleep the request came at least L_s + L_r earlier
                let end = if self.slept {
                    t_ms.saturating_sub(self.transitions_ms)
                } else {
                    t_ms
                };
                let long = self
                    .break_even_ms
                    .is_some_and(|be| end.saturating_sub(prev) >= be);
                self.streak = if long {
                    self.streak.saturating_add(1)
                } else {
                    0
                };
            }
            None => {}
        }
        self.last_seen_ms = Some(t_ms);
        self.slept = false;
    }

    fn on_period_start(&mut self, t_ms: u64) {
        self.last_seen_ms = Some(t_ms);
        self.slept = false;
        self.streak = 0;
    }

    fn decide(&mut self, now_ms: u64, last_request_ms: u64) -> Decision {
        self.on_request(last_request_ms);
        let Some(be) = self.break_even_ms else {
            return Decision::StayAwake {
                recheck_in_ms: NEVER_RECHECK_MS,
            };
        };
        let at_once = self.streak >= self.streak_needed;
        let d = if at_once {
            Decision::Sleep
        } else {
            sleep_after(be, now_ms, last_request_ms)
        };
        if d == Decision::Sleep {
            self.slept = true;
        }
        d
    }
}

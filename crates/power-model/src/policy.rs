//! Sleep scheduling: when may a woken desktop go back to sleep?
//!
//! Pure code shared by the daemons and the simulator: a [`SleepPolicy`] is
//! told when requests (page fetches, user input) are served and answers,
//! when asked, whether to sleep now or when to ask again.
//!
//! # Break-even time
//!
//! With idle power `P_i`, asleep power `P_s`, suspend and resume latencies
//! `L_s`, `L_r` and energies `E_s`, `E_r`, a gap of `t >= L_s + L_r` between
//! two requests costs
//!
//! ```text
//! awake:  E_awake(t) = P_i t
//! asleep: E_sleep(t) = E_s + E_r + P_s (t - L_s - L_r)
//! ```
//!
//! They are equal at `t* = (E_s + E_r - P_s (L_s + L_r)) / (P_i - P_s)`;
//! sleeping pays off for longer gaps. A gap shorter than `L_s + L_r` cannot
//! be slept through at all, so the break-even time is
//! `max(t*, L_s + L_r)`, and there is none when `P_i <= P_s`. With the
//! default profile: `(180 + 400 - 3 x 8) / (60 - 3) = 9.755 s`.

use serde::{Deserialize, Serialize};

use crate::profile::PowerProfile;

/// How long a policy that never sleeps asks to be left alone (one hour).
pub const NEVER_RECHECK_MS: u64 = 3_600_000;

/// How often the desktop agent's power loop asks its policy (ms): the
/// simulator's default decision tick.
pub const AGENT_TICK_MS: u64 = 250;

/// The profile a desktop's sleep policy is built from: with selective
/// resume its wakes (for page misses) cost the service resume, so the
/// policy weighs that one ([`PowerProfile::service_resume`]). The agent and
/// the simulator both build their policies from it.
pub fn policy_profile(profile: &PowerProfile, selective_resume: bool) -> PowerProfile {
    if selective_resume {
        PowerProfile {
            resume: profile.service_resume(),
            ..profile.clone()
        }
    } else {
        profile.clone()
    }
}

/// A policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Stay awake and ask again in this many milliseconds (or at the next request).
    StayAwake {
        /// Milliseconds until the next [`SleepPolicy::decide`].
        recheck_in_ms: u64,
    },
    /// Go to sleep now.
    Sleep,
}

/// A sleep-scheduling policy. Times are milliseconds on the caller's clock.
pub trait SleepPolicy: Send + std::fmt::Debug {
    /// A request was served at `t_ms` (the default ignores it; `decide`
    /// also sees the last request's time).
    fn on_request(&mut self, _t_ms: u64) {}

    /// An idle period starts at `t_ms`: the VM has just left for the
    /// server, the host is awake and the quiet time counts from here. A
    /// policy that learns forgets what it saw before (the gap since the
    /// previous period spans the user's work, not the VM's requests); the
    /// default ignores it.
    fn on_period_start(&mut self, _t_ms: u64) {}

    /// Whether to sleep at `now_ms`, the last request having been served at
    /// `last_request_ms` (the host's wake-up time if none since).
    fn decide(&mut self, now_ms: u64, last_request_ms: u64) -> Decision;
}

/// The break-even time of `profile` in milliseconds (rounded up), `None` if
/// sleeping never pays off. See the module documentation for the formula.
pub fn break_even_ms(profile: &PowerProfile) -> Option<u64> {
    let (s, r, d) = (&profile.suspend, &profile.resume, &profile.desktop);
    let margin_w = d.idle_w - d.asleep_w;
    if margin_w <= 0.0 {
        return None;
    }
    let transitions_ms = s.latency_ms + r.latency_ms;
    let transitions_s = transitions_ms as f64 / 1000.0;
    let t_star_s = (s.energy_j + r.energy_j - d.asleep_w * transitions_s) / margin_w;
    let t_star_ms = (t_star_s * 1000.0).ceil().max(0.0) as u64;
    Some(t_star_ms.max(transitions_ms))
}

/// Sleeps after a fixed time without requests.
#[derive(Clone, Debug)]
pub struct FixedTimeout {
    /// Milliseconds of quiet before sleeping.
    pub timeout_ms: u64,
}

impl SleepPolicy for FixedTimeout {
    fn decide(&mut self, now_ms: u64, last_request_ms: u64) -> Decision {
        sleep_after(self.timeout_ms, now_ms, last_request_ms)
    }
}

/// Sleep once `timeout_ms` passed since the last request; otherwise stay
/// awake until then.
fn sleep_after(timeout_ms: u64, now_ms: u64, last_request_ms: u64) -> Decision {
    let idle = now_ms.saturating_sub(last_request_ms);
    if idle >= timeout_ms {
        Decision::Sleep
    } else {
        Decision::StayAwake {
            recheck_in_ms: timeout_ms - idle,
        }
    }
}

/// Never sleeps: the "desktop left on" baseline.
#[derive(Clone, Debug, Default)]
pub struct NeverSleep;

impl SleepPolicy for NeverSleep {
    fn decide(&mut self, _now_ms: u64, _last_request_ms: u64) -> Decision {
        Decision::StayAwake {
            recheck_in_ms: NEVER_RECHECK_MS,
        }
    }
}

#[path = "break_even.rs"]
mod break_even;
pub use break_even::BreakEven;

/// Randomized ski rental: after each request, sleeps once the host has been
/// quiet for a timeout drawn afresh from the density
/// `p(t) = e^(t/B) / (B (e - 1))` on `[0, B]`, `B` the break-even time.
///
/// Its expected energy over any gap is at most `e/(e-1)` (about 1.58) times
/// the offline optimum, the best ratio an online policy can guarantee
/// (Karlin et al., "Competitive randomized algorithms for nonuniform
/// problems", Algorithmica 1994). Deterministic given its seed
/// (a splitmix64 generator).
#[derive(Clone, Debug)]
pub struct SkiRental {
    break_even_ms: Option<u64>,
    rng: u64,
    gap_start_ms: Option<u64>,
    timeout_ms: u64,
}

impl SkiRental {
    /// The seed [`PolicyConfig`] uses.
    pub const DEFAULT_SEED: u64 = 0x5eed;

    /// The policy for `profile`, its draws seeded with `seed`.
    pub fn new(profile: &PowerProfile, seed: u64) -> Self {
        Self {
            break_even_ms: break_even_ms(profile),
            rng: seed,
            gap_start_ms: None,
            timeout_ms: 0,
        }
    }

    /// The timeout drawn for the current gap (0 before the first decision).
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// A uniform draw in `[0, 1)` (splitmix64).
    fn uniform(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / (1u128 << 64) as f64
    }
}

impl SleepPolicy for SkiRental {
    fn decide(&mut self, now_ms: u64, last_request_ms: u64) -> Decision {
        let Some(be) = self.break_even_ms else {
            return Decision::StayAwake {
                recheck_in_ms: NEVER_RECHECK_MS,
            };
        };
        if self.gap_start_ms != Some(last_request_ms) {
            self.gap_start_ms = Some(last_request_ms);
            // inverse of the CDF F(t) = (e^(t/B) - 1) / (e - 1)
            let u = self.uniform();
            let t = be as f64 * (1.0 + u * (std::f64::consts::E - 1.0)).ln();
            self.timeout_ms = (t.floor() as u64).min(be);
        }
        sleep_after(self.timeout_ms, now_ms, last_request_ms)
    }
}

/// The offline optimum, for comparison only: it is told every future
/// request's time and sleeps at once iff the gap to the next one exceeds the
/// break-even time (so it sleeps through no gap it should not, and never
/// pays for waiting). With no request left it sleeps.
#[derive(Clone, Debug)]
pub struct Oracle {
    break_even_ms: Option<u64>,
    future_ms: Vec<u64>,
}

impl Oracle {
    /// The oracle for `profile`, knowing the requests at `future_ms`
    /// (sorted here).
    pub fn new(profile: &PowerProfile, mut future_ms: Vec<u64>) -> Self {
        future_ms.sort_unstable();
        Self {
            break_even_ms: break_even_ms(profile),
            future_ms,
        }
    }
}

impl SleepPolicy for Oracle {
    fn decide(&mut self, now_ms: u64, _last_request_ms: u64) -> Decision {
        let i = self.future_ms.partition_point(|&t| t <= now_ms);
        let (Some(be), Some(&next)) = (self.break_even_ms, self.future_ms.get(i)) else {
            return match self.break_even_ms {
                Some(_) => Decision::Sleep,
                None => Decision::StayAwake {
                    recheck_in_ms: NEVER_RECHECK_MS,
                },
            };
        };
        if next - now_ms > be {
            Decision::Sleep
        } else {
            Decision::StayAwake {
                recheck_in_ms: next - now_ms,
            }
        }
    }
}

/// A policy chosen by configuration: `policy = "break-even"`,
/// `policy = "ski-rental"`, `policy = "never"` or
/// `policy = { fixed_timeout_s = 30 }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PolicyConfig {
    /// A policy without parameters.
    Named(PolicyName),
    /// [`FixedTimeout`].
    FixedTimeout(FixedTimeoutConfig),
}

/// The policies chosen by name alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// [`BreakEven`] from the power profile.
    BreakEven,
    /// [`SkiRental`] with [`SkiRental::DEFAULT_SEED`].
    SkiRental,
    /// [`NeverSleep`].
    Never,
}

/// Parameters of [`FixedTimeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedTimeoutConfig {
    /// Seconds without requests before sleeping.
    pub fixed_timeout_s: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self::Named(PolicyName::BreakEven)
    }
}

impl PolicyConfig {
    /// The configured policy for a host with `profile`.
    pub fn build(&self, profile: &PowerProfile) -> Box<dyn SleepPolicy> {
        match self {
            Self::Named(PolicyName::BreakEven) => Box::new(BreakEven::new(profile)),
            Self::Named(PolicyName::SkiRental) => {
                Box::new(SkiRental::new(profile, SkiRental::DEFAULT_SEED))
            }
            Self::Named(PolicyName::Never) => Box::new(NeverSleep),
            Self::FixedTimeout(c) => Box::new(FixedTimeout {
                timeout_ms: c.fixed_timeout_s.saturating_mul(1000),
            }),
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

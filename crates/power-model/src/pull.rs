//! Against wake storms: when to pull the rest of a consolidated VM's
//! memory during one wake, so that its desktop sleeps through the rest of
//! the period (partial migration turned full, per VM, when it pays).
//!
//! Pure code shared by the server (which asks at each wake it causes) and
//! the simulator. A [`PullPolicy`] is told each wake of the desktop for the
//! VM's pages ([`PullPolicy::on_wake`]) with the bytes of the VM the server
//! still lacks, and answers [`PullDecision::Pull`] when both hold:
//!
//! * **over budget**: this wake makes more than `max_wakes` wakes within the
//!   last `window_ms` (a nightly scan, an update: demand that would wake the
//!   desktop again and again);
//! * **it pays**, over a horizon of one window, assuming wakes go on at the
//!   rate just seen: the wakes it spares, each costing
//!   [`PullPolicy::wake_j`] (suspend and resume energies, plus idle power
//!   for the break-even time that a policy stays up after a wake), cost more
//!   than the pull (the desktop kept awake, at idle power, for the
//!   rate-limited transfer of the missing bytes) plus the server's larger
//!   share for a fully migrated VM over the horizon
//!   (`watts_per_vm - watts_per_partial_vm`, or nothing: [`PullCharge`]).
//!
//! With the default profile a wake costs about 1.1 kJ and the larger server
//! share 24 kJ an hour, so a pull pays only in a storm of about 20 wakes an
//! hour or more; between the budget and that, the policy keeps waking
//! (delay is then the budget's concern, and [`PullConfig::max_wakes`] can
//! be paired with `always_when_over_budget` to put delay first).
//!
//! A VM pulls at most once per period; [`PullPolicy::on_period_start`]
//! forgets the wakes of earlier periods.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::policy::break_even_ms;
use crate::profile::PowerProfile;

/// The pull policy's settings (the server's `[pull]` section).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullConfig {
    /// Whether to pull at all (`false`: the policy records wakes and always
    /// answers [`PullDecision::Wait`]).
    pub enabled: bool,
    /// Wakes allowed within `window_ms` before a pull is considered.
    pub max_wakes: u32,
    /// The budget's window, ms (one hour); also the horizon of the cost
    /// comparison.
    pub window_ms: u64,
    /// The pull's rate limit, bytes per second (the transfer leaves room
    /// for the LAN's other traffic).
    pub rate_bytes_per_s: u64,
    /// Pull whenever over budget, even when the energy comparison says it
    /// does not pay (delay first).
    pub always_when_over_budget: bool,
    /// What a pulled VM costs the server from the pull on.
    pub charge: PullCharge,
}

/// The server's share charged to a VM once its memory is pulled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullCharge {
    /// A fully migrated VM's share (`watts_per_vm`): the pessimistic view,
    /// as if the whole VM then sat in the server's memory.
    #[default]
    FullVm,
    /// The partially migrated VM's share, unchanged: the pulled pages sit
    /// in the replica on the server's disk and in reclaimable page cache,
    /// not in memory the guest holds (the optimistic view; which one holds
    /// is the density measurement's question).
    Partial,
}

impl Default for PullConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_wakes: 4,
            window_ms: 3_600_000,
            rate_bytes_per_s: 50_000_000,
            always_when_over_budget: false,
            charge: PullCharge::FullVm,
        }
    }
}

/// What to do at a wake.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PullDecision {
    /// Serve the miss and let the desktop sleep again as its policy says.
    Wait,
    /// Pull every missing byte now, rate-limited: it takes about
    /// `duration_ms`, during which the desktop stays up.
    Pull {
        /// The transfer's time at the rate limit.
        duration_ms: u64,
        /// The energy comparison behind the decision (joules over the
        /// horizon): the wakes spared, and the pull plus the server's extra.
        wakes_j: f64,
        /// The pull's joules (desktop awake) plus the server's extra share.
        pull_j: f64,
    },
}

/// The pull decision for one VM (see the module doc).
#[derive(Clone, Debug)]
pub struct PullPolicy {
    config: PullConfig,
    wake_j: f64,
    awake_w: f64,
    extra_server_w: f64,
    wakes: VecDeque<u64>,
    pulled: bool,
}

impl PullPolicy {
    /// The policy for a desktop with `profile` (the one its sleep policy is
    /// built from: with selective resume, the service resume).
    pub fn new(config: PullConfig, profile: &PowerProfile) -> Self {
        let d = &profile.desktop;
        let up_s = break_even_ms(profile).unwrap_or(0) as f64 / 1000.0;
        let wake_j = profile.suspend.energy_j
            + profile.resume.energy_j
            + (d.idle_w - d.asleep_w).max(0.0) * up_s;
        let extra_server_w = match config.charge {
            PullCharge::FullVm => {
                (profile.server.watts_per_vm() - profile.server.watts_per_partial_vm()).max(0.0)
            }
            PullCharge::Partial => 0.0,
        };
        Self {
            config,
            wake_j,
            awake_w: d.idle_w,
            extra_server_w,
            wakes: VecDeque::new(),
            pulled: false,
        }
    }

    /// The estimated joules of one wake for pages.
    pub fn wake_j(&self) -> f64 {
        self.wake_j
    }

    /// The server's extra watts for a pulled VM ([`PullCharge`]).
    pub fn extra_server_w(&self) -> f64 {
        self.extra_server_w
    }

    /// The settings.
    pub fn config(&self) -> &PullConfig {
        &self.config
    }

    /// A new idle period starts: forget earlier wakes and pulls.
    pub fn on_period_start(&mut self) {
        self.wakes.clear();
        self.pulled = false;
    }

    /// The wakes within the window, as of the last [`Self::on_wake`].
    pub fn wakes_in_window(&self) -> usize {
        self.wakes.len()
    }

    /// Whether this period already pulled.
    pub fn pulled(&self) -> bool {
        self.pulled
    }

    /// The rate-limited transfer time of `bytes`, ms.
    pub fn pull_ms(&self, bytes: u64) -> u64 {
        let rate = self.config.rate_bytes_per_s.max(1) as f64;
        (bytes as f64 / rate * 1000.0).ceil() as u64
    }

    /// The desktop was woken for the VM's pages at `now_ms` (times must not
    /// go back); `missing_bytes` of the VM are not on the server yet.
    pub fn on_wake(&mut self, now_ms: u64, missing_bytes: u64) -> PullDecision {
        let window = self.config.window_ms.max(1);
        while self
            .wakes
            .front()
            .is_some_and(|&w| now_ms.saturating_sub(w) >= window)
        {
            self.wakes.pop_front();
        }
        self.wakes.push_back(now_ms);
        if !self.config.enabled || self.pulled || missing_bytes == 0 {
            return PullDecision::Wait;
        }
        let seen = self.wakes.len() as u64;
        if seen <= u64::from(self.config.max_wakes) {
            return PullDecision::Wait;
        }
        let duration_ms = self.pull_ms(missing_bytes);
        // the rate seen over the window (or since its first wake, if the
        // period is younger), carried over one window
        let span_ms = now_ms.saturating_sub(self.wakes[0]).max(1).min(window);
        let rate_per_ms = (seen - 1).max(1) as f64 / span_ms as f64;
        let wakes_j = rate_per_ms * window as f64 * self.wake_j;
        let pull_j = self.awake_w * duration_ms as f64 / 1000.0
            + self.extra_server_w * window as f64 / 1000.0;
        if wakes_j > pull_j || self.config.always_when_over_budget {
            self.pulled = true;
            PullDecision::Pull {
                duration_ms,
                wakes_j,
                pull_j,
            }
        } else {
            PullDecision::Wait
        }
    }
}

#[cfg(test)]
#[path = "pull_tests.rs"]
mod tests;

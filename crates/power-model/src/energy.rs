//! The energy meter: a [`Timeline`] integrated with a [`PowerProfile`].
//!
//! * Steady states cost their watts times their recorded time.
//! * Transitions (Suspending, Resuming) cost their profile's average power
//!   (energy / latency) times their recorded time, so a transition that took
//!   exactly the modelled latency costs exactly the modelled energy, and a
//!   slower one costs proportionally more. A transition with zero modelled
//!   latency costs its energy once per occurrence.
//! * Each resume is charged for what it resumed
//!   ([`crate::timeline::ResumeScope`]): a plain wake the full resume, a
//!   selective (service-only) wake [`PowerProfile::service_resume`], and the
//!   rest of the devices after it (the user came back) the remainder, full
//!   minus service ([`rest_resume`]), so a service wake followed by the rest
//!   costs exactly one full resume.
//! * Each VM consolidated on the server costs the server's share per
//!   partially migrated VM
//!   ([`crate::profile::ServerPower::watts_per_partial_vm`]: Jettison's VMs
//!   hold only the pages they fetched there) for its time there, as in the
//!   simulator.
//! * The baseline is the desktop left on over the same wall time: its
//!   active time at active power, every other moment at idle power.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::profile::{PowerProfile, Transition};
use crate::timeline::{HostState, Placement, ResumeScope, Timeline, TimelineError, WakeReason};

/// Milliseconds spent in each state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateTimes {
    /// In [`HostState::Active`].
    pub active_ms: u64,
    /// In [`HostState::Idle`].
    pub idle_ms: u64,
    /// In [`HostState::Suspending`].
    pub suspending_ms: u64,
    /// In [`HostState::Asleep`].
    pub asleep_ms: u64,
    /// In [`HostState::Resuming`].
    pub resuming_ms: u64,
}

impl StateTimes {
    fn slot(&mut self, s: HostState) -> &mut u64 {
        match s {
            HostState::Active => &mut self.active_ms,
            HostState::Idle => &mut self.idle_ms,
            HostState::Suspending => &mut self.suspending_ms,
            HostState::Asleep => &mut self.asleep_ms,
            HostState::Resuming => &mut self.resuming_ms,
        }
    }
}

/// Wakes counted by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeCounts {
    /// [`WakeReason::PageMiss`].
    pub page_miss: u32,
    /// [`WakeReason::UserReturn`].
    pub user_return: u32,
    /// [`WakeReason::Other`], by description.
    pub other: BTreeMap<String, u32>,
}

/// What a timeline cost, against the desktop left on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnergyReport {
    /// Milliseconds from the first event to the end of the measurement.
    pub wall_ms: u64,
    /// Time per state.
    pub time: StateTimes,
    /// Joules used by the desktop.
    pub desktop_j: f64,
    /// Joules charged for the VMs' time on the server.
    pub server_j: f64,
    /// `desktop_j + server_j`.
    pub total_j: f64,
    /// Joules the desktop would have used left on.
    pub baseline_j: f64,
    /// Saved against the baseline, in percent (negative: it cost more).
    pub savings_percent: f64,
    /// Number of wakes.
    pub wakes: u32,
    /// Wakes by reason.
    pub wake_reasons: WakeCounts,
    /// Of the wakes, those that resumed the service devices only.
    #[serde(default)]
    pub service_wakes: u32,
    /// Resumes of the remaining devices after a service-only wake.
    #[serde(default)]
    pub rest_resumes: u32,
    /// Per VM, milliseconds spent on the server.
    pub vm_server_ms: BTreeMap<String, u64>,
}

/// Integrates `timeline` from its first event to `until_ms` (which must not
/// be earlier than the last recorded host event).
pub fn meter(
    timeline: &Timeline,
    profile: &PowerProfile,
    until_ms: u64,
) -> Result<EnergyReport, TimelineError> {
    let &(start_ms, _) = timeline.events.first().ok_or(TimelineError::Empty)?;
    let &(last_ms, _) = timeline.events.last().ok_or(TimelineError::Empty)?;
    if until_ms < last_ms {
        return Err(TimelineError::Backwards {
            t_ms: until_ms,
            last_ms,
        });
    }
    let d = &profile.desktop;
    let mut time = StateTimes::default();
    let mut desktop_j = 0.0;
    for (state, from, to) in timeline.intervals(until_ms) {
        let ms = to - from;
        *time.slot(state) += ms;
        let w = match state {
            HostState::Resuming => {
                resume_transition(profile, timeline.resume_scope(from)).average_w()
            }
            s => watts(profile, s),
        };
        desktop_j += w * ms as f64 / 1000.0;
    }
    for &(t_ms, state) in &timeline.events {
        let t = match state {
            HostState::Suspending => profile.suspend.clone(),
            HostState::Resuming => resume_transition(profile, timeline.resume_scope(t_ms)),
            _ => continue,
        };
        if t.latency_ms == 0 {
            desktop_j += t.energy_j;
        }
    }
    let mut vm_server_ms = BTreeMap::new();
    for (vm, changes) in &timeline.vms {
        let mut ms = 0;
        for (i, &(t, p)) in changes.iter().enumerate() {
            let end = changes.get(i + 1).map_or(until_ms, |e| e.0).min(until_ms);
            let begin = t.max(start_ms);
            if p == Placement::Server && end > begin {
                ms += end - begin;
            }
        }
        vm_server_ms.insert(vm.clone(), ms);
    }
    let server_j = vm_server_ms
        .values()
        .map(|&ms| profile.server.watts_per_partial_vm() * ms as f64 / 1000.0)
        .sum::<f64>();
    let wall_ms = until_ms - start_ms;
    let baseline_j = (d.active_w * time.active_ms as f64
        + d.idle_w * (wall_ms - time.active_ms) as f64)
        / 1000.0;
    let total_j = desktop_j + server_j;
    let savings_percent = if baseline_j > 0.0 {
        100.0 * (baseline_j - total_j) / baseline_j
    } else {
        0.0
    };
    let mut wake_reasons = WakeCounts::default();
    for (_, r) in &timeline.wakes {
        match r {
            WakeReason::PageMiss => wake_reasons.page_miss += 1,
            WakeReason::UserReturn => wake_reasons.user_return += 1,
            WakeReason::Other(s) => *wake_reasons.other.entry(s.clone()).or_default() += 1,
        }
    }
    Ok(EnergyReport {
        wall_ms,
        time,
        desktop_j,
        server_j,
        total_j,
        baseline_j,
        savings_percent,
        wakes: timeline.wakes.len() as u32,
        wake_reasons,
        service_wakes: timeline.service_wakes.len() as u32,
        rest_resumes: timeline.rest_resumes.len() as u32,
        vm_server_ms,
    })
}

/// What a resume of `scope` costs under `profile`.
pub fn resume_transition(profile: &PowerProfile, scope: ResumeScope) -> Transition {
    match scope {
        ResumeScope::Full => profile.resume.clone(),
        ResumeScope::Service => profile.service_resume(),
        ResumeScope::Rest => rest_resume(profile),
    }
}

/// The devices a service-only wake leaves asleep: the full resume minus
/// [`PowerProfile::service_resume`] (latency and energy).
pub fn rest_resume(profile: &PowerProfile) -> Transition {
    let (full, service) = (&profile.resume, profile.service_resume());
    Transition {
        latency_ms: full.latency_ms.saturating_sub(service.latency_ms),
        energy_j: (full.energy_j - service.energy_j).max(0.0),
    }
}

/// Watts the desktop draws in `state` (transitions at their average power;
/// Resuming as a full resume).
pub fn watts(profile: &PowerProfile, state: HostState) -> f64 {
    match state {
        HostState::Active => profile.desktop.active_w,
        HostState::Idle => profile.desktop.idle_w,
        HostState::Asleep => profile.desktop.asleep_w,
        HostState::Suspending => profile.suspend.average_w(),
        HostState::Resuming => profile.resume.average_w(),
    }
}

#[cfg(test)]
#[path = "energy_tests.rs"]
mod tests;

//! The recorded timeline of a host's real power-state changes, its wakes and
//! where its VMs ran. Pure data; the energy meter ([`crate::energy`])
//! integrates it.
//!
//! Times are milliseconds on one monotonic clock chosen by the recorder
//! (the emulated backend counts from its creation).
//!
//! Selective resume: a wake that resumes only the devices needed to serve
//! pages is recorded with [`Timeline::record_service_wake`]; if the user
//! comes back while the host is up after such a wake, the rest of the
//! devices resume ([`Timeline::record_rest_resume`]): the host goes from
//! Idle or Active through Resuming again. Both are listed by time
//! ([`Timeline::service_wakes`], [`Timeline::rest_resumes`]); a timeline
//! recorded before selective resume existed has neither, and every wake in
//! it is a full resume.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A host's power state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    /// On, with a user at it.
    Active,
    /// On, nobody using it.
    Idle,
    /// On its way to sleep.
    Suspending,
    /// Asleep (S3): only a WoL packet or the user wakes it.
    Asleep,
    /// Waking up.
    Resuming,
}

impl HostState {
    /// All states, in declaration order.
    pub const ALL: [HostState; 5] = [
        Self::Active,
        Self::Idle,
        Self::Suspending,
        Self::Asleep,
        Self::Resuming,
    ];

    /// Whether a host in `self` may go to `next` directly. A suspend may be
    /// aborted (Suspending -> Active/Idle); a sleeping host only wakes up
    /// through Resuming.
    pub fn can_go_to(self, next: HostState) -> bool {
        use HostState::*;
        matches!(
            (self, next),
            (Active, Idle)
                | (Idle, Active)
                | (Active | Idle, Suspending)
                | (Suspending, Asleep | Active | Idle)
                | (Asleep, Resuming)
                | (Resuming, Active | Idle)
        )
    }

    /// Whether the host runs software (not asleep and not in transition).
    pub fn is_awake(self) -> bool {
        matches!(self, Self::Active | Self::Idle)
    }

    /// A small code for lock-free storage ([`HostState::from_code`]).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The state with this [`HostState::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }
}

/// Why a sleeping host was woken.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WakeReason {
    /// The consolidation server needed a memory page the desktop holds.
    PageMiss,
    /// The user came back (keyboard, mouse, power button).
    UserReturn,
    /// Anything else, described.
    Other(String),
}

impl fmt::Display for WakeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PageMiss => f.write_str("page miss"),
            Self::UserReturn => f.write_str("user return"),
            Self::Other(s) => write!(f, "other: {s}"),
        }
    }
}

/// Where a VM runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// On its desktop.
    Desktop,
    /// Consolidated on the server.
    Server,
}

/// A change that cannot be recorded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TimelineError {
    /// An event older than the last one recorded.
    #[error("time went backwards: {t_ms} ms after {last_ms} ms")]
    Backwards {
        /// The new event's time.
        t_ms: u64,
        /// The last recorded time.
        last_ms: u64,
    },
    /// A transition the state machine does not have.
    #[error("no transition from {from:?} to {to:?}")]
    Transition {
        /// The current state.
        from: HostState,
        /// The requested state.
        to: HostState,
    },
    /// Resuming must be recorded with its reason ([`Timeline::record_wake`]).
    #[error("a wake must be recorded with its reason")]
    WakeWithoutReason,
    /// The timeline has no events.
    #[error("empty timeline")]
    Empty,
}

/// How much history a long-lived recorder keeps in memory (ms): 35 days,
/// enough for a month of energy per day ([`Timeline::forget_before`]).
pub const HISTORY_KEPT_MS: u64 = 35 * 24 * 3_600_000;

/// One host's recorded history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// State changes, in time order; the first one sets the initial state.
    pub events: Vec<(u64, HostState)>,
    /// Wakes with their reasons, one per entry into [`HostState::Resuming`].
    pub wakes: Vec<(u64, WakeReason)>,
    /// Per VM: where it runs from each time on.
    pub vms: BTreeMap<String, Vec<(u64, Placement)>>,
    /// Times of the wakes (entries of [`Timeline::wakes`]) that resumed the
    /// service devices only (selective resume).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_wakes: Vec<u64>,
    /// Times the rest of the devices started resuming after a service-only
    /// wake (the user came back while the host was up); not wakes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rest_resumes: Vec<u64>,
}

/// What a Resuming interval of a [`Timeline`] resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResumeScope {
    /// Every device (a plain wake).
    Full,
    /// The devices needed to serve pages (a selective wake).
    Service,
    /// The devices a service-only wake left asleep.
    Rest,
}

impl Timeline {
    /// A timeline that starts in `state` at `t_ms`.
    pub fn starting(t_ms: u64, state: HostState) -> Self {
        Self {
            events: vec![(t_ms, state)],
            ..Self::default()
        }
    }

    /// The current state, if anything was recorded.
    pub fn current(&self) -> Option<HostState> {
        self.events.last().map(|e| e.1)
    }

    /// The time of the last recorded event of any kind.
    pub fn last_ms(&self) -> Option<u64> {
        let vm = self
            .vms
            .values()
            .filter_map(|v| v.last())
            .map(|e| e.0)
            .max();
        [self.events.last().map(|e| e.0), vm]
            .into_iter()
            .flatten()
            .max()
    }

    /// The state at `t_ms` (the last change at or before it).
    pub fn state_at(&self, t_ms: u64) -> Option<HostState> {
        self.events
            .iter()
            .take_while(|e| e.0 <= t_ms)
            .last()
            .map(|e| e.1)
    }

    fn check_time(&self, t_ms: u64) -> Result<(), TimelineError> {
        match self.events.last() {
            Some(&(last_ms, _)) if t_ms < last_ms => {
                Err(TimelineError::Backwards { t_ms, last_ms })
            }
            _ => Ok(()),
        }
    }

    fn push(&mut self, t_ms: u64, to: HostState) -> Result<(), TimelineError> {
        self.check_time(t_ms)?;
        match self.current() {
            Some(from) if from == to => return Ok(()),
            Some(from) if !from.can_go_to(to) => {
                return Err(TimelineError::Transition { from, to })
            }
            _ => {}
        }
        self.events.push((t_ms, to));
        Ok(())
    }

    /// Records a state change (recording the current state again is a no-op).
    /// Use [`Timeline::record_wake`] to enter [`HostState::Resuming`].
    pub fn record(&mut self, t_ms: u64, state: HostState) -> Result<(), TimelineError> {
        if state == HostState::Resuming {
            return Err(TimelineError::WakeWithoutReason);
        }
        self.push(t_ms, state)
    }

    /// Records a wake: the host goes from Asleep to Resuming for `reason`.
    pub fn record_wake(&mut self, t_ms: u64, reason: WakeReason) -> Result<(), TimelineError> {
        if self.current() == Some(HostState::Resuming) {
            return Err(TimelineError::Transition {
                from: HostState::Resuming,
                to: HostState::Resuming,
            });
        }
        self.push(t_ms, HostState::Resuming)?;
        self.wakes.push((t_ms, reason));
        Ok(())
    }

    /// Records a selective wake: Asleep to Resuming for `reason`, resuming
    /// only the devices needed to serve pages.
    pub fn record_service_wake(
        &mut self,
        t_ms: u64,
        reason: WakeReason,
    ) -> Result<(), TimelineError> {
        self.record_wake(t_ms, reason)?;
        self.service_wakes.push(t_ms);
        Ok(())
    }

    /// Whether the host is up after a service-only wake whose remaining
    /// devices have not resumed yet.
    pub fn rest_pending(&self) -> bool {
        let Some(&(last_wake, _)) = self.wakes.last() else {
            return false;
        };
        self.service_wakes.last() == Some(&last_wake)
            && self.rest_resumes.last().is_none_or(|&t| t < last_wake)
            && self.current().is_some_and(HostState::is_awake)
    }

    /// Records that the rest of the devices start resuming (the user came
    /// back after a service-only wake): the awake host goes to Resuming.
    pub fn record_rest_resume(&mut self, t_ms: u64) -> Result<(), TimelineError> {
        self.check_time(t_ms)?;
        let from = self.current().ok_or(TimelineError::Empty)?;
        if !self.rest_pending() {
            return Err(TimelineError::Transition {
                from,
                to: HostState::Resuming,
            });
        }
        self.events.push((t_ms, HostState::Resuming));
        self.rest_resumes.push(t_ms);
        Ok(())
    }

    /// What the Resuming interval that started at `t_ms` resumed.
    pub fn resume_scope(&self, t_ms: u64) -> ResumeScope {
        if self.rest_resumes.contains(&t_ms) {
            ResumeScope::Rest
        } else if self.service_wakes.contains(&t_ms) {
            ResumeScope::Service
        } else {
            ResumeScope::Full
        }
    }

    /// Records that `vm` runs at `placement` from `t_ms` on.
    pub fn record_placement(
        &mut self,
        t_ms: u64,
        vm: &str,
        placement: Placement,
    ) -> Result<(), TimelineError> {
        let v = self.vms.entry(vm.to_owned()).or_default();
        if let Some(&(last_ms, _)) = v.last() {
            if t_ms < last_ms {
                return Err(TimelineError::Backwards { t_ms, last_ms });
            }
        }
        v.push((t_ms, placement));
        Ok(())
    }

    /// Forgets what happened before `cut_ms`, so that a long-lived
    /// recorder keeps a bounded history: the timeline then starts with the
    /// state in force at `cut_ms` (its event keeps its own time, so the
    /// intervals from there on are unchanged), wakes and resumes before
    /// that start go (but the wake that led to it), each VM keeps its placement at the start, and a VM
    /// that was home already then and never left again is dropped.
    /// Returns whether anything was forgotten.
    pub fn forget_before(&mut self, cut_ms: u64) -> bool {
        let Some(first) = self.events.iter().rposition(|e| e.0 <= cut_ms) else {
            return false;
        };
        let start = self.events[first].0;
        let mut forgot = first > 0;
        self.events.drain(..first);
        // The wake that led to the state at the start stays: whether the
        // rest of a service-only wake is pending depends on it.
        let wake = self
            .wakes
            .iter()
            .rev()
            .find(|w| w.0 <= start)
            .map_or(start, |w| w.0);
        let before = self.wakes.len() + self.service_wakes.len() + self.rest_resumes.len();
        self.wakes.retain(|w| w.0 >= wake);
        self.service_wakes.retain(|&t| t >= wake);
        self.rest_resumes.retain(|&t| t >= wake);
        forgot |= before != self.wakes.len() + self.service_wakes.len() + self.rest_resumes.len();
        self.vms.retain(|_, v| {
            if let Some(keep) = v.iter().rposition(|e| e.0 <= start) {
                forgot |= keep > 0;
                v.drain(..keep);
            }
            let gone = v.len() == 1 && v[0].0 <= start && v[0].1 == Placement::Desktop;
            forgot |= gone;
            !gone
        });
        forgot
    }

    /// The host's states as `(state, from_ms, to_ms)` intervals up to `until_ms`
    /// (later events are cut off); empty intervals are left out.
    pub fn intervals(&self, until_ms: u64) -> Vec<(HostState, u64, u64)> {
        let mut out = Vec::new();
        for (i, &(t, s)) in self.events.iter().enumerate() {
            let end = self
                .events
                .get(i + 1)
                .map_or(until_ms, |e| e.0)
                .min(until_ms);
            if end > t {
                out.push((s, t, end));
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;

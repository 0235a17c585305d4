//! A desktop agent's recorded power and fetch trace: the records the agent
//! appends as JSON lines (one [`TraceRecord`] per line, files written and
//! read by [`crate::trace_files`]), and their assembly into one run
//! ([`RecordedRun`]): the host's timeline and the fetches it served, on one
//! clock. [`crate::replay`] turns a run into a [`crate::FleetTrace`] and
//! replays it. Pure.
//!
//! Every file starts with a [`TraceHeader`]: the agent's settings and the
//! wall-clock time of its clock's zero, so that the files of several agent
//! runs (each with a clock of its own) line up. Records are in the order
//! the agent wrote them, which is not always time order (fetches are
//! written as they are served, state changes at the power loop's next
//! tick); assembly sorts each run's records by time.

use jettison_power_model::{
    HostState, Placement, PolicyConfig, PowerProfile, Timeline, TimelineError, WakeReason,
};
use serde::{Deserialize, Serialize};

/// The version of the format [`TraceHeader::version`] states.
pub const TRACE_VERSION: u32 = 1;

/// The settings in force while the records after it were written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// [`TRACE_VERSION`].
    pub version: u32,
    /// The desktop's name.
    pub host: String,
    /// Unix time (ms) at the zero of the clock the records' `t_ms` count
    /// on (one per agent run).
    pub clock_zero_unix_ms: u64,
    /// The power profile.
    pub profile: PowerProfile,
    /// The sleep policy.
    pub policy: PolicyConfig,
    /// Whether page-miss wakes resumed the service devices only.
    pub selective_resume: bool,
    /// How often the power loop asked the policy, ms.
    pub tick_ms: u64,
}

/// The file a fetch read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordedFile {
    /// The VM's memory.
    Memory,
    /// The VM's disk.
    Disk,
}

/// One line of a trace file. Times are ms on the run's clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TraceRecord {
    /// First line of every file.
    Header(TraceHeader),
    /// The host entered `state` (never Resuming: see `Wake`, `RestResume`).
    State {
        /// When.
        t_ms: u64,
        /// The state.
        state: HostState,
    },
    /// The host woke (went from Asleep to Resuming).
    Wake {
        /// When.
        t_ms: u64,
        /// Why.
        reason: WakeReason,
        /// Whether only the service devices resumed (selective resume).
        #[serde(default)]
        service: bool,
    },
    /// The devices a service-only wake left asleep resume (the user came
    /// back while the host was up).
    RestResume {
        /// When.
        t_ms: u64,
    },
    /// A VM runs at `placement` from now on: a migration (server) or a
    /// return (desktop).
    Placement {
        /// When.
        t_ms: u64,
        /// The VM.
        vm: String,
        /// Where it runs.
        placement: Placement,
    },
    /// The user came back (`present`) or idle detection found them away.
    User {
        /// When.
        t_ms: u64,
        /// Back, or away.
        present: bool,
    },
    /// The sleep policy said sleep, `quiet_ms` after the last fetch.
    Sleep {
        /// When.
        t_ms: u64,
        /// Time since the last fetch served (or the period's start).
        quiet_ms: u64,
    },
    /// The state server served a fetch.
    Fetch {
        /// When it was served.
        t_ms: u64,
        /// The VM.
        vm: String,
        /// Its memory or its disk.
        file: RecordedFile,
        /// The lowest page asked for.
        first_page: u64,
        /// Pages it carried.
        pages: u64,
    },
}

impl TraceRecord {
    /// Its time (none for a header).
    pub fn t_ms(&self) -> Option<u64> {
        match self {
            Self::Header(_) => None,
            Self::State { t_ms, .. }
            | Self::Wake { t_ms, .. }
            | Self::RestResume { t_ms }
            | Self::Placement { t_ms, .. }
            | Self::User { t_ms, .. }
            | Self::Sleep { t_ms, .. }
            | Self::Fetch { t_ms, .. } => Some(*t_ms),
        }
    }
}

/// A fetch of a recorded run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedFetch {
    /// When, ms since the run's start.
    pub t_ms: u64,
    /// The VM.
    pub vm: String,
    /// Its file.
    pub file: RecordedFile,
    /// The lowest page asked for.
    pub first_page: u64,
    /// Pages it carried.
    pub pages: u64,
}

/// Recorded files assembled on one clock: ms since the earliest record.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRun {
    /// The first header (the settings the replay uses).
    pub header: TraceHeader,
    /// Agent runs (distinct clocks) in the files.
    pub agent_runs: usize,
    /// Whether the settings changed between headers (the replay uses the
    /// first).
    pub settings_changed: bool,
    /// The host's states, wakes and VM placements.
    pub timeline: Timeline,
    /// The fetches served, by time.
    pub fetches: Vec<RecordedFetch>,
    /// The user's returns (`true`) and departures, by time.
    pub user: Vec<(u64, bool)>,
    /// The sleep policy's decisions to sleep, by time.
    pub sleep_decisions: Vec<u64>,
    /// The end of the run: its last record's time.
    pub until_ms: u64,
}

/// Errors of assembly.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordedError {
    /// Records before any header: their clock is unknown.
    #[error("the trace does not start with a header")]
    NoHeader,
    /// No state record: there is no timeline to replay.
    #[error("the trace records no host state")]
    NoStates,
    /// A header of a version this build does not read.
    #[error("trace version {0} (this build reads {TRACE_VERSION})")]
    Version(u32),
}

/// Assembles records (the files' lines, files in order) into one run.
pub fn assemble(records: &[TraceRecord]) -> Result<RecordedRun, RecordedError> {
    // Runs: consecutive records under headers of the same clock.
    let mut runs: Vec<(&TraceHeader, Vec<&TraceRecord>)> = Vec::new();
    let mut first: Option<&TraceHeader> = None;
    let mut settings_changed = false;
    for r in records {
        match r {
            TraceRecord::Header(h) => {
                if h.version != TRACE_VERSION {
                    return Err(RecordedError::Version(h.version));
                }
                let f = *first.get_or_insert(h);
                settings_changed |= !same_settings(f, h);
                match runs.last() {
                    Some((last, _)) if last.clock_zero_unix_ms == h.clock_zero_unix_ms => {}
                    _ => runs.push((h, Vec::new())),
                }
            }
            other => runs
                .last_mut()
                .ok_or(RecordedError::NoHeader)?
                .1
                .push(other),
        }
    }
    let header = first.ok_or(RecordedError::NoHeader)?.clone();
    // One clock: each run's records shifted by its clock's zero.
    let zero = runs
        .iter()
        .map(|(h, _)| h.clock_zero_unix_ms)
        .min()
        .unwrap_or(0);
    let mut all: Vec<(u64, &TraceRecord)> = Vec::new();
    for (h, recs) in &runs {
        let shift = h.clock_zero_unix_ms - zero;
        let mut mine: Vec<(u64, &TraceRecord)> = recs
            .iter()
            .map(|r| (shift + r.t_ms().unwrap_or(0), *r))
            .collect();
        mine.sort_by_key(|x| x.0);
        // A later run that starts before the last one ended (a clock step)
        // is moved to its end.
        let floor = all.last().map_or(0, |x| x.0);
        all.extend(mine.into_iter().map(|(t, r)| (t.max(floor), r)));
    }
    let start = all.first().map_or(0, |x| x.0);
    let mut run = RecordedRun {
        header,
        agent_runs: runs.len(),
        settings_changed,
        timeline: Timeline::default(),
        fetches: Vec::new(),
        user: Vec::new(),
        sleep_decisions: Vec::new(),
        until_ms: all.last().map_or(0, |x| x.0 - start),
    };
    for (t, r) in all {
        apply(&mut run, t - start, r);
    }
    if run.timeline.events.is_empty() {
        return Err(RecordedError::NoStates);
    }
    Ok(run)
}

fn same_settings(a: &TraceHeader, b: &TraceHeader) -> bool {
    a.profile == b.profile
        && a.policy == b.policy
        && a.selective_resume == b.selective_resume
        && a.tick_ms == b.tick_ms
}

/// Adds one record at `t` to the run. A state change the timeline refuses
/// (an agent restarted after a crash starts in a state its predecessor's
/// last one does not lead to) is kept as recorded.
fn apply(run: &mut RecordedRun, t: u64, r: &TraceRecord) {
    let tl = &mut run.timeline;
    match r {
        TraceRecord::Header(_) => {}
        TraceRecord::State { state, .. } => {
            if tl.events.is_empty() {
                *tl = Timeline {
                    vms: std::mem::take(&mut tl.vms),
                    ..Timeline::starting(t, *state)
                };
            } else if let Err(TimelineError::Transition { .. }) = tl.record(t, *state) {
                tl.events.push((t, *state));
            }
        }
        TraceRecord::Wake {
            reason, service, ..
        } => {
            let ok = match service {
                true => tl.record_service_wake(t, reason.clone()),
                false => tl.record_wake(t, reason.clone()),
            };
            if ok.is_err() {
                tl.events.push((t, HostState::Resuming));
                tl.wakes.push((t, reason.clone()));
                if *service {
                    tl.service_wakes.push(t);
                }
            }
        }
        TraceRecord::RestResume { .. } => {
            if tl.record_rest_resume(t).is_err() {
                tl.events.push((t, HostState::Resuming));
                tl.rest_resumes.push(t);
            }
        }
        TraceRecord::Placement { vm, placement, .. } => {
            // Times are sorted: this cannot go backwards.
            let _ = tl.record_placement(t, vm, *placement);
        }
        TraceRecord::User { present, .. } => run.user.push((t, *present)),
        TraceRecord::Sleep { .. } => run.sleep_decisions.push(t),
        TraceRecord::Fetch {
            vm,
            file,
            first_page,
            pages,
            ..
        } => run.fetches.push(RecordedFetch {
            t_ms: t,
            vm: vm.clone(),
            file: *file,
            first_page: *first_page,
            pages: *pages,
        }),
    }
}

#[cfg(test)]
#[path = "recorded_tests.rs"]
pub(crate) mod tests;

//! The agent's power and fetch trace on disk, in the simulator's format
//! (`jettison_sim::recorded`, files by `jettison_sim::trace_files`): the
//! fetches served as they are served, the user's comings and goings and
//! the sleep policy's decisions as they happen, and the backend's timeline
//! (states, wakes with their reasons, VM placements) copied over at each
//! tick of the power loop ([`TraceLog::sync`]), which also flushes.
//! `jettison simulate --trace` replays the files.
//!
//! Settings (`[power]`): `trace_dir` (default `<state_dir>/trace`),
//! `trace_max_mib` (the directory's budget, default 64; 0 turns the trace
//! off), `trace_files` (files kept, default 8; a file is closed at
//! `trace_max_mib / trace_files`). A write that fails is logged once and
//! the trace stops; the agent carries on.

use std::collections::BTreeMap;
use std::path::Path;

use jettison_power_model::{HostState, Timeline};
use jettison_sim::recorded::{TraceHeader, TraceRecord};
use jettison_sim::trace_files::{TraceFilesConfig, TraceWriter};

use super::PowerConfig;

/// How far the backend's timeline has been written.
#[derive(Debug, Default)]
struct Synced {
    events: usize,
    wakes: usize,
    vms: BTreeMap<String, usize>,
}

/// The open trace.
#[derive(Debug)]
pub(crate) struct TraceLog {
    writer: Option<TraceWriter>,
    synced: Synced,
}

/// The default budget of the trace directory, MiB.
pub(super) fn default_max_mib() -> u64 {
    64
}

/// The default number of files kept.
pub(super) fn default_files() -> usize {
    8
}

impl TraceLog {
    /// Opens a new file in the configured directory; `None` if the trace
    /// is off or cannot be written (logged).
    pub(crate) fn open(
        config: &PowerConfig,
        state_dir: &Path,
        header: TraceHeader,
    ) -> Option<Self> {
        if config.trace_max_mib == 0 {
            return None;
        }
        let files = TraceFilesConfig {
            dir: config
                .trace_dir
                .clone()
                .unwrap_or_else(|| state_dir.join("trace")),
            max_bytes: config.trace_max_mib.saturating_mul(1 << 20),
            keep_files: config.trace_files.max(2),
        };
        match TraceWriter::open(files, header) {
            Ok(w) => {
                tracing::info!(file = %w.path().display(), "power trace");
                Some(Self {
                    writer: Some(w),
                    synced: Synced::default(),
                })
            }
            Err(e) => {
                tracing::warn!("no power trace: {e}");
                None
            }
        }
    }

    /// Appends a record (buffered until the next [`TraceLog::sync`]).
    pub(crate) fn append(&mut self, record: &TraceRecord) {
        let Some(w) = &mut self.writer else { return };
        if let Err(e) = w.append(record) {
            tracing::warn!("the power trace stops: {e}");
            self.writer = None;
        }
    }

    /// Writes what the timeline recorded since the last call, and flushes.
    pub(crate) fn sync(&mut self, tl: &Timeline) {
        for r in new_records(&mut self.synced, tl) {
            self.append(&r);
        }
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.flush() {
                tracing::warn!("the power trace stops: {e}");
                self.writer = None;
            }
        }
    }
}

/// The timeline's changes since `synced`, as records; advances `synced`.
fn new_records(synced: &mut Synced, tl: &Timeline) -> Vec<TraceRecord> {
    let mut out = Vec::new();
    for &(t_ms, state) in tl.events.iter().skip(synced.events) {
        if state != HostState::Resuming {
            out.push(TraceRecord::State { t_ms, state });
            continue;
        }
        match tl.wakes.get(synced.wakes).filter(|w| w.0 == t_ms) {
            Some((_, reason)) => {
                synced.wakes += 1;
                out.push(TraceRecord::Wake {
                    t_ms,
                    reason: reason.clone(),
                    service: tl.service_wakes.contains(&t_ms),
                });
            }
            None => out.push(TraceRecord::RestResume { t_ms }),
        }
    }
    synced.events = tl.events.len();
    for (vm, changes) in &tl.vms {
        let done = synced.vms.entry(vm.clone()).or_default();
        for &(t_ms, placement) in changes.iter().skip(*done) {
            out.push(TraceRecord::Placement {
                t_ms,
                vm: vm.clone(),
                placement,
            });
        }
        *done = changes.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use jettison_power_model::{Placement, WakeReason};

    use super::*;

    #[test]
    fn the_timeline_is_written_once_each_change() {
        let mut tl = Timeline::starting(0, HostState::Active);
        let mut s = Synced::default();
        assert_eq!(
            new_records(&mut s, &tl),
            vec![TraceRecord::State {
                t_ms: 0,
                state: HostState::Active
            }]
        );
        assert!(new_records(&mut s, &tl).is_empty());
        tl.record_placement(5, "vm", Placement::Server).unwrap();
        tl.record(5, HostState::Idle).unwrap();
        tl.record(6, HostState::Suspending).unwrap();
        tl.record(9, HostState::Asleep).unwrap();
        tl.record_service_wake(20, WakeReason::PageMiss).unwrap();
        tl.record(22, HostState::Idle).unwrap();
        tl.record_rest_resume(30).unwrap();
        tl.record(33, HostState::Active).unwrap();
        let recs = new_records(&mut s, &tl);
        assert_eq!(recs.len(), 8);
        assert_eq!(
            recs[3],
            TraceRecord::Wake {
                t_ms: 20,
                reason: WakeReason::PageMiss,
                service: true
            }
        );
        assert_eq!(recs[5], TraceRecord::RestResume { t_ms: 30 });
        assert_eq!(
            recs[7],
            TraceRecord::Placement {
                t_ms: 5,
                vm: "vm".into(),
                placement: Placement::Server
            }
        );
        // The records assemble back into the same timeline.
        let mut all = vec![TraceRecord::Header(header())];
        all.push(TraceRecord::State {
            t_ms: 0,
            state: HostState::Active,
        });
        all.extend(recs);
        let run = jettison_sim::recorded::assemble(&all).unwrap();
        assert_eq!(run.timeline, tl);
        tl.record_wake(40, WakeReason::Other("x".into()))
            .unwrap_err();
        assert!(new_records(&mut s, &tl).is_empty());
    }

    /// A real agent's power side (the Linux backend, which needs nothing
    /// to start): its in-memory record keeps the last fetches only, its
    /// trace directory stays within budget and ends with the last fetch.
    #[test]
    fn the_served_record_and_the_trace_are_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "backend = \"linux\"\nnic_mac = \"02:00:00:00:00:01\"\nwol_broadcast = \"10.0.0.255:9\"\n\
             trace_dir = \"{}\"\ntrace_max_mib = 1\ntrace_files = 2\n[linux]\niface = \"eth0\"\n",
            tmp.path().join("t").display()
        );
        let config: PowerConfig = toml::from_str(&text).unwrap();
        let power = super::super::Power::start(&config, "d", tmp.path()).unwrap();
        let n = super::super::SERVED_KEPT as u64 + 10;
        for i in 0..n {
            power.served("vm", jettison_wire::FileKind::Memory, i, 1);
        }
        power.trace_sync();
        let rec = power.record();
        assert_eq!(rec.served.len(), super::super::SERVED_KEPT);
        assert_eq!(rec.served_total, n);
        assert_eq!(rec.served[0].first_page, 10);
        let files = jettison_sim::trace_files::list(&tmp.path().join("t")).unwrap();
        assert_eq!(files.len(), 2);
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(bytes <= (1 << 20) + 4096, "{bytes}");
        let read = jettison_sim::trace_files::read_files(&files).unwrap();
        let last = read.records.iter().rev().find_map(|r| match r {
            TraceRecord::Fetch { first_page, .. } => Some(*first_page),
            _ => None,
        });
        assert_eq!(last, Some(n - 1));
        // The first tick wrote the timeline's first state after the fetches.
        assert!(matches!(
            read.records.last(),
            Some(TraceRecord::State { .. })
        ));
        assert!(matches!(read.records[0], TraceRecord::Header(_)));
    }

    fn header() -> TraceHeader {
        TraceHeader {
            version: jettison_sim::recorded::TRACE_VERSION,
            host: "d".into(),
            clock_zero_unix_ms: 0,
            profile: Default::default(),
            policy: super::super::break_even(),
            selective_resume: true,
            tick_ms: 250,
        }
    }
}

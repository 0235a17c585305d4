use jettison_power_model::policy::{FixedTimeoutConfig, PolicyName};

use super::*;

pub(crate) fn header(clock_zero_unix_ms: u64) -> TraceHeader {
    TraceHeader {
        version: TRACE_VERSION,
        host: "desk".into(),
        clock_zero_unix_ms,
        profile: PowerProfile::default(),
        policy: PolicyConfig::FixedTimeout(FixedTimeoutConfig { fixed_timeout_s: 2 }),
        selective_resume: false,
        tick_ms: 250,
    }
}

fn state(t_ms: u64, state: HostState) -> TraceRecord {
    TraceRecord::State { t_ms, state }
}

fn fetch(t_ms: u64, file: RecordedFile, first_page: u64) -> TraceRecord {
    TraceRecord::Fetch {
        t_ms,
        vm: "vm".into(),
        file,
        first_page,
        pages: 1,
    }
}

/// A run as the agent writes it: the user leaves at 10 s, the desktop
/// sleeps at 12 s (fixed timeout of 2 s), a page miss wakes it at 30 s
/// (full resume, 5 s), it sleeps again at 37 s, the user wakes it at 60 s,
/// it is in use at 65 s and the VM home at 70 s. Times on the profile's
/// latencies, so the simulator's model meets the record exactly.
/// Fetches are written as served, states at the next tick: not in order.
pub(crate) fn one_run(zero: u64) -> Vec<TraceRecord> {
    use HostState::*;
    let place = |t_ms, placement| TraceRecord::Placement {
        t_ms,
        vm: "vm".into(),
        placement,
    };
    vec![
        TraceRecord::Header(header(zero)),
        state(0, Active),
        // during the hand-over, before the placement was recorded
        fetch(9_990, RecordedFile::Memory, 5),
        fetch(9_995, RecordedFile::Disk, 3),
        TraceRecord::User {
            t_ms: 10_000,
            present: false,
        },
        place(10_000, Placement::Server),
        state(10_000, Idle),
        TraceRecord::Sleep {
            t_ms: 12_000,
            quiet_ms: 2_000,
        },
        state(12_000, Suspending),
        state(15_000, Asleep),
        // served after the wake it caused, written before the wake's sync
        fetch(35_010, RecordedFile::Memory, 640),
        TraceRecord::Wake {
            t_ms: 30_000,
            reason: WakeReason::PageMiss,
            service: false,
        },
        state(35_000, Idle),
        state(37_000, Suspending),
        state(40_000, Asleep),
        TraceRecord::Wake {
            t_ms: 60_000,
            reason: WakeReason::UserReturn,
            service: false,
        },
        TraceRecord::User {
            t_ms: 60_000,
            present: true,
        },
        state(65_000, Active),
        place(70_000, Placement::Desktop),
        fetch(80_000, RecordedFile::Memory, 7),
    ]
}

#[test]
fn records_assemble_into_a_timeline_and_fetches_by_time() {
    let run = assemble(&one_run(1_000)).unwrap();
    assert_eq!(run.agent_runs, 1);
    assert!(!run.settings_changed);
    assert_eq!(run.until_ms, 80_000);
    let tl = &run.timeline;
    assert_eq!(tl.events.first(), Some(&(0, HostState::Active)));
    assert_eq!(tl.events.len(), 10);
    assert_eq!(
        tl.wakes,
        vec![
            (30_000, WakeReason::PageMiss),
            (60_000, WakeReason::UserReturn)
        ]
    );
    assert_eq!(tl.vms["vm"].len(), 2);
    let times: Vec<u64> = run.fetches.iter().map(|f| f.t_ms).collect();
    assert_eq!(times, vec![9_990, 9_995, 35_010, 80_000]);
    assert_eq!(run.user, vec![(10_000, false), (60_000, true)]);
    assert_eq!(run.sleep_decisions, vec![12_000]);
}

#[test]
fn runs_of_several_agents_share_one_clock() {
    // A second agent run starts 100 s after the first one's clock zero (its
    // own clock at 0 again); a rotated file of the first repeats its header.
    let mut recs = one_run(1_000);
    let tail = recs.split_off(11);
    recs.push(TraceRecord::Header(header(1_000)));
    recs.extend(tail);
    recs.push(TraceRecord::Header(header(101_000)));
    recs.push(state(0, HostState::Idle));
    recs.push(state(5_000, HostState::Active));
    let run = assemble(&recs).unwrap();
    assert_eq!(run.agent_runs, 2);
    assert_eq!(run.until_ms, 105_000);
    assert_eq!(
        &run.timeline.events[10..],
        &[(100_000, HostState::Idle), (105_000, HostState::Active)]
    );
}

#[test]
fn a_restart_after_a_crash_asleep_keeps_the_recorded_states() {
    let recs = vec![
        TraceRecord::Header(header(0)),
        state(0, HostState::Idle),
        state(1_000, HostState::Suspending),
        state(4_000, HostState::Asleep),
        TraceRecord::Header(header(10_000)),
        // Asleep -> Active is no transition of the state machine
        state(0, HostState::Active),
    ];
    let run = assemble(&recs).unwrap();
    assert_eq!(
        run.timeline.events.last(),
        Some(&(10_000, HostState::Active))
    );
}

#[test]
fn the_first_header_decides_and_bad_input_is_refused() {
    assert_eq!(
        assemble(&[state(0, HostState::Active)]),
        Err(RecordedError::NoHeader)
    );
    assert_eq!(
        assemble(&[TraceRecord::Header(header(0))]),
        Err(RecordedError::NoStates)
    );
    let mut h = header(0);
    h.version = 99;
    assert_eq!(
        assemble(&[TraceRecord::Header(h)]),
        Err(RecordedError::Version(99))
    );
    let mut other = header(5);
    other.policy = PolicyConfig::Named(PolicyName::BreakEven);
    let recs = vec![
        TraceRecord::Header(header(0)),
        state(0, HostState::Active),
        TraceRecord::Header(other),
    ];
    let run = assemble(&recs).unwrap();
    assert!(run.settings_changed);
    assert_eq!(run.header, header(0));
}

#[test]
fn records_are_json_lines_tagged_by_kind() {
    let line = serde_json::to_string(&fetch(3, RecordedFile::Disk, 9)).unwrap();
    assert_eq!(
        line,
        r#"{"kind":"fetch","t_ms":3,"vm":"vm","file":"disk","first_page":9,"pages":1}"#
    );
    for r in one_run(0) {
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(serde_json::from_str::<TraceRecord>(&text).unwrap(), r);
    }
}

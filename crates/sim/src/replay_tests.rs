use jettison_power_model::policy::FixedTimeoutConfig;

use super::*;
use crate::recorded::{assemble, tests::one_run};

#[test]
fn a_recorded_run_becomes_a_one_desktop_trace() {
    let run = assemble(&one_run(0)).unwrap();
    let pages = fetch_pages(&run).unwrap();
    // The memory's pages first (641 rounded up to 704), then the disk's.
    assert_eq!(
        pages,
        vec![(9_990, 5), (9_995, 704 + 3), (35_010, 640), (80_000, 7)]
    );
    let trace = fleet_trace(&run.timeline, &pages, run.until_ms).unwrap();
    assert_eq!(trace.wall_ms(), 80_000);
    let d = &trace.desktops[0];
    let span = |a, b| Span {
        start_ms: a,
        end_ms: b,
    };
    assert_eq!(d.activity, vec![span(0, 10_000), span(65_000, 80_000)]);
    // The period ends when the desktop is back in use.
    assert_eq!(d.idle.len(), 1);
    assert_eq!(d.idle[0].span, span(10_000, 65_000));
    let req = |offset_ms, page| Request { offset_ms, page };
    // The hand-over's fetch counts at the start, the first after the
    // page-miss wake at the wake; the one after the return is left out.
    assert_eq!(
        d.idle[0].requests,
        vec![req(0, 5), req(0, 707), req(20_000, 640)]
    );
}

#[test]
fn a_return_while_up_after_a_service_wake_ends_the_period_once_the_rest_resumed() {
    let mut t = Timeline::starting(0, HostState::Active);
    t.record_placement(1_000, "vm", Placement::Server).unwrap();
    t.record(1_000, HostState::Idle).unwrap();
    t.record(2_000, HostState::Suspending).unwrap();
    t.record(5_000, HostState::Asleep).unwrap();
    t.record_service_wake(8_000, WakeReason::PageMiss).unwrap();
    t.record(10_500, HostState::Idle).unwrap();
    t.record_rest_resume(11_000).unwrap();
    t.record(13_500, HostState::Active).unwrap();
    let trace = fleet_trace(&t, &[(10_600, 1)], 20_000).unwrap();
    let d = &trace.desktops[0];
    assert_eq!(
        (d.idle[0].span.start_ms, d.idle[0].span.end_ms),
        (1_000, 13_500)
    );
    assert_eq!(d.idle[0].requests.len(), 1);
    // The VM never came home in this record: the period ends at the return anyway.
    assert_eq!(d.activity.last().unwrap().end_ms, 20_000);
}

/// The recorded run follows the simulator's model to the millisecond (the
/// profile's latencies, the policy's timeout on the tick): the replay over
/// the idle span meets the meter, and the counts agree.
#[test]
fn a_run_on_the_models_times_replays_to_the_recorded_energy() {
    let run = assemble(&one_run(0)).unwrap();
    let (trace, diff) = replay_run(&run).unwrap();
    assert_eq!(trace.desktops[0].idle.len(), 1);
    assert_eq!(diff.combination, "fixed-timeout-2s");
    // The policy's decision at 12 s and the suspend at 12 s: no delay.
    assert_eq!(diff.first_sleep_delay_ms, 0);
    assert_eq!((diff.idle_periods, diff.requests), (1, 3));
    assert_eq!(diff.idle_s, 55.0);
    assert_eq!((diff.sim_sleeps, diff.recorded_sleeps), (2, 2));
    assert_eq!((diff.sim_page_wakes, diff.recorded_page_wakes), (1, 1));
    assert!(diff.replay_diff_idle_pct.abs() < 1e-9, "{diff:?}");
    // Desktop: 120 + 180 + 45 + 400 + 120 + 180 + 60 + 400 J; the server's
    // share for 55 s.
    let p = PowerProfile::default();
    let server = p.server.watts_per_partial_vm() * 55.0;
    let want = (1_505.0 + server) / 3600.0;
    assert!((diff.recorded_idle_wh - want).abs() < 1e-9, "{diff:?}");
}

#[test]
fn a_host_that_slept_later_than_the_model_shows_in_the_difference() {
    // The same run, each sleep 2 s late (idle instead of asleep): the
    // recorded energy is higher, the simulator's the same.
    let mut recs = one_run(0);
    for r in &mut recs {
        if let crate::recorded::TraceRecord::State { t_ms, state } = r {
            if matches!(state, HostState::Suspending | HostState::Asleep) {
                *t_ms += 2_000;
            }
        }
    }
    let (_, diff) = replay_run(&assemble(&recs).unwrap()).unwrap();
    assert!(diff.replay_diff_idle_pct < -1.0, "{diff:?}");
    assert_eq!(diff.sim_sleeps, diff.recorded_sleeps);
}

#[test]
fn the_window_meter_adds_up_to_the_whole() {
    let run = assemble(&one_run(0)).unwrap();
    let p = PowerProfile::default();
    let tl = &run.timeline;
    let whole = meter(tl, &p, 80_000).unwrap().total_j;
    let parts: f64 = [(0, 12_345), (12_345, 30_000), (30_000, 80_000)]
        .iter()
        .map(|&(a, b)| metered_j(tl, &p, a, b).unwrap())
        .sum();
    assert!((whole - parts).abs() < 1e-6, "{whole} vs {parts}");
}

#[test]
fn the_agents_policies_map_to_the_simulators() {
    assert_eq!(
        policy_spec(&PolicyConfig::FixedTimeout(FixedTimeoutConfig {
            fixed_timeout_s: 7
        })),
        Some(PolicySpec::FixedTimeout(7_000))
    );
    assert_eq!(
        policy_spec(&PolicyConfig::Named(PolicyName::BreakEven)),
        Some(PolicySpec::BreakEven)
    );
    assert_eq!(policy_spec(&PolicyConfig::Named(PolicyName::Never)), None);
    let c = agent_config(
        &PowerProfile::default(),
        &PolicyConfig::Named(PolicyName::SkiRental),
        true,
        100,
        PrefetchConfig::None,
    )
    .unwrap();
    assert_eq!(c.selective_resume, SelectiveResume::On);
    assert_eq!(c.decision_tick_ms, 100);
    assert!(agent_config(
        &PowerProfile::default(),
        &PolicyConfig::Named(PolicyName::Never),
        true,
        250,
        PrefetchConfig::None
    )
    .is_err());
}

/// The agent copies the VM's memory before a period's first sleep: a run
/// whose first suspend came 4 s after the decision replays with that delay
/// and meets the record again (the delay spent idle in both).
#[test]
fn the_first_sleeps_delay_is_replayed_as_recorded() {
    use crate::recorded::TraceRecord;
    let mut recs = one_run(0);
    for r in &mut recs {
        if let TraceRecord::State { t_ms, state } = r {
            if *t_ms < 30_000 && matches!(state, HostState::Suspending | HostState::Asleep) {
                *t_ms += 4_000;
            }
        }
    }
    let run = assemble(&recs).unwrap();
    let (_, diff) = replay_run(&run).unwrap();
    assert_eq!(diff.first_sleep_delay_ms, 4_000);
    assert_eq!((diff.sim_sleeps, diff.recorded_sleeps), (2, 2));
    assert!(diff.replay_diff_idle_pct.abs() < 1e-9, "{diff:?}");
}

/// The VM is home (62 s) before the desktop is back in use (65 s): the
/// period ends at the user's wake (60 s), and the meter counts the resume
/// to its end as the simulator does; what differs is the server's share
/// for those 5 s, well under 2 %.
#[test]
fn a_vm_home_before_the_desktop_is_in_use_meters_the_whole_resume() {
    use crate::recorded::TraceRecord;
    let mut recs = one_run(0);
    for r in &mut recs {
        if let TraceRecord::Placement {
            t_ms, placement, ..
        } = r
        {
            if *placement == Placement::Desktop {
                *t_ms = 62_000;
            }
        }
    }
    let run = assemble(&recs).unwrap();
    let (trace, diff) = replay_run(&run).unwrap();
    assert_eq!(trace.desktops[0].idle[0].span.end_ms, 60_000);
    assert!(
        diff.replay_diff_idle_pct < 0.0 && diff.replay_diff_idle_pct > -2.0,
        "{diff:?}"
    );
}

use jettison_agent::power::Served;
use jettison_power::{PowerProfile, Timeline};

use super::*;

fn served(t_ms: u64, file: FileKind, first_page: u64, pages: u64) -> Served {
    Served {
        t_ms,
        pages,
        first_page,
        file,
    }
}

/// A run: the user leaves at 10 s, the desktop sleeps, a page miss wakes
/// it (service resume), it sleeps again, the user wakes it at 60 s and the
/// VM is home at 70 s; the record is taken at 80 s.
fn record() -> PowerRecord {
    use HostState::*;
    let mut t = Timeline::starting(0, Active);
    t.record_placement(10_000, "vm", Placement::Server).unwrap();
    t.record(10_000, Idle).unwrap();
    t.record(12_000, Suspending).unwrap();
    t.record(15_000, Asleep).unwrap();
    t.record_service_wake(30_000, WakeReason::PageMiss).unwrap();
    t.record(32_500, Idle).unwrap();
    t.record(40_000, Suspending).unwrap();
    t.record(43_000, Asleep).unwrap();
    t.record_wake(60_000, WakeReason::UserReturn).unwrap();
    t.record(65_000, Active).unwrap();
    t.record_placement(70_000, "vm", Placement::Desktop)
        .unwrap();
    PowerRecord {
        timeline: t,
        profile: PowerProfile::default(),
        served: vec![
            // During the hand-over, just before the placement was recorded.
            served(9_990, FileKind::Memory, 5, 64),
            served(32_600, FileKind::Memory, 640, 64),
            served(33_000, FileKind::Disk, 3, 1),
            // After the user's return: the desktop is in use.
            served(66_000, FileKind::Memory, 7, 64),
        ],
        reintegrations: vec![],
        migrations: vec![],
        now_ms: 80_000,
    }
}

#[test]
fn a_record_becomes_a_one_desktop_trace() {
    let trace = to_trace(&record(), 1_000_000).unwrap();
    assert_eq!(trace.length_ms, Some(80_000));
    assert_eq!(trace.wall_ms(), 80_000);
    assert_eq!(trace.desktops.len(), 1);
    let d = &trace.desktops[0];
    let span = |a, b| Span {
        start_ms: a,
        end_ms: b,
    };
    assert_eq!(d.activity, vec![span(0, 10_000), span(65_000, 80_000)]);
    assert_eq!(d.idle.len(), 1);
    assert_eq!(d.idle[0].span, span(10_000, 60_000));
    let req = |offset_ms, page| Request { offset_ms, page };
    assert_eq!(
        d.idle[0].requests,
        vec![req(0, 5), req(22_600, 640), req(23_000, 1_000_003)]
    );
    trace.validate().unwrap();
}

#[test]
fn a_return_while_up_after_a_service_wake_ends_the_period_at_the_rest_resume() {
    let mut rec = record();
    let mut t = Timeline::starting(0, HostState::Active);
    t.record_placement(1_000, "vm", Placement::Server).unwrap();
    t.record(1_000, HostState::Idle).unwrap();
    t.record(2_000, HostState::Suspending).unwrap();
    t.record(5_000, HostState::Asleep).unwrap();
    t.record_service_wake(8_000, WakeReason::PageMiss).unwrap();
    t.record(10_500, HostState::Idle).unwrap();
    t.record_rest_resume(11_000).unwrap();
    t.record(13_500, HostState::Active).unwrap();
    rec.timeline = t;
    rec.served = vec![served(10_600, FileKind::Memory, 1, 1)];
    rec.now_ms = 20_000;
    let trace = to_trace(&rec, 0).unwrap();
    let d = &trace.desktops[0];
    assert_eq!(
        (d.idle[0].span.start_ms, d.idle[0].span.end_ms),
        (1_000, 11_000)
    );
    assert_eq!(d.idle[0].requests.len(), 1);
    // The VM never came home in this record: the period ends at the return anyway.
    assert_eq!(d.activity.last().unwrap().end_ms, 20_000);
}

#[test]
fn the_trace_replays_in_the_simulator() {
    let rec = record();
    let trace = to_trace(&rec, 1_000_000).unwrap();
    let p = PrefetchConfig::Neighbourhood { pages: 64 };
    let (j, detail) = simulate(&trace, &rec, &p, true).unwrap();
    assert!(j.is_finite() && j > 0.0, "{j}");
    assert!(detail["key"].as_str().unwrap().starts_with("break-even"));
    // The whole run at idle power is an upper bound for this record.
    assert!(j < 80.0 * rec.profile.desktop.active_w, "{j}");
    // No activity and no idle period: the desktop idles throughout.
    let empty = FleetTrace {
        days: 1,
        length_ms: Some(10_000),
        desktops: vec![DesktopTrace::default()],
    };
    let (j, _) = simulate(&empty, &rec, &PrefetchConfig::None, false).unwrap();
    assert!((j - 10.0 * rec.profile.desktop.idle_w).abs() < 1e-6, "{j}");
}

#[test]
fn coalescing_keeps_one_request_per_tick() {
    let trace = to_trace(&record(), 1_000_000).unwrap();
    let mut burst = trace.clone();
    let reqs = &mut burst.desktops[0].idle[0].requests;
    *reqs = [0, 10, 249, 250, 600, 601]
        .into_iter()
        .map(|offset_ms| Request { offset_ms, page: 1 })
        .collect();
    let thin = coalesce(&burst, 250);
    let kept: Vec<u32> = thin.desktops[0].idle[0]
        .requests
        .iter()
        .map(|r| r.offset_ms)
        .collect();
    assert_eq!(kept, vec![0, 250, 600]);
    thin.validate().unwrap();
}

use super::HostState::*;
use super::*;
use crate::profile::Transition;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// One idle hour with one page-miss wake, under the default profile.
fn idle_hour() -> Timeline {
    let mut t = Timeline::starting(0, Active);
    t.record(60_000, Idle).unwrap();
    t.record(120_000, Suspending).unwrap();
    t.record(123_000, Asleep).unwrap();
    t.record_wake(1_800_000, WakeReason::PageMiss).unwrap();
    t.record(1_805_000, Idle).unwrap();
    t.record(1_865_000, Suspending).unwrap();
    t.record(1_868_000, Asleep).unwrap();
    t.record_placement(120_000, "vm1", Placement::Server)
        .unwrap();
    t
}

#[test]
fn integrates_states_and_transitions() {
    let p = PowerProfile::default();
    let r = meter(&idle_hour(), &p, 3_600_000).unwrap();
    assert_eq!(r.wall_ms, 3_600_000);
    assert_eq!(r.time.active_ms, 60_000);
    assert_eq!(r.time.idle_ms, 120_000);
    assert_eq!(r.time.suspending_ms, 6_000);
    assert_eq!(r.time.resuming_ms, 5_000);
    assert_eq!(
        r.time.asleep_ms,
        3_600_000 - 60_000 - 120_000 - 6_000 - 5_000
    );
    // 60 s x 100 W + 120 s x 60 W + 2 x 180 J + 400 J + 3409 s x 3 W
    let desktop = 6_000.0 + 7_200.0 + 360.0 + 400.0 + 3_409.0 * 3.0;
    assert!(close(r.desktop_j, desktop), "{}", r.desktop_j);
    assert_eq!(r.vm_server_ms["vm1"], 3_480_000);
    assert!(close(r.server_j, 3_480.0 * 10.0));
    assert!(close(r.total_j, desktop + 34_800.0));
    assert!(close(r.baseline_j, 6_000.0 + 3_540.0 * 60.0));
    assert!(close(
        r.savings_percent,
        100.0 * (r.baseline_j - r.total_j) / r.baseline_j
    ));
    assert!(r.savings_percent > 44.0, "{}", r.savings_percent);
    assert_eq!(r.wakes, 1);
    assert_eq!(r.wake_reasons.page_miss, 1);
}

#[test]
fn a_desktop_left_on_saves_nothing() {
    let mut t = Timeline::starting(1_000, Active);
    t.record(2_000, Idle).unwrap();
    let r = meter(&t, &PowerProfile::default(), 11_000).unwrap();
    assert!(close(r.total_j, r.baseline_j));
    assert!(close(r.savings_percent, 0.0));
    assert_eq!(r.wall_ms, 10_000);
}

#[test]
fn short_sleeps_cost_more_than_staying_on() {
    let mut t = Timeline::starting(0, Idle);
    t.record(0, Suspending).unwrap();
    t.record(3_000, Asleep).unwrap();
    t.record_wake(4_000, WakeReason::UserReturn).unwrap();
    t.record(9_000, Active).unwrap();
    let r = meter(&t, &PowerProfile::default(), 9_000).unwrap();
    assert!(r.savings_percent < 0.0, "{}", r.savings_percent);
    assert_eq!(r.wake_reasons.user_return, 1);
}

#[test]
fn slow_transitions_cost_proportionally_and_instant_ones_once() {
    let mut t = Timeline::starting(0, Idle);
    t.record(0, Suspending).unwrap();
    t.record(6_000, Asleep).unwrap();
    let p = PowerProfile::default();
    let r = meter(&t, &p, 6_000).unwrap();
    assert!(
        close(r.desktop_j, 360.0),
        "twice the latency, twice the energy"
    );
    let instant = PowerProfile {
        suspend: Transition {
            latency_ms: 0,
            energy_j: 50.0,
        },
        ..p
    };
    let mut t = Timeline::starting(0, Idle);
    t.record(0, Suspending).unwrap();
    t.record(0, Asleep).unwrap();
    assert!(close(meter(&t, &instant, 1_000).unwrap().desktop_j, 53.0));
}

#[test]
fn server_time_is_clipped_to_the_window() {
    let mut t = Timeline::starting(10_000, Idle);
    t.record_placement(0, "a", Placement::Server).unwrap();
    t.record_placement(15_000, "a", Placement::Desktop).unwrap();
    t.record_placement(18_000, "a", Placement::Server).unwrap();
    t.record_placement(30_000, "b", Placement::Server).unwrap();
    let r = meter(&t, &PowerProfile::default(), 20_000).unwrap();
    assert_eq!(r.vm_server_ms["a"], 5_000 + 2_000);
    assert_eq!(r.vm_server_ms["b"], 0);
}

#[test]
fn counts_other_reasons_and_serializes() {
    let mut t = Timeline::starting(0, Asleep);
    for (i, why) in ["rtc", "rtc", "usb"].iter().enumerate() {
        let at = i as u64 * 10;
        t.record_wake(at, WakeReason::Other((*why).into())).unwrap();
        t.record(at + 5, Idle).unwrap();
        t.record(at + 5, Suspending).unwrap();
        t.record(at + 6, Asleep).unwrap();
    }
    let r = meter(&t, &PowerProfile::default(), 100).unwrap();
    assert_eq!(r.wakes, 3);
    assert_eq!(r.wake_reasons.other["rtc"], 2);
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["wake_reasons"]["other"]["usb"], 1);
    assert_eq!(serde_json::from_value::<EnergyReport>(j).unwrap(), r);
}

#[test]
fn rejects_empty_and_early_ends() {
    let p = PowerProfile::default();
    assert_eq!(
        meter(&Timeline::default(), &p, 5),
        Err(TimelineError::Empty)
    );
    let mut t = Timeline::starting(0, Idle);
    t.record(10, Active).unwrap();
    assert!(meter(&t, &p, 9).is_err());
    assert_eq!(
        meter(&Timeline::starting(0, Idle), &p, 0)
            .unwrap()
            .savings_percent,
        0.0
    );
}

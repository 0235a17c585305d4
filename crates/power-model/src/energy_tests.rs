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
    // 300 W / 90 partially migrated VMs per server
    assert!(close(r.server_j, 3_480.0 * 300.0 / 90.0));
    assert!(close(r.total_j, desktop + 3_480.0 * 300.0 / 90.0));
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

/// Selective resume under the default profile: the service devices (CPU,
/// memory, NIC) resume in 2.5 s for 200 J, the rest in 2.5 s for 200 J.
fn selective_minute() -> Timeline {
    let mut t = Timeline::starting(0, Idle);
    t.record(0, Suspending).unwrap();
    t.record(3_000, Asleep).unwrap();
    t.record_service_wake(10_000, WakeReason::PageMiss).unwrap();
    t.record(12_500, Idle).unwrap();
    t.record(20_000, Suspending).unwrap();
    t.record(23_000, Asleep).unwrap();
    t.record_service_wake(30_000, WakeReason::PageMiss).unwrap();
    t.record(32_500, Idle).unwrap();
    // The user comes back while the host serves pages: the rest resumes.
    t.record_rest_resume(34_000).unwrap();
    t.record(36_500, Active).unwrap();
    t.record(40_000, Suspending).unwrap();
    t.record(43_000, Asleep).unwrap();
    t.record_wake(50_000, WakeReason::UserReturn).unwrap();
    t.record(55_000, Active).unwrap();
    t
}

#[test]
fn each_resume_is_charged_for_what_it_resumed() {
    let p = PowerProfile::default();
    assert_eq!(rest_resume(&p).latency_ms, 2_500);
    assert!(close(rest_resume(&p).energy_j, 200.0));
    let r = meter(&selective_minute(), &p, 60_000).unwrap();
    assert_eq!(r.time.resuming_ms, 2_500 + 2_500 + 2_500 + 5_000);
    assert_eq!(r.time.idle_ms, 9_000);
    assert_eq!(r.time.asleep_ms, 21_000);
    assert_eq!(r.time.active_ms, 8_500);
    // idle 9 s x 60 W + 3 suspends x 180 J + asleep 21 s x 3 W
    // + 2 service resumes x 200 J + the rest 200 J + a full resume 400 J
    // + active 8.5 s x 100 W
    let want = 540.0 + 540.0 + 63.0 + 400.0 + 200.0 + 400.0 + 850.0;
    assert!(close(r.desktop_j, want), "{} J, want {want} J", r.desktop_j);
    assert_eq!((r.wakes, r.service_wakes, r.rest_resumes), (3, 2, 1));
    assert_eq!(
        (r.wake_reasons.page_miss, r.wake_reasons.user_return),
        (2, 1)
    );
}

#[test]
fn a_slow_service_resume_costs_proportionally() {
    let mut t = Timeline::starting(0, Asleep);
    t.record_service_wake(0, WakeReason::PageMiss).unwrap();
    t.record(5_000, Idle).unwrap();
    // Twice the modelled 2.5 s: twice the 200 J.
    let r = meter(&t, &PowerProfile::default(), 5_000).unwrap();
    assert!(close(r.desktop_j, 400.0), "{}", r.desktop_j);
    // Without a per-device split the service resume is the full resume.
    let plain = PowerProfile {
        devices: vec![],
        ..PowerProfile::default()
    };
    assert!(close(meter(&t, &plain, 5_000).unwrap().desktop_j, 400.0));
    assert_eq!(rest_resume(&plain).latency_ms, 0);
}

#[test]
fn timelines_recorded_before_selective_resume_charge_full_resumes() {
    let mut t = selective_minute();
    let j = serde_json::to_value(&t).unwrap();
    assert_eq!(j["service_wakes"], serde_json::json!([10_000, 30_000]));
    let mut old = j.clone();
    let o = old.as_object_mut().unwrap();
    o.remove("service_wakes");
    o.remove("rest_resumes");
    let old: Timeline = serde_json::from_value(old).unwrap();
    t.service_wakes.clear();
    t.rest_resumes.clear();
    assert_eq!(old, t);
    let r = meter(&old, &PowerProfile::default(), 60_000).unwrap();
    assert_eq!((r.service_wakes, r.rest_resumes), (0, 0));
    // Every Resuming interval at the full resume's 80 W.
    let want = 540.0 + 540.0 + 63.0 + 12.5 * 80.0 + 850.0;
    assert!(close(r.desktop_j, want), "{}", r.desktop_j);
}

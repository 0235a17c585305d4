use super::HostState::*;
use super::*;

#[test]
fn state_machine() {
    assert!(Active.can_go_to(Suspending) && Idle.can_go_to(Suspending));
    assert!(Suspending.can_go_to(Asleep) && Suspending.can_go_to(Idle));
    assert!(Asleep.can_go_to(Resuming) && Resuming.can_go_to(Active));
    assert!(!Asleep.can_go_to(Active) && !Active.can_go_to(Asleep));
    assert!(!Resuming.can_go_to(Asleep) && !Idle.can_go_to(Resuming));
    for s in HostState::ALL {
        assert!(!s.can_go_to(s));
        assert_eq!(HostState::from_code(s.code()), Some(s));
    }
    assert_eq!(HostState::from_code(5), None);
    assert!(Active.is_awake() && !Asleep.is_awake() && !Resuming.is_awake());
}

#[test]
fn records_a_sleep_cycle() {
    let mut t = Timeline::starting(0, Active);
    t.record(10, Idle).unwrap();
    t.record(10, Idle).unwrap();
    t.record(20, Suspending).unwrap();
    t.record(25, Asleep).unwrap();
    t.record_wake(100, WakeReason::PageMiss).unwrap();
    t.record(105, Active).unwrap();
    assert_eq!(t.events.len(), 6);
    assert_eq!(t.wakes, vec![(100, WakeReason::PageMiss)]);
    assert_eq!(t.current(), Some(Active));
    assert_eq!(t.state_at(30), Some(Asleep));
    assert_eq!(t.state_at(25), Some(Asleep));
    assert_eq!(Timeline::default().state_at(3), None);
}

#[test]
fn rejects_bad_records() {
    let mut t = Timeline::starting(50, Idle);
    assert_eq!(
        t.record(40, Active),
        Err(TimelineError::Backwards {
            t_ms: 40,
            last_ms: 50
        })
    );
    assert_eq!(
        t.record(60, Asleep),
        Err(TimelineError::Transition {
            from: Idle,
            to: Asleep
        })
    );
    assert_eq!(
        t.record(60, Resuming),
        Err(TimelineError::WakeWithoutReason)
    );
    assert!(
        t.record_wake(60, WakeReason::UserReturn).is_err(),
        "not asleep"
    );
    t.record(60, Suspending).unwrap();
    t.record(70, Asleep).unwrap();
    t.record_wake(80, WakeReason::Other("rtc".into())).unwrap();
    assert!(t.record_wake(81, WakeReason::PageMiss).is_err());
    assert_eq!(t.wakes.len(), 1);
    t.record_placement(10, "vm1", Placement::Server).unwrap();
    assert!(t.record_placement(5, "vm1", Placement::Desktop).is_err());
    assert_eq!(t.last_ms(), Some(80));
}

#[test]
fn intervals_are_cut_at_the_end() {
    let mut t = Timeline::starting(0, Active);
    t.record(10, Idle).unwrap();
    t.record(10, Suspending).unwrap();
    t.record(30, Asleep).unwrap();
    assert_eq!(
        t.intervals(50),
        vec![(Active, 0, 10), (Suspending, 10, 30), (Asleep, 30, 50)]
    );
    assert_eq!(t.intervals(20), vec![(Active, 0, 10), (Suspending, 10, 20)]);
    assert_eq!(t.intervals(0), vec![]);
}

#[test]
fn serializes() {
    let mut t = Timeline::starting(0, Asleep);
    t.record_wake(5, WakeReason::Other("rtc".into())).unwrap();
    t.record_placement(0, "vm", Placement::Server).unwrap();
    let j = serde_json::to_string(&t).unwrap();
    assert!(
        j.contains("\"asleep\"") && j.contains("{\"other\":\"rtc\"}") && j.contains("\"server\""),
        "{j}"
    );
    assert_eq!(serde_json::from_str::<Timeline>(&j).unwrap(), t);
    assert_eq!(WakeReason::PageMiss.to_string(), "page miss");
}

#[test]
fn rest_resume_only_after_a_service_wake() {
    let mut t = Timeline::starting(0, Idle);
    assert!(!t.rest_pending());
    assert!(t.record_rest_resume(1).is_err());
    t.record(1, Suspending).unwrap();
    t.record(2, Asleep).unwrap();
    t.record_wake(3, WakeReason::PageMiss).unwrap();
    t.record(4, Idle).unwrap();
    assert!(!t.rest_pending(), "a full wake leaves nothing to resume");
    t.record(5, Suspending).unwrap();
    t.record(6, Asleep).unwrap();
    t.record_service_wake(7, WakeReason::PageMiss).unwrap();
    assert!(!t.rest_pending(), "not while resuming");
    t.record(8, Idle).unwrap();
    assert!(t.rest_pending());
    assert!(t.record_rest_resume(7).is_err(), "backwards");
    t.record_rest_resume(9).unwrap();
    t.record(10, Active).unwrap();
    assert!(!t.rest_pending());
    assert!(t.record_rest_resume(11).is_err());
    assert_eq!(t.wakes.len(), 2);
    assert_eq!(
        (t.service_wakes.clone(), t.rest_resumes.clone()),
        (vec![7], vec![9])
    );
    assert_eq!(t.resume_scope(3), ResumeScope::Full);
    assert_eq!(t.resume_scope(7), ResumeScope::Service);
    assert_eq!(t.resume_scope(9), ResumeScope::Rest);
    assert_eq!(t.state_at(9), Some(Resuming));
}

/// Two sleep cycles, a service-only wake in the second, a VM that went
/// away and came back, and one that went away and stayed.
fn two_cycles() -> Timeline {
    let mut t = Timeline::starting(0, Active);
    t.record_placement(0, "gone", Placement::Server).unwrap();
    t.record_placement(0, "stays", Placement::Server).unwrap();
    t.record(10, Idle).unwrap();
    t.record(20, Suspending).unwrap();
    t.record(25, Asleep).unwrap();
    t.record_wake(100, WakeReason::PageMiss).unwrap();
    t.record(105, Idle).unwrap();
    t.record_placement(106, "gone", Placement::Desktop).unwrap();
    t.record(120, Suspending).unwrap();
    t.record(125, Asleep).unwrap();
    t.record_service_wake(200, WakeReason::PageMiss).unwrap();
    t.record(203, Idle).unwrap();
    t
}

#[test]
fn forgetting_keeps_what_follows_the_cut() {
    let whole = two_cycles();
    for cut in 0..=210 {
        let mut t = whole.clone();
        t.forget_before(cut);
        let start = t.events[0].0;
        assert!(start <= cut, "cut {cut}: starts at {start}");
        assert_eq!(
            t.intervals(300),
            whole
                .intervals(300)
                .into_iter()
                .filter(|i| i.2 > start)
                .collect::<Vec<_>>(),
            "cut {cut}"
        );
        for at in start..300 {
            assert_eq!(t.state_at(at), whole.state_at(at), "cut {cut}, at {at}");
            if t.state_at(at) == Some(Resuming) {
                assert_eq!(t.resume_scope(at), whole.resume_scope(at));
            }
        }
        assert!(t.wakes.iter().filter(|w| w.0 < start).count() <= 1);
        assert_eq!(t.rest_pending(), whole.rest_pending(), "cut {cut}");
        assert_eq!(t.vms["stays"], vec![(0, Placement::Server)]);
        assert_eq!(t.vms.contains_key("gone"), start < 106, "cut {cut}");
    }
}

#[test]
fn forgetting_is_bounded_and_idempotent() {
    let mut t = two_cycles();
    assert!(!t.forget_before(0), "nothing before the first event");
    assert!(t.forget_before(150));
    assert_eq!(t.events[0], (125, Asleep));
    assert_eq!(
        t.wakes,
        vec![(100, WakeReason::PageMiss), (200, WakeReason::PageMiss)]
    );
    assert_eq!(t.service_wakes, vec![200]);
    assert!(!t.forget_before(150), "already forgotten");
    // The timeline goes on recording after a cut.
    t.record(220, Suspending).unwrap();
    t.record(225, Asleep).unwrap();
    t.record_wake(300, WakeReason::UserReturn).unwrap();
    assert!(t.forget_before(1_000));
    assert_eq!(t.events, vec![(300, Resuming)]);
    assert_eq!(t.resume_scope(300), ResumeScope::Full);
    assert_eq!(t.wakes, vec![(300, WakeReason::UserReturn)]);
}

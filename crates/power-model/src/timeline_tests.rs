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

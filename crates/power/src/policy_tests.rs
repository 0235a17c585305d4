use super::*;
use crate::energy::meter;
use crate::profile::{DesktopPower, Transition};
use crate::timeline::{HostState, Timeline, WakeReason};

fn profile(idle_w: f64, asleep_w: f64, s: (u64, f64), r: (u64, f64)) -> PowerProfile {
    PowerProfile {
        desktop: DesktopPower {
            active_w: 100.0,
            idle_w,
            asleep_w,
        },
        suspend: Transition {
            latency_ms: s.0,
            energy_j: s.1,
        },
        resume: Transition {
            latency_ms: r.0,
            energy_j: r.1,
        },
        devices: vec![],
        ..PowerProfile::default()
    }
}

/// Desktop energy of a gap of `gap_ms` spent idle, or slept through.
fn gap_energy(p: &PowerProfile, gap_ms: u64) -> (f64, f64) {
    let awake = Timeline::starting(0, HostState::Idle);
    let mut slept = Timeline::starting(0, HostState::Idle);
    slept.record(0, HostState::Suspending).unwrap();
    slept
        .record(p.suspend.latency_ms, HostState::Asleep)
        .unwrap();
    slept
        .record_wake(gap_ms - p.resume.latency_ms, WakeReason::PageMiss)
        .unwrap();
    slept.record(gap_ms, HostState::Idle).unwrap();
    (
        meter(&awake, p, gap_ms).unwrap().desktop_j,
        meter(&slept, p, gap_ms).unwrap().desktop_j,
    )
}

#[test]
fn break_even_of_the_default_profile() {
    assert_eq!(break_even_ms(&PowerProfile::default()), Some(9_755));
}

#[test]
fn break_even_formula_by_hand() {
    // (10 + 20 - 2 x 1.5) / (11 - 2) = 3 s
    assert_eq!(
        break_even_ms(&profile(11.0, 2.0, (500, 10.0), (1_000, 20.0))),
        Some(3_000)
    );
    // cheap transitions: the latencies bound it from below
    assert_eq!(
        break_even_ms(&profile(60.0, 3.0, (2_000, 1.0), (3_000, 1.0))),
        Some(5_000)
    );
    // sleeping draws as much as idling: never pays off
    assert_eq!(break_even_ms(&profile(5.0, 5.0, (1, 1.0), (1, 1.0))), None);
    // free instantaneous transitions: sleep at once
    assert_eq!(
        break_even_ms(&profile(60.0, 3.0, (0, 0.0), (0, 0.0))),
        Some(0)
    );
}

#[test]
fn break_even_is_where_the_metered_energies_cross() {
    for p in [
        PowerProfile::default(),
        profile(11.0, 2.0, (500, 10.0), (1_000, 20.0)),
    ] {
        let be = break_even_ms(&p).unwrap();
        let (awake, slept) = gap_energy(&p, be);
        assert!(
            (awake - slept).abs() < 0.1,
            "at break-even: {awake} vs {slept}"
        );
        let (awake, slept) = gap_energy(&p, be + 5_000);
        assert!(slept < awake, "longer gaps pay off");
        let (awake, slept) = gap_energy(&p, be - 1_000);
        assert!(slept > awake, "shorter gaps do not");
    }
}

#[test]
fn fixed_timeout() {
    let mut f = FixedTimeout { timeout_ms: 30_000 };
    assert_eq!(
        f.decide(1_000, 1_000),
        Decision::StayAwake {
            recheck_in_ms: 30_000
        }
    );
    assert_eq!(
        f.decide(21_000, 1_000),
        Decision::StayAwake {
            recheck_in_ms: 10_000
        }
    );
    assert_eq!(f.decide(31_000, 1_000), Decision::Sleep);
    assert_eq!(
        f.decide(500, 1_000),
        Decision::StayAwake {
            recheck_in_ms: 30_000
        },
        "clock skew"
    );
    assert_eq!(FixedTimeout { timeout_ms: 0 }.decide(5, 5), Decision::Sleep);
}

#[test]
fn never_sleeps() {
    assert_eq!(
        NeverSleep.decide(u64::MAX, 0),
        Decision::StayAwake {
            recheck_in_ms: NEVER_RECHECK_MS
        }
    );
}

#[test]
fn break_even_without_history_waits_the_break_even_time() {
    let mut b = BreakEven::new(&PowerProfile::default());
    assert_eq!(
        b.decide(0, 0),
        Decision::StayAwake {
            recheck_in_ms: 9_755
        }
    );
    assert_eq!(
        b.decide(9_000, 0),
        Decision::StayAwake { recheck_in_ms: 755 }
    );
    assert_eq!(b.decide(9_755, 0), Decision::Sleep);
    assert_eq!(b.expected_gap_ms(), None);
}

#[test]
fn break_even_stays_awake_for_a_burst_and_sleeps_when_it_fails() {
    let mut b = BreakEven::new(&PowerProfile::default());
    for t in [0, 1_000, 2_000, 3_000] {
        b.on_request(t);
    }
    assert_eq!(b.expected_gap_ms(), Some(1_000.0));
    assert_eq!(
        b.decide(3_500, 3_000),
        Decision::StayAwake {
            recheck_in_ms: 9_255
        }
    );
    assert_eq!(
        b.decide(12_755, 3_000),
        Decision::Sleep,
        "quiet for the break-even time"
    );
}

#[test]
fn break_even_sleeps_at_once_when_requests_are_far_apart() {
    let mut b = BreakEven::with_alpha(&PowerProfile::default(), 1.0);
    b.on_request(0);
    assert_eq!(
        b.decide(60_000, 60_000),
        Decision::Sleep,
        "the gap was 60 s"
    );
    b.on_request(61_000);
    assert_eq!(
        b.decide(61_000, 61_000),
        Decision::StayAwake {
            recheck_in_ms: 9_755
        }
    );
}

#[test]
fn break_even_learns_from_decide_and_ignores_repeats() {
    let mut b = BreakEven::with_alpha(&PowerProfile::default(), 0.5);
    b.decide(0, 0);
    b.decide(100, 0);
    b.on_request(0);
    assert_eq!(b.expected_gap_ms(), None);
    b.decide(4_000, 4_000);
    b.on_request(12_000);
    assert_eq!(
        b.expected_gap_ms(),
        Some(6_000.0),
        "0.5 x 8000 + 0.5 x 4000"
    );
    assert!(BreakEven::with_alpha(&PowerProfile::default(), f64::NAN).alpha > 0.0);
}

#[test]
fn break_even_never_sleeps_when_it_cannot_pay_off() {
    let mut b = BreakEven::new(&profile(5.0, 5.0, (1, 1.0), (1, 1.0)));
    assert_eq!(b.break_even_ms(), None);
    assert_eq!(
        b.decide(1_000_000, 0),
        Decision::StayAwake {
            recheck_in_ms: NEVER_RECHECK_MS
        }
    );
}

#[derive(Debug, Deserialize, Serialize)]
struct Cfg {
    policy: PolicyConfig,
}

fn parse(text: &str) -> Result<PolicyConfig, toml::de::Error> {
    toml::from_str::<Cfg>(text).map(|c| c.policy)
}

#[test]
fn config_by_name() {
    assert_eq!(
        parse("policy = \"break-even\"").unwrap(),
        PolicyConfig::Named(PolicyName::BreakEven)
    );
    assert_eq!(
        parse("policy = \"never\"").unwrap(),
        PolicyConfig::Named(PolicyName::Never)
    );
    let fixed = parse("policy = { fixed_timeout_s = 30 }").unwrap();
    assert_eq!(
        fixed,
        PolicyConfig::FixedTimeout(FixedTimeoutConfig {
            fixed_timeout_s: 30
        })
    );
    for bad in [
        "policy = \"sometimes\"",
        "policy = { fixed_timeout = 30 }",
        "policy = { fixed_timeout_s = -1 }",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        PolicyConfig::default(),
        PolicyConfig::Named(PolicyName::BreakEven)
    );
    let text = toml::to_string(&Cfg {
        policy: fixed.clone(),
    })
    .unwrap();
    assert_eq!(parse(&text).unwrap(), fixed);
}

#[test]
fn config_builds_the_policy() {
    let p = PowerProfile::default();
    let mut fixed = parse("policy = { fixed_timeout_s = 30 }")
        .unwrap()
        .build(&p);
    assert_eq!(
        fixed.decide(29_999, 0),
        Decision::StayAwake { recheck_in_ms: 1 }
    );
    assert_eq!(fixed.decide(30_000, 0), Decision::Sleep);
    let mut be = PolicyConfig::default().build(&p);
    assert_eq!(be.decide(9_755, 0), Decision::Sleep);
    let mut never = parse("policy = \"never\"").unwrap().build(&p);
    assert!(matches!(
        never.decide(1 << 40, 0),
        Decision::StayAwake { .. }
    ));
}

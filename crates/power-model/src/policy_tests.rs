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
    b.on_period_start(0);
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
    assert_eq!(b.streak(), 0);
}

#[test]
fn break_even_stays_awake_for_a_burst_and_sleeps_when_it_fails() {
    let mut b = BreakEven::new(&PowerProfile::default());
    b.on_period_start(0);
    for t in [0, 1_000, 2_000, 3_000] {
        b.on_request(t);
    }
    assert_eq!(b.streak(), 0);
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
fn break_even_sleeps_at_once_only_after_a_streak_of_long_gaps() {
    let mut b = BreakEven::new(&PowerProfile::default());
    b.on_period_start(0);
    // one long gap (60 s awake) is not enough with a streak of 2
    b.on_request(60_000);
    assert_eq!(b.streak(), 1);
    assert_eq!(
        b.decide(60_000, 60_000),
        Decision::StayAwake {
            recheck_in_ms: 9_755
        }
    );
    // it sleeps at 69.755 s; the wake's fetch is served at 200 s: the gap
    // counts as 200 - 8 - 60 = 132 s, long
    assert_eq!(b.decide(69_755, 60_000), Decision::Sleep);
    b.on_request(200_000);
    assert_eq!(b.streak(), 2);
    assert_eq!(b.decide(200_000, 200_000), Decision::Sleep, "at once");
    // woken 9 s later, served at the resume's end (17 s: 9 s less L_s + L_r):
    // a wrong sleep, the streak starts over
    b.on_request(217_000);
    assert_eq!(b.streak(), 0);
    assert_eq!(
        b.decide(217_000, 217_000),
        Decision::StayAwake {
            recheck_in_ms: 9_755
        }
    );
}

#[test]
fn break_even_forgets_the_gap_before_a_period() {
    // the bug this replaces: the hours between periods made it sleep at
    // once into the VM's arrival burst
    let mut b = BreakEven::with_streak(&PowerProfile::default(), 1);
    b.on_period_start(0);
    b.on_request(30_000);
    assert_eq!(b.streak(), 1);
    b.on_period_start(5 * 3_600_000);
    assert_eq!(b.streak(), 0);
    assert_eq!(
        b.decide(5 * 3_600_000, 5 * 3_600_000),
        Decision::StayAwake {
            recheck_in_ms: 9_755
        },
        "the arrival burst is coming"
    );
    // without the period start (an agent that does not call it), streak 1
    // would sleep at once; the default streak of 2 needs a second long gap
    let mut d = BreakEven::new(&PowerProfile::default());
    d.on_request(0);
    d.on_request(5 * 3_600_000);
    assert!(matches!(
        d.decide(5 * 3_600_000, 5 * 3_600_000),
        Decision::StayAwake { .. }
    ));
    assert_eq!(
        BreakEven::with_streak(&PowerProfile::default(), 0).streak_needed(),
        1
    );
}

#[test]
fn break_even_ignores_repeats_and_decide_learns_the_last_request() {
    let mut b = BreakEven::new(&PowerProfile::default());
    b.on_period_start(0);
    b.decide(0, 0);
    b.decide(100, 0);
    b.on_request(0);
    assert_eq!(b.streak(), 0);
    b.decide(20_000, 20_000);
    assert_eq!(b.streak(), 1, "20 s quiet before the request at 20 s");
    b.on_request(20_000);
    assert_eq!(b.streak(), 1);
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

/// Draws `n` ski-rental timeouts, one per gap (each decision at a new last request).
fn ski_draws(seed: u64, n: u64) -> Vec<u64> {
    let mut s = SkiRental::new(&PowerProfile::default(), seed);
    (0..n)
        .map(|i| {
            s.decide(i * 100_000, i * 100_000);
            s.timeout_ms()
        })
        .collect()
}

#[test]
fn ski_rental_is_deterministic_given_its_seed() {
    assert_eq!(ski_draws(1, 50), ski_draws(1, 50));
    assert_ne!(ski_draws(1, 50), ski_draws(2, 50));
}

#[test]
fn ski_rental_draws_follow_the_competitive_distribution() {
    let be = 9_755.0;
    let draws = ski_draws(42, 20_000);
    assert!(draws.iter().all(|&t| t <= 9_755));
    // E[t] = B / (e - 1) for this density
    let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
    let expected = be / (std::f64::consts::E - 1.0);
    assert!(
        (mean - expected).abs() < 0.02 * be,
        "mean {mean} vs {expected}"
    );
    // P(t <= B/2) = (e^0.5 - 1)/(e - 1) = 0.3775
    let low = draws.iter().filter(|&&t| t as f64 <= be / 2.0).count() as f64;
    assert!((low / draws.len() as f64 - 0.3775).abs() < 0.02);
}

#[test]
fn ski_rental_keeps_its_timeout_within_a_gap_and_redraws_after_a_request() {
    let mut s = SkiRental::new(&PowerProfile::default(), 7);
    let first = match s.decide(0, 0) {
        Decision::StayAwake { recheck_in_ms } => recheck_in_ms,
        Decision::Sleep => 0,
    };
    assert_eq!(first, s.timeout_ms());
    assert_eq!(s.decide(s.timeout_ms(), 0), Decision::Sleep);
    assert_eq!(s.timeout_ms(), first, "same gap, same timeout");
    let t: Vec<u64> = (1..20)
        .map(|i| {
            s.decide(i * 50_000, i * 50_000);
            s.timeout_ms()
        })
        .collect();
    assert!(t.iter().any(|&x| x != first), "redrawn per gap: {t:?}");
}

#[test]
fn ski_rental_is_competitive_in_expectation() {
    // Against an adversarial gap of exactly B, the optimum is P_i B; the
    // randomized policy's expected cost must stay within e/(e-1) of it.
    let p = PowerProfile::default();
    let be = break_even_ms(&p).unwrap();
    let (awake, slept) = gap_energy(&p, be);
    assert!((awake - slept).abs() / awake < 1e-3);
    let draws = ski_draws(3, 20_000);
    let pi = p.desktop.idle_w;
    let cost: f64 = draws
        .iter()
        .map(|&t| {
            if t < be {
                (pi - p.desktop.asleep_w) * t as f64 / 1000.0 + slept
            } else {
                awake
            }
        })
        .sum::<f64>()
        / draws.len() as f64;
    let ratio = cost / awake;
    assert!(
        ratio > 1.3 && ratio < std::f64::consts::E / (std::f64::consts::E - 1.0) + 0.02,
        "{ratio}"
    );
}

#[test]
fn ski_rental_never_sleeps_when_it_cannot_pay_off() {
    let mut s = SkiRental::new(&profile(3.0, 3.0, (1, 1.0), (1, 1.0)), 1);
    assert!(matches!(s.decide(1 << 40, 0), Decision::StayAwake { .. }));
}

#[test]
fn oracle_sleeps_at_once_iff_the_next_gap_exceeds_break_even() {
    let p = PowerProfile::default();
    let mut o = Oracle::new(&p, vec![100_000, 5_000, 109_755, 109_756 + 9_756]);
    // next request in 5 s: stay awake until it
    assert_eq!(
        o.decide(0, 0),
        Decision::StayAwake {
            recheck_in_ms: 5_000
        }
    );
    // next in 95 s: sleep
    assert_eq!(o.decide(5_000, 5_000), Decision::Sleep);
    // exactly the break-even time: not worth it
    assert_eq!(
        o.decide(100_000, 100_000),
        Decision::StayAwake {
            recheck_in_ms: 9_755
        }
    );
    assert_eq!(o.decide(109_755, 109_755), Decision::Sleep);
    // nothing left: sleep
    assert_eq!(o.decide(1 << 30, 1 << 30), Decision::Sleep);
    let mut never = Oracle::new(&profile(3.0, 3.0, (1, 1.0), (1, 1.0)), vec![]);
    assert!(matches!(never.decide(0, 0), Decision::StayAwake { .. }));
}

#[test]
fn config_names_ski_rental() {
    assert_eq!(
        parse("policy = \"ski-rental\"").unwrap(),
        PolicyConfig::Named(PolicyName::SkiRental)
    );
    let mut s = PolicyConfig::Named(PolicyName::SkiRental).build(&PowerProfile::default());
    assert_eq!(s.decide(9_755, 0), Decision::Sleep);
}

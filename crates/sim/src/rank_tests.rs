use super::*;
use crate::delay::StallMs;
use crate::{generate, simulate, PolicySpec, SimConfig, SynthParams};

#[test]
fn ci95_by_hand() {
    assert_eq!(ci95(&[]), None);
    assert_eq!(ci95(&[3.0]), None);
    // mean 2, sd 1, t(2) = 4.303: half-width 4.303 / sqrt(3)
    let c = ci95(&[1.0, 2.0, 3.0]).unwrap();
    let half = 4.303 / 3f64.sqrt();
    assert!((c.mean - 2.0).abs() < 1e-12);
    assert!((c.lo - (2.0 - half)).abs() < 1e-12 && (c.hi - (2.0 + half)).abs() < 1e-12);
    assert_eq!(c.seeds, 3);
    let same = ci95(&[5.0; 4]).unwrap();
    assert_eq!((same.lo, same.hi), (5.0, 5.0));
}

fn outcome(savings_pct: f64, p99: u64, wakes: f64) -> Outcome {
    Outcome {
        savings_pct,
        wakes_per_idle_hour: wakes,
        stall_ms: Some(StallMs {
            p50: 0,
            p99,
            max: p99,
        }),
        ..Outcome::default()
    }
}

fn report() -> Report {
    let mut r = Report::default();
    for (k, o) in [
        ("eager", outcome(70.0, 5_000, 30.0)),
        ("calm", outcome(60.0, 0, 1.0)),
        ("middle", outcome(65.0, 900, 4.0)),
        ("worse", outcome(59.0, 900, 5.0)),
    ] {
        r.policies.insert(k.into(), o);
    }
    r
}

#[test]
fn the_budget_picks_the_most_savings_within_it() {
    let r = report();
    let pick = best_under_budget(&r, DelayBudget::default());
    assert_eq!(pick.combination.as_deref(), Some("middle"));
    assert_eq!((pick.savings_pct, pick.admitted), (65.0, 2));
    let strict = DelayBudget {
        stall_p99_ms: 0,
        wakes_per_idle_hour: 4.0,
    };
    assert_eq!(
        best_under_budget(&r, strict).combination.as_deref(),
        Some("calm")
    );
    let none = DelayBudget {
        stall_p99_ms: 0,
        wakes_per_idle_hour: 0.5,
    };
    let p = best_under_budget(&r, none);
    assert_eq!((p.combination, p.admitted), (None, 0));
    // no stalls recorded (an oracle): never admitted
    assert!(!DelayBudget::default().admits(&Outcome::default()));
}

#[test]
fn pareto_front_drops_the_dominated() {
    let r = report();
    let front: Vec<&str> = pareto_front(&r).into_iter().map(|(k, _)| k).collect();
    assert_eq!(front, vec!["calm", "middle", "eager"]);
}

#[test]
fn crossover_matches_simulations_on_either_side() {
    let trace = generate(&SynthParams {
        desktops: 4,
        days: 7,
        ..SynthParams::default()
    });
    let config = SimConfig {
        policies: vec![PolicySpec::BreakEven],
        ..SimConfig::default()
    };
    let r = simulate(&trace, &config);
    let o = &r.policies["break-even"];
    let n0 = f64::from(config.profile.server.partial_vms_per_server);
    assert!((savings_with_share(o, r.always_on_j, n0, n0) - o.savings_pct).abs() < 1e-9);
    let x = crossover_partial_vms_per_server(&r, o, n0).expect("a crossover");
    // simulated again with the share on either side of it
    let at = |n: u32| {
        let mut c = config.clone();
        c.profile.server.partial_vms_per_server = n;
        simulate(&trace, &c).policies["break-even"].savings_pct
    };
    let fm = r.full_migration.savings_pct;
    assert!(at(x.floor() as u32) <= fm, "{x}");
    assert!(at(x.ceil() as u32) >= fm, "{x}");
    // a share that never pays: none
    let mut poor = o.clone();
    poor.energy_j = r.always_on_j * 2.0;
    assert_eq!(crossover_partial_vms_per_server(&r, &poor, n0), None);
}

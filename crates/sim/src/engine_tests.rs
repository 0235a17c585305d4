use super::*;
use crate::synth::{generate, Rng, SynthParams};
use crate::trace::{DesktopTrace, Request};

fn config() -> SimConfig {
    SimConfig {
        policies: vec![
            PolicySpec::FixedTimeout(60_000),
            PolicySpec::BreakEven,
            PolicySpec::SkiRental(7),
        ],
        ..SimConfig::default()
    }
}

fn fleet(seed: u64, desktops: u32, days: u32) -> FleetTrace {
    generate(&SynthParams {
        seed,
        desktops,
        days,
        working_set_pages: 64,
        ..SynthParams::default()
    })
}

#[test]
fn buckets() {
    let h = 3_600_000;
    let at = |s, e| {
        Bucket::of(Span {
            start_ms: s,
            end_ms: e,
        })
    };
    assert_eq!(
        at(DAY_MS + 10 * h, DAY_MS + 10 * h + 20 * 60_000),
        Bucket::Short
    );
    assert_eq!(
        at(DAY_MS + 10 * h, DAY_MS + 10 * h + 45 * 60_000),
        Bucket::Medium
    );
    assert_eq!(at(DAY_MS + 10 * h, DAY_MS + 13 * h), Bucket::Long);
    assert_eq!(at(DAY_MS + 18 * h, 2 * DAY_MS + 8 * h), Bucket::Overnight);
    assert_eq!(at(DAY_MS + 5 * h, DAY_MS + 7 * h), Bucket::Overnight);
    assert_eq!(at(DAY_MS + 7 * h, DAY_MS + 16 * h), Bucket::Overnight);
}

#[test]
fn one_period_by_hand() {
    // one request 60 s in, user back after 10 min; default profile
    let p = PowerProfile::default();
    let pe = IdlePeriod {
        span: Span {
            start_ms: 0,
            end_ms: 600_000,
        },
        requests: vec![Request {
            offset_ms: 60_000,
            page: 1,
        }],
    };
    let mut o = Outcome::default();
    let j = run_period(&p, &mut FixedTimeout { timeout_ms: 30_000 }, &pe, &mut o);
    // two gaps, each 30 s idle then a sleep cycle
    let expected = 60.0 * 30.0 + 580.0 + 3.0 * 22.0 + 60.0 * 30.0 + 580.0 + 3.0 * 502.0;
    assert!((j - expected).abs() < 1e-6, "{j} vs {expected}");
    assert_eq!((o.sleeps, o.delayed_requests), (2, 1));
    let mut orc = Oracle::new(&p, vec![60_000, 600_000]);
    let mut o = Outcome::default();
    let j = run_period(&p, &mut orc, &pe, &mut o);
    assert!(
        (j - (1160.0 + 3.0 * 52.0 + 3.0 * 532.0)).abs() < 1e-6,
        "{j}"
    );
}

#[test]
fn oracle_bounds_every_online_policy_over_random_traces() {
    for seed in 0..40 {
        let mut rng = Rng::new(seed);
        let desktops = (0..3)
            .map(|_| {
                let mut idle = Vec::new();
                let mut t = 0;
                for _ in 0..6 {
                    let len = 600_000 + (rng.exp(3_600_000.0) as u64);
                    let mut off = 0.0;
                    let mut requests = Vec::new();
                    let mean = rng.range(1_000.0, 120_000.0);
                    loop {
                        off += rng.exp(mean);
                        if off >= len as f64 {
                            break;
                        }
                        requests.push(Request {
                            offset_ms: off as u32,
                            page: 0,
                        });
                    }
                    idle.push(IdlePeriod {
                        span: Span {
                            start_ms: t,
                            end_ms: t + len,
                        },
                        requests,
                    });
                    t += len + 60_000;
                }
                DesktopTrace {
                    activity: vec![],
                    idle,
                }
            })
            .collect();
        let trace = FleetTrace {
            days: 30,
            length_ms: None,
            desktops,
        };
        trace.validate().unwrap();
        let r = simulate(&trace, &config());
        for (name, o) in &r.policies {
            assert!(
                r.oracle.energy_j <= o.energy_j + 1e-6,
                "seed {seed}: {name}"
            );
            for (b, s) in &o.savings_by_idle_bucket {
                assert!(
                    r.oracle.savings_by_idle_bucket[b] >= s - 1e-9,
                    "seed {seed}: {name} {b:?}"
                );
            }
        }
    }
}

#[test]
fn savings_ordering_on_a_synthetic_fleet() {
    let trace = fleet(2, 6, 14);
    let r = simulate(&trace, &config());
    let o = &r.oracle;
    let b = &o.savings_by_idle_bucket;
    assert!(b[&Bucket::Short] < b[&Bucket::Medium], "{b:?}");
    assert!(b[&Bucket::Medium] < b[&Bucket::Long], "{b:?}");
    assert!(b[&Bucket::Long] < b[&Bucket::Overnight], "{b:?}");
    // plain sleep (no presence) saves the most; every scheme saves something
    for x in r.policies.values().chain([&r.oracle, &r.full_migration]) {
        assert!(x.savings_pct > 0.0 && x.savings_pct <= r.plain_sleep.savings_pct);
        assert!(x.energy_j < r.always_on_j);
    }
    assert!(r.oracle.delayed_requests == 0 && r.policies["break-even"].delayed_requests > 0);
    assert_eq!(
        r.idle_periods.values().sum::<u64>(),
        trace
            .desktops
            .iter()
            .map(|d| d.idle.len() as u64)
            .sum::<u64>()
    );
}

#[test]
fn contention_slows_full_migration() {
    // thirty desktops idle at the same minute for 12 minutes: each migration of
    // 4 GiB takes 30 x 34 s, longer than the period; alone it pays off
    let pe = IdlePeriod {
        span: Span {
            start_ms: 0,
            end_ms: 720_000,
        },
        requests: vec![],
    };
    let one = DesktopTrace {
        activity: vec![],
        idle: vec![pe],
    };
    let solo = simulate(
        &FleetTrace {
            days: 1,
            length_ms: None,
            desktops: vec![one.clone()],
        },
        &config(),
    );
    let crowd = simulate(
        &FleetTrace {
            days: 1,
            length_ms: None,
            desktops: vec![one; 30],
        },
        &config(),
    );
    assert_eq!(solo.full_migration.sleeps, 1);
    assert_eq!(crowd.full_migration.sleeps, 0);
    assert!(crowd.full_migration.savings_pct < solo.full_migration.savings_pct);
}

#[test]
fn report_serializes_with_bucket_names() {
    let r = simulate(&fleet(1, 2, 7), &config());
    let v = serde_json::to_value(&r).unwrap();
    let b = &v["policies"]["ski-rental"]["savings_by_idle_bucket"];
    for k in ["10-30m", "30-60m", "1h+", "overnight"] {
        assert!(b[k].is_number(), "{k} in {b}");
    }
    assert!(v["oracle"]["savings_pct"].is_number());
}

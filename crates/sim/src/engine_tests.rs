use super::*;
use crate::config::{PolicySpec, SelectiveResume};
use crate::synth::{generate, Rng, SynthParams};
use crate::trace::{Request, DAY_MS};

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
        hot_pages: 256,
        arrival_accesses: 64,
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

/// Every combination of the test's sleep policies, four prefetch policies
/// (small groups and working sets) and both resumes.
fn every_combination() -> SimConfig {
    SimConfig {
        prefetch: vec![
            PrefetchConfig::None,
            PrefetchConfig::Neighbourhood { pages: 4 },
            PrefetchConfig::WorkingSet {
                max_pages: 16,
                periods: 2,
            },
            PrefetchConfig::Combined {
                pages: 8,
                max_pages: 32,
                periods: 3,
            },
        ],
        selective_resume: SelectiveResume::Both,
        ..config()
    }
}

/// A random desktop: idle periods of random lengths and request rates,
/// pages from a small recurring pool in runs, plus fresh ones.
fn random_desktop(rng: &mut Rng) -> DesktopTrace {
    let mut idle = Vec::new();
    let mut t = 0;
    for _ in 0..6 {
        let len = 600_000 + (rng.exp(3_600_000.0) as u64);
        let (mut off, mut requests) = (0.0, Vec::new());
        let mean = rng.range(1_000.0, 120_000.0);
        loop {
            off += rng.exp(mean);
            if off >= len as f64 {
                break;
            }
            let page = if rng.unit() < 0.7 {
                (rng.next_u64() % 48) as u32
            } else {
                1_000 + (rng.next_u64() % 100_000) as u32
            };
            for k in 0..=(rng.next_u64() % 3) as u32 {
                requests.push(Request {
                    offset_ms: off as u32,
                    page: page + k,
                });
            }
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
}

#[test]
fn oracle_bounds_every_online_combination_over_random_traces() {
    let config = every_combination();
    for seed in 0..40 {
        let mut rng = Rng::new(seed);
        let trace = FleetTrace {
            days: 30,
            length_ms: None,
            desktops: (0..3).map(|_| random_desktop(&mut rng)).collect(),
        };
        trace.validate().unwrap();
        let r = simulate(&trace, &config);
        assert_eq!(r.policies.len(), 3 * 4 * 2);
        assert_eq!(r.oracles.len(), 4 * 2);
        for (name, o) in &r.policies {
            assert!(
                r.oracle.energy_j <= o.energy_j + 1e-6,
                "seed {seed}: {name}"
            );
            let own = r.oracle_of(o).unwrap();
            assert_eq!(own.fetches, o.fetches, "{name}: same misses");
            assert_eq!(own.network_bytes, o.network_bytes, "{name}");
            assert!(own.energy_j <= o.energy_j + 1e-6, "seed {seed}: {name}");
            for (b, s) in &o.savings_by_idle_bucket {
                let bound = own.savings_by_idle_bucket[b];
                assert!(bound >= s - 1e-9, "seed {seed}: {name} {b:?}");
            }
        }
        // prefetching only removes misses; the pages come anyway
        let f = |k: &str| r.oracles[k].fetches;
        assert!(f("neighbourhood-4") <= f("none") && f("combined-8-32-3") <= f("none"));
        assert!(f("working-set-16-2") <= f("none"));
        assert_eq!(f("none"), f("none+selective"));
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
    // the oracle wakes at the requests too (cheaper than ahead of them)
    assert!(r.oracle.delayed_requests > 0 && r.policies["break-even"].delayed_requests > 0);
    assert_eq!(
        r.policies.len(),
        3,
        "no prefetch, full resumes: the policies' names"
    );
    assert_eq!(r.oracles.keys().collect::<Vec<_>>(), vec!["none"]);
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
fn prefetching_and_selective_resume_pay_off_on_a_synthetic_fleet() {
    let config = SimConfig {
        prefetch: vec![
            PrefetchConfig::None,
            PrefetchConfig::WorkingSet {
                max_pages: 8192,
                periods: 4,
            },
        ],
        selective_resume: SelectiveResume::Both,
        ..config()
    };
    let r = simulate(&fleet(4, 4, 14), &config);
    let (none, ws) = (
        &r.policies["break-even"],
        &r.policies["break-even+working-set"],
    );
    assert!(
        ws.fetches < none.fetches / 2,
        "{} vs {}",
        ws.fetches,
        none.fetches
    );
    assert!(ws.delayed_requests < none.delayed_requests);
    assert!(
        ws.pages_fetched > none.pages_fetched,
        "prefetching fetches more pages"
    );
    assert!(ws.savings_pct > none.savings_pct);
    let sel = &r.policies["break-even+working-set+selective"];
    let short = |o: &Outcome| o.savings_by_idle_bucket[&Bucket::Short];
    assert!(short(sel) > short(ws));
    assert!(r.oracle.energy_j <= sel.energy_j);
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
    let r = simulate(&fleet(1, 2, 7), &every_combination());
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "ski-rental",
        "break-even+working-set-16-2+selective",
        "break-even+selective",
    ] {
        let b = &v["policies"][key]["savings_by_idle_bucket"];
        for k in ["10-30m", "30-60m", "1h+", "overnight"] {
            assert!(b[k].is_number(), "{k} in {b}");
        }
        assert!(v["policies"][key]["savings_pct"].is_number(), "{key}");
        let o = &v["policies"][key];
        for k in ["p50", "p99", "max"] {
            assert!(o["stall_ms"][k].is_u64(), "{key}: stall_ms.{k} in {o}");
        }
        assert!(o["wakes_per_idle_hour"].is_number(), "{key}");
        assert!(o["return_latency_s"]["p99"].is_number(), "{key}");
        // stalls never exceed the suspend and the full resume
        assert!(o["stall_ms"]["max"].as_u64().unwrap() <= 8_000, "{o}");
    }
    assert!(v["full_migration"]["return_latency_s"]["p50"].is_number());
    assert!(v["idle_ms"].as_u64().unwrap() > 0);
    assert!(v["oracle"]["savings_pct"].is_number());
    assert!(v["oracles"]["combined-8-32-3+selective"]["network_bytes"].is_number());
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back.policies.len(), r.policies.len());
}

#[path = "engine_hand_tests.rs"]
mod hand;

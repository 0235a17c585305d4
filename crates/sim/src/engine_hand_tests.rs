//! Small traces through [`simulate`], checked against joules computed by
//! hand (default profile: idle 60 W, asleep 3 W, suspend 3 s / 180 J, full
//! resume 5 s / 400 J, service resume 2.5 s / 200 J, server 300 W / 90 per
//! partially migrated VM).

use super::*;
use crate::config::{PolicySpec, SelectiveResume};
use crate::fetch::{DEVICE_STATE_BYTES, PAGE_BYTES};
use crate::trace::Request;

const MIN10: u64 = 600_000;

fn period(start_ms: u64, reqs: &[(u32, u32)]) -> IdlePeriod {
    IdlePeriod {
        span: Span {
            start_ms,
            end_ms: start_ms + MIN10,
        },
        requests: reqs
            .iter()
            .map(|&(offset_ms, page)| Request { offset_ms, page })
            .collect(),
    }
}

fn one_desktop(length_ms: u64, activity: Vec<Span>, idle: Vec<IdlePeriod>) -> FleetTrace {
    let t = FleetTrace {
        days: 1,
        length_ms: Some(length_ms),
        desktops: vec![DesktopTrace { activity, idle }],
    };
    t.validate().unwrap();
    t
}

fn timeout_30s(prefetch: Vec<PrefetchConfig>, selective_resume: SelectiveResume) -> SimConfig {
    SimConfig {
        policies: vec![PolicySpec::FixedTimeout(30_000)],
        prefetch,
        selective_resume,
        ..SimConfig::default()
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
}

// Sleeping 30 s into gaps of 60 s, 240 s, 300 s and 540 s (full resumes):
const G60: f64 = 1800.0 + 580.0 + 3.0 * 22.0;
const G240: f64 = 1800.0 + 580.0 + 3.0 * 202.0;
const G300: f64 = 1800.0 + 580.0 + 3.0 * 262.0;
const G540: f64 = 1800.0 + 580.0 + 3.0 * 502.0;
const SERVER_10MIN: f64 = 300.0 / 90.0 * 600.0;

#[test]
fn a_neighbourhood_hit_avoids_a_wake() {
    // pages 10 (60 s in) and 11 (300 s in): one group of 64
    let trace = one_desktop(
        MIN10,
        vec![],
        vec![period(0, &[(60_000, 10), (300_000, 11)])],
    );
    let nb = PrefetchConfig::Neighbourhood { pages: 64 };
    let r = simulate(
        &trace,
        &timeout_30s(vec![PrefetchConfig::None, nb], SelectiveResume::Off),
    );
    close(r.always_on_j, 60.0 * 600.0);
    let none = &r.policies["fixed-timeout-30s"];
    close(none.energy_j, G60 + G240 + G300 + SERVER_10MIN);
    assert_eq!(
        (none.sleeps, none.delayed_requests, none.fetches),
        (3, 2, 2)
    );
    assert_eq!(none.network_bytes, 2 * PAGE_BYTES + 2 * DEVICE_STATE_BYTES);
    let hood = &r.policies["fixed-timeout-30s+neighbourhood-64"];
    close(hood.energy_j, G60 + G540 + SERVER_10MIN);
    assert_eq!(
        (hood.sleeps, hood.delayed_requests, hood.fetches),
        (2, 1, 1)
    );
    assert_eq!(hood.pages_fetched, 64);
    assert_eq!(hood.network_bytes, 64 * PAGE_BYTES + 2 * DEVICE_STATE_BYTES);
    // the oracle of each prefetch policy sees the same misses
    assert_eq!(r.oracles["neighbourhood-64"].fetches, 1);
    assert_eq!(r.oracle.prefetch, "neighbourhood-64");
}

#[test]
fn the_working_set_fetched_at_the_first_miss_avoids_later_misses() {
    // the same two pages in two periods, the user at work in between
    let reqs = [(60_000, 100), (300_000, 5_000)];
    let work = Span {
        start_ms: MIN10,
        end_ms: 2 * MIN10,
    };
    let trace = one_desktop(
        3 * MIN10,
        vec![work],
        vec![period(0, &reqs), period(2 * MIN10, &reqs)],
    );
    let ws = PrefetchConfig::WorkingSet {
        max_pages: 8192,
        periods: 4,
    };
    let r = simulate(
        &trace,
        &timeout_30s(vec![PrefetchConfig::None, ws], SelectiveResume::Off),
    );
    let at_work = 100.0 * 600.0;
    let none = &r.policies["fixed-timeout-30s"];
    close(
        none.energy_j,
        2.0 * (G60 + G240 + G300 + SERVER_10MIN) + at_work,
    );
    assert_eq!(none.fetches, 4);
    // first period: no history yet; second: 100 brings 5000 along
    let w = &r.policies["fixed-timeout-30s+working-set"];
    close(
        w.energy_j,
        (G60 + G240 + G300) + (G60 + G540) + 2.0 * SERVER_10MIN + at_work,
    );
    assert_eq!((w.fetches, w.pages_fetched, w.delayed_requests), (3, 4, 3));
    close(r.always_on_j, 60.0 * 1200.0 + at_work);
}

#[test]
fn selective_resume_by_hand_through_the_engine() {
    let trace = one_desktop(MIN10, vec![], vec![period(0, &[(60_000, 1)])]);
    let r = simulate(&trace, &timeout_30s(vec![], SelectiveResume::Both));
    let full = &r.policies["fixed-timeout-30s"];
    close(full.energy_j, G60 + G540 + SERVER_10MIN);
    // the page wake resumes CPU, memory and NIC: 2.5 s, 200 J
    let sel = &r.policies["fixed-timeout-30s+selective"];
    close(
        sel.energy_j,
        1800.0 + 180.0 + 200.0 + 3.0 * 24.5 + G540 + SERVER_10MIN,
    );
    assert!(sel.selective_resume && !full.selective_resume);
    assert_eq!(r.oracles.len(), 2);
    assert!(r.oracle.selective_resume);
    // On alone: only the selective keys
    let r = simulate(&trace, &timeout_30s(vec![], SelectiveResume::On));
    assert_eq!(
        r.policies.keys().collect::<Vec<_>>(),
        vec!["fixed-timeout-30s+selective"]
    );
}

#[test]
fn a_short_recorded_trace_with_a_custom_profile() {
    // what a demo run records: minutes, one desktop, work around one idle
    // period with one request; a profile without per-device costs
    let profile = PowerProfile::from_toml(
        "devices = []\n[desktop]\nactive_w = 80.0\nidle_w = 50.0\nasleep_w = 2.0\n\
         [suspend]\nlatency_ms = 2000\nenergy_j = 100.0\n[resume]\nlatency_ms = 4000\nenergy_j = 200.0\n",
    )
    .unwrap();
    let idle = IdlePeriod {
        span: Span {
            start_ms: 60_000,
            end_ms: 240_000,
        },
        requests: vec![Request {
            offset_ms: 30_000,
            page: 1,
        }],
    };
    let work = |s, e| Span {
        start_ms: s,
        end_ms: e,
    };
    let trace = one_desktop(
        300_000,
        vec![work(0, 60_000), work(240_000, 300_000)],
        vec![idle],
    );
    let config = SimConfig {
        profile,
        policies: vec![PolicySpec::FixedTimeout(10_000)],
        selective_resume: SelectiveResume::On,
        ..Default::default()
    };
    let r = simulate(&trace, &config);
    // gaps of 30 s and 150 s, each 10 s awake then asleep; without device
    // costs the service resume is the full one
    let desktop = (500.0 + 300.0 + 2.0 * 14.0) + (500.0 + 300.0 + 2.0 * 134.0);
    let server = 300.0 / 90.0 * 180.0;
    let o = &r.policies["fixed-timeout-10s+selective"];
    close(o.energy_j, desktop + server + 80.0 * 120.0);
    close(r.always_on_j, 80.0 * 120.0 + 50.0 * 180.0);
    assert_eq!(r.idle_periods[&Bucket::Overnight], 1);
}

#[test]
fn the_memory_copy_delays_the_first_sleep() {
    // 10 min with no miss: a 30 s timeout sleeps at 30 s; with a 60 s copy
    // it sleeps at 90 s, the desktop idling 60 s more
    let trace = one_desktop(MIN10, vec![], vec![period(0, &[])]);
    let plain = simulate(&trace, &timeout_30s(vec![], SelectiveResume::Off));
    let copied = simulate(
        &trace,
        &SimConfig {
            durable_copy_ms: 60_000,
            ..timeout_30s(vec![], SelectiveResume::Off)
        },
    );
    let (a, b) = (
        &plain.policies["fixed-timeout-30s"],
        &copied.policies["fixed-timeout-30s"],
    );
    close(b.energy_j - a.energy_j, (60.0 - 3.0) * 60.0);
    assert_eq!((a.sleeps, b.sleeps), (1, 1));
    // the oracle copies at once and sleeps after it
    close(
        copied.oracle.energy_j - plain.oracle.energy_j,
        (60.0 - 3.0) * 60.0,
    );
    assert_eq!(a.wasted_migrations + b.wasted_migrations, 0);
}

#[test]
fn misses_during_the_copy_are_served_awake() {
    // misses at 40 s and 50 s come while the copy (30 s to 90 s) runs
    let trace = one_desktop(MIN10, vec![], vec![period(0, &[(40_000, 1), (50_000, 2)])]);
    let r = simulate(
        &trace,
        &SimConfig {
            durable_copy_ms: 60_000,
            ..timeout_30s(vec![], SelectiveResume::Off)
        },
    );
    let o = &r.policies["fixed-timeout-30s"];
    assert_eq!((o.sleeps, o.delayed_requests, o.page_wakes), (1, 0, 0));
    assert_eq!(o.stall_ms.unwrap().max, 0);
}

#[test]
fn a_return_before_any_sleep_is_a_wasted_migration() {
    // a 20 s period: the user is back before the 30 s timeout, and before
    // full migration's 4 GiB (34.4 s at 1 Gbit/s) have crossed
    let noon = 12 * 3_600_000;
    let short = IdlePeriod {
        span: Span {
            start_ms: noon,
            end_ms: noon + 20_000,
        },
        requests: vec![],
    };
    let trace = one_desktop(noon + MIN10, vec![], vec![short]);
    let r = simulate(&trace, &timeout_30s(vec![], SelectiveResume::Off));
    let o = &r.policies["fixed-timeout-30s"];
    assert_eq!((o.sleeps, o.wasted_migrations), (0, 1));
    assert_eq!(r.full_migration.wasted_migrations, 1);
    assert_eq!(r.full_migration.sleeps, 0);
    // abandoned mid-way: the bytes sent so far, no way home
    assert!(r.full_migration.network_bytes > 0 && r.full_migration.network_bytes < 4 << 30);
    // it saved nothing and cost the server's share
    assert!(r.full_migration.savings_pct < 0.0);
    assert_eq!(r.plain_sleep.wasted_migrations, 0);
    assert_eq!(r.idle_periods[&Bucket::Brief], 1);
}

#[test]
fn full_migration_does_not_know_the_period_is_short() {
    // 40 s: the migration ends at 34.4 s, the sleep cannot pay
    let p = IdlePeriod {
        span: Span {
            start_ms: 0,
            end_ms: 40_000,
        },
        requests: vec![],
    };
    let trace = one_desktop(MIN10, vec![], vec![p]);
    let r = simulate(&trace, &timeout_30s(vec![], SelectiveResume::Off));
    assert_eq!(r.full_migration.sleeps, 1);
    assert_eq!(r.full_migration.wasted_migrations, 1);
    assert!(r.full_migration.network_bytes >= 4 << 30);
}

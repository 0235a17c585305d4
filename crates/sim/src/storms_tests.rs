use super::*;
use crate::config::PolicySpec;
use crate::fetch::PAGE_BYTES;
use crate::trace::{DesktopTrace, FleetTrace, IdlePeriod, Request, Span};

const HOUR: u64 = 3_600_000;

/// One desktop, one idle period of two hours whose VM misses a fresh page
/// every 90 s from its first minute to its hour (a scan), then nothing.
fn storm_trace() -> FleetTrace {
    let requests = (0..40)
        .map(|k| Request {
            offset_ms: 60_000 + k * 90_000,
            page: 1000 + k * 10,
        })
        .collect();
    let t = FleetTrace {
        days: 1,
        length_ms: Some(2 * HOUR),
        desktops: vec![DesktopTrace {
            activity: vec![],
            idle: vec![IdlePeriod {
                span: Span {
                    start_ms: 0,
                    end_ms: 2 * HOUR,
                },
                requests,
            }],
        }],
    };
    t.validate().unwrap();
    t
}

fn timeout_30s(pull: Option<PullConfig>) -> SimConfig {
    SimConfig {
        policies: vec![PolicySpec::FixedTimeout(30_000)],
        pull,
        ..SimConfig::default()
    }
}

#[test]
fn a_pull_ends_the_storm_at_the_first_wake_over_budget() {
    let trace = storm_trace();
    let one = |pull| {
        simulate(&trace, &timeout_30s(pull))
            .policies
            .into_values()
            .next()
            .unwrap()
    };
    let without = one(None);
    let with = one(Some(PullConfig::default()));
    // without: every miss finds the desktop asleep (30 s quiet, 90 s apart)
    assert_eq!(without.page_wakes, 40);
    assert_eq!(without.pulls, 0);
    // with: the fifth wake is over the budget of four, at 40 wakes an hour
    assert_eq!(with.pulls, 1);
    assert_eq!(with.page_wakes, 5);
    assert_eq!(with.delayed_requests, 5);
    // the pull brought every page the server lacked after five misses
    let total = SimConfig::default().full_migration.vm_bytes / PAGE_BYTES;
    let missing = (total - 5) * PAGE_BYTES;
    assert_eq!(with.network_bytes - without.network_bytes, missing);
    // from its end, the server holds the whole VM: the larger share
    let p = &SimConfig::default().profile;
    let extra_w = p.server.watts_per_vm() - p.server.watts_per_partial_vm();
    let back = 60_000 + 4 * 90_000 + p.resume.latency_ms;
    let done = back + (missing as f64 / 50e6 * 1000.0).ceil() as u64;
    let extra_j = extra_w * (2 * HOUR - done) as f64 / 1000.0;
    assert!(
        (with.server_j - without.server_j - extra_j).abs() < 1e-6,
        "{} vs {extra_j}",
        with.server_j - without.server_j
    );
}

#[test]
fn without_a_pull_config_nothing_changes() {
    // the engine without `pull` is the one the oracle bounds (engine_tests)
    let trace = storm_trace();
    let a = simulate(&trace, &timeout_30s(None));
    let again = simulate(&trace, &timeout_30s(None));
    assert_eq!(a, again);
    assert!(a.policies.values().all(|o| o.pulls == 0));
}

#[test]
fn storms_wake_more_and_the_pull_takes_the_wakes_away() {
    let params = SynthParams {
        desktops: 6,
        days: 7,
        hot_pages: 256,
        arrival_accesses: 64,
        ..SynthParams::default()
    };
    let one = SimConfig {
        policies: vec![PolicySpec::BreakEven],
        ..SimConfig::default()
    };
    let rows = evaluate(&params, &one, &PullConfig::default(), 2);
    let at = |model: &str, pull: &str| {
        rows.iter()
            .find(|r| r.model == model && r.pull == pull)
            .unwrap()
            .clone()
    };
    assert_eq!(rows.len(), 6);
    let (calm, storm) = (at("default", "no"), at("storms", "no"));
    let (pulled, optimistic) = (at("storms", "full-vm"), at("storms", "partial"));
    assert!(
        storm.wakes_per_idle_hour > calm.wakes_per_idle_hour,
        "{rows:?}"
    );
    assert!(pulled.pulls > 0.0, "{rows:?}");
    assert!(
        pulled.wakes_per_idle_hour < storm.wakes_per_idle_hour,
        "{rows:?}"
    );
    assert!(pulled.network_gib > storm.network_gib, "{rows:?}");
    assert!(storm.savings_ci95.is_some());
    // charged nothing more, it pulls at least as often and saves at least as much
    assert!(optimistic.pulls >= pulled.pulls, "{rows:?}");
    assert!(
        optimistic.savings_pct >= pulled.savings_pct - 1e-9,
        "{rows:?}"
    );
    let md = markdown(&rows, "break-even", &PullConfig::default(), &params);
    assert_eq!(md.matches("\n| storms |").count(), 3, "{md}");
}

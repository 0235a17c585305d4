use super::*;

const MIB: u64 = 1 << 20;

fn config(max_wakes: u32, always: bool) -> PullConfig {
    PullConfig {
        max_wakes,
        window_ms: 300_000,
        rate_bytes_per_s: 10 * MIB,
        always_when_over_budget: always,
        ..PullConfig::default()
    }
}

#[test]
fn over_budget_the_wake_after_the_budget_pulls_once() {
    let p = Puller::new("vm", &config(1, true), ServerMetrics::default());
    assert_eq!(
        p.decide(0, 256 * MIB),
        None,
        "the first wake is within budget"
    );
    let plan = p.decide(10_000, 200 * MIB).expect("the second wake pulls");
    assert_eq!(
        plan,
        Plan {
            wakes: 2,
            bytes: 200 * MIB,
            duration_ms: 20_000,
        }
    );
    assert!(p.progress().started);
    assert_eq!(p.decide(20_000, 100 * MIB), None, "one pull per period");
    assert_eq!(p.progress().wakes, 3);
}

#[test]
fn energy_first_a_slow_storm_waits() {
    // two wakes five minutes apart do not pay for a full VM's share
    let p = Puller::new("vm", &config(1, false), ServerMetrics::default());
    assert_eq!(p.decide(0, 256 * MIB), None);
    assert_eq!(p.decide(300_000 - 1, 256 * MIB), None);
    assert!(!p.progress().started);
}

#[test]
fn disabled_or_nothing_missing_never_pulls() {
    let off = PullConfig {
        enabled: false,
        ..config(0, true)
    };
    let p = Puller::new("vm", &off, ServerMetrics::default());
    for t in 0..5 {
        assert_eq!(p.decide(t, 256 * MIB), None);
    }
    let p = Puller::new("vm", &config(0, true), ServerMetrics::default());
    assert_eq!(p.decide(0, 0), None, "every page is here already");
    assert!(p.decide(1, 4096).is_some());
}

#[test]
fn a_wake_before_the_memory_file_exists_is_ignored() {
    let p = Puller::new("vm", &config(0, true), ServerMetrics::default());
    p.on_wake();
    assert_eq!(p.progress(), Progress::default());
}

#[test]
fn the_section_is_checked() {
    assert!(problems(&PullConfig::default()).is_empty());
    let bad = PullConfig {
        window_ms: 0,
        rate_bytes_per_s: 100,
        ..PullConfig::default()
    };
    let p = problems(&bad);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("pull.window_ms"));
    assert!(p[1].starts_with("pull.rate_bytes_per_s"));
}

use super::*;

const GIB: u64 = 1 << 30;
const MIN: u64 = 60_000;

fn policy() -> PullPolicy {
    PullPolicy::new(PullConfig::default(), &PowerProfile::default())
}

/// Wakes every `every_ms` from `from`, `n` of them; the last decision.
fn wakes(p: &mut PullPolicy, from: u64, every_ms: u64, n: u64, missing: u64) -> PullDecision {
    let mut last = PullDecision::Wait;
    for i in 0..n {
        last = p.on_wake(from + i * every_ms, missing);
    }
    last
}

#[test]
fn a_wake_costs_the_transitions_and_the_break_even_time_awake() {
    let p = policy();
    // 180 J + 400 J + (60 - 3) W x 9.755 s
    assert!((p.wake_j() - 1136.0).abs() < 1.0, "{}", p.wake_j());
}

#[test]
fn within_budget_it_never_pulls() {
    let mut p = policy();
    // four wakes a minute apart: at the budget, not over it
    assert_eq!(wakes(&mut p, 0, MIN, 4, 4 * GIB), PullDecision::Wait);
    assert!(!p.pulled());
}

#[test]
fn a_storm_over_budget_pulls_once() {
    let mut p = policy();
    // a scan waking the desktop every 90 s: the fifth wake is over budget
    // and 40 wakes an hour cost more than the pull and the server's extra
    assert_eq!(wakes(&mut p, 0, 90_000, 4, 4 * GIB), PullDecision::Wait);
    match p.on_wake(4 * 90_000, 4 * GIB) {
        PullDecision::Pull {
            duration_ms,
            wakes_j,
            pull_j,
        } => {
            // 4 GiB at 50 MB/s
            assert_eq!(
                duration_ms,
                (4 * GIB as u128 * 1000).div_ceil(50_000_000) as u64
            );
            assert!(wakes_j > pull_j);
        }
        d => panic!("expected a pull, got {d:?}"),
    }
    assert!(p.pulled());
    // once per period
    assert_eq!(p.on_wake(5 * 90_000, GIB), PullDecision::Wait);
    p.on_period_start();
    assert!(!p.pulled());
}

#[test]
fn slow_wakes_over_budget_do_not_pay() {
    let mut p = policy();
    // timer-driven wakes, five in 50 minutes: over budget, but six an hour
    // cost less than the server's larger share for the hour
    assert_eq!(wakes(&mut p, 0, 12 * MIN, 5, 4 * GIB), PullDecision::Wait);
    assert!(!p.pulled());
}

#[test]
fn delay_first_pulls_whenever_over_budget() {
    let config = PullConfig {
        always_when_over_budget: true,
        ..PullConfig::default()
    };
    let mut p = PullPolicy::new(config, &PowerProfile::default());
    assert!(matches!(
        wakes(&mut p, 0, 12 * MIN, 5, 4 * GIB),
        PullDecision::Pull { .. }
    ));
}

#[test]
fn old_wakes_leave_the_window() {
    let mut p = policy();
    // four wakes, then a pause longer than the window: the budget is fresh
    assert_eq!(wakes(&mut p, 0, 90_000, 4, 4 * GIB), PullDecision::Wait);
    let later = 4 * 90_000 + 3_600_000;
    assert_eq!(wakes(&mut p, later, 90_000, 4, 4 * GIB), PullDecision::Wait);
    assert!(matches!(
        p.on_wake(later + 4 * 90_000, 4 * GIB),
        PullDecision::Pull { .. }
    ));
}

#[test]
fn nothing_missing_nothing_to_pull() {
    let mut p = policy();
    assert_eq!(wakes(&mut p, 0, 1_000, 50, 0), PullDecision::Wait);
    assert!(!p.pulled());
}

#[test]
fn a_smaller_vm_pays_sooner() {
    // the pull's awake time shrinks with the missing bytes; the server's
    // extra share does not, so a storm of ~25 wakes an hour decides
    let mut big = policy();
    let mut small = policy();
    let every = 150_000; // 24 an hour
    let d_big = wakes(&mut big, 0, every, 5, 64 * GIB);
    let d_small = wakes(&mut small, 0, every, 5, GIB / 4);
    assert_eq!(d_big, PullDecision::Wait);
    assert!(matches!(d_small, PullDecision::Pull { .. }), "{d_small:?}");
}

#[test]
fn the_settings_read_from_toml_with_defaults() {
    let c: PullConfig = toml::from_str("max_wakes = 8").unwrap();
    assert_eq!(c.max_wakes, 8);
    assert_eq!(c.window_ms, PullConfig::default().window_ms);
    assert!(toml::from_str::<PullConfig>("max_wake = 8").is_err());
}

#[test]
fn charged_the_partial_share_a_slower_storm_pays() {
    let config = PullConfig {
        charge: PullCharge::Partial,
        ..PullConfig::default()
    };
    let mut p = PullPolicy::new(config, &PowerProfile::default());
    assert_eq!(p.extra_server_w(), 0.0);
    // twelve wakes an hour: 13.6 kJ spared against 5.2 kJ of pull
    assert!(matches!(
        wakes(&mut p, 0, 5 * MIN, 5, 4 * GIB),
        PullDecision::Pull { .. }
    ));
    // the same storm charged a full VM's share (24 kJ an hour) waits
    assert!(policy().extra_server_w() > 6.0);
    assert_eq!(
        wakes(&mut policy(), 0, 5 * MIN, 5, 4 * GIB),
        PullDecision::Wait
    );
}

#[test]
fn a_disabled_policy_never_pulls() {
    let config = PullConfig {
        enabled: false,
        always_when_over_budget: true,
        ..PullConfig::default()
    };
    let mut p = PullPolicy::new(config, &PowerProfile::default());
    assert_eq!(wakes(&mut p, 0, 1_000, 50, 4 * GIB), PullDecision::Wait);
    assert!(!p.pulled());
    let c: PullConfig = toml::from_str("enabled = false").unwrap();
    assert!(!c.enabled);
    assert!(PullConfig::default().enabled);
}

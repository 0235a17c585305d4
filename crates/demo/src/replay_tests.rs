use jettison_agent::power::Served;
use jettison_power_model::{PowerProfile, Timeline};

use jettison_power_model::{Placement, WakeReason};
use jettison_sim::{DesktopTrace, PolicySpec};

use super::*;

fn served(t_ms: u64, file: FileKind, first_page: u64, pages: u64) -> Served {
    Served {
        t_ms,
        pages,
        first_page,
        file,
    }
}

/// A run: the user leaves at 10 s, the desktop sleeps, a page miss wakes
/// it (service resume), it sleeps again, the user wakes it at 60 s and the
/// VM is home at 70 s; the record is taken at 80 s.
fn record() -> PowerRecord {
    use HostState::*;
    let mut t = Timeline::starting(0, Active);
    t.record_placement(10_000, "vm", Placement::Server).unwrap();
    t.record(10_000, Idle).unwrap();
    t.record(12_000, Suspending).unwrap();
    t.record(15_000, Asleep).unwrap();
    t.record_service_wake(30_000, WakeReason::PageMiss).unwrap();
    t.record(32_500, Idle).unwrap();
    t.record(40_000, Suspending).unwrap();
    t.record(43_000, Asleep).unwrap();
    t.record_wake(60_000, WakeReason::UserReturn).unwrap();
    t.record(65_000, Active).unwrap();
    t.record_placement(70_000, "vm", Placement::Desktop)
        .unwrap();
    PowerRecord {
        timeline: t,
        profile: PowerProfile::default(),
        served: vec![
            // During the hand-over, just before the placement was recorded.
            served(9_990, FileKind::Memory, 5, 64),
            served(32_600, FileKind::Memory, 640, 64),
            served(33_000, FileKind::Disk, 3, 1),
            // After the user's return: the desktop is in use.
            served(66_000, FileKind::Memory, 7, 64),
        ],
        served_total: 4,
        reintegrations: vec![],
        migrations: vec![],
        now_ms: 80_000,
        policy: None,
        selective_resume: None,
        tick_ms: None,
    }
}

/// The conversion is `jettison_sim::replay::fleet_trace` (tested there);
/// the demo's part is the record's end and the disk's page numbers.
#[test]
fn a_record_becomes_a_one_desktop_trace() {
    let trace = to_trace(&record(), 1_000_000).unwrap();
    assert_eq!(trace.wall_ms(), 80_000);
    let d = &trace.desktops[0];
    assert_eq!(
        (d.idle[0].span.start_ms, d.idle[0].span.end_ms),
        (10_000, 65_000)
    );
    let pages: Vec<u32> = d.idle[0].requests.iter().map(|r| r.page).collect();
    assert_eq!(pages, vec![5, 640, 1_000_003]);
}

#[test]
fn the_trace_replays_in_the_simulator() {
    let rec = record();
    let trace = to_trace(&rec, 1_000_000).unwrap();
    let p = PrefetchConfig::Neighbourhood { pages: 64 };
    let (j, detail) = simulate(&trace, &rec, &p, true).unwrap();
    assert!(j.is_finite() && j > 0.0, "{j}");
    assert!(detail["key"].as_str().unwrap().starts_with("break-even"));
    assert_eq!(detail["decision_tick_ms"], 250);
    // The whole run at idle power is an upper bound for this record.
    assert!(j < 80.0 * rec.profile.desktop.active_w, "{j}");
    // No activity and no idle period: the desktop idles throughout.
    let empty = FleetTrace {
        days: 1,
        length_ms: Some(10_000),
        desktops: vec![DesktopTrace::default()],
    };
    let (j, _) = simulate(&empty, &rec, &PrefetchConfig::None, false).unwrap();
    assert!((j - 10.0 * rec.profile.desktop.idle_w).abs() < 1e-6, "{j}");
}

#[test]
fn the_replay_uses_the_agents_recorded_settings() {
    let mut rec = record();
    rec.policy = Some(PolicyConfig::FixedTimeout(
        jettison_power_model::policy::FixedTimeoutConfig { fixed_timeout_s: 7 },
    ));
    rec.selective_resume = Some(false);
    rec.tick_ms = Some(100);
    let c = sim_config(&rec, &PrefetchConfig::None, true).unwrap();
    assert_eq!(c.policies, vec![PolicySpec::FixedTimeout(7_000)]);
    assert_eq!(c.selective_resume, SelectiveResume::Off);
    assert_eq!(c.decision_tick_ms, 100);
    assert_eq!(c.profile, rec.profile);
    rec.policy = Some(PolicyConfig::Named(PolicyName::Never));
    assert!(sim_config(&rec, &PrefetchConfig::None, true).is_err());
    rec.policy = None;
    let c = sim_config(&rec, &PrefetchConfig::None, true).unwrap();
    assert_eq!(c.policies, vec![PolicySpec::BreakEven]);
}

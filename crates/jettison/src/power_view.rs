//! `jettison power` for people: a desktop's power record (the agent's
//! `OpPower` reply) summed up in a few lines. Pure.

use std::fmt::Write;

use jettison_agent::power::PowerRecord;
use jettison_power_model::{HostState, WakeReason};

/// Seconds with one decimal.
fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The record as text: the state now and since when, time in each state,
/// wakes by cause, where each VM runs, what was served, the policy.
pub fn render(r: &PowerRecord) -> String {
    let t = &r.timeline;
    let mut out = String::new();
    let now = r.now_ms;
    match t.events.last() {
        Some(&(since, state)) => {
            let _ = writeln!(
                out,
                "state:      {} for {} (timeline clock {})",
                name(state),
                secs(now.saturating_sub(since)),
                secs(now)
            );
        }
        None => out.push_str("state:      nothing recorded\n"),
    }
    let mut spent = [0u64; HostState::ALL.len()];
    for (state, from, to) in t.intervals(now) {
        spent[usize::from(state.code())] += to - from;
    }
    let spent: Vec<String> = HostState::ALL
        .iter()
        .zip(spent)
        .filter(|&(_, ms)| ms > 0)
        .map(|(s, ms)| format!("{} {}", name(*s), secs(ms)))
        .collect();
    let _ = writeln!(out, "time:       {}", spent.join(", "));
    let misses = t
        .wakes
        .iter()
        .filter(|w| w.1 == WakeReason::PageMiss)
        .count();
    let returns = t
        .wakes
        .iter()
        .filter(|w| w.1 == WakeReason::UserReturn)
        .count();
    let _ = writeln!(
        out,
        "wakes:      {} ({misses} page miss, {returns} user return, {} other; {} service-only)",
        t.wakes.len(),
        t.wakes.len() - misses - returns,
        t.service_wakes.len()
    );
    for (vm, placements) in &t.vms {
        if let Some(&(since, p)) = placements.last() {
            let _ = writeln!(
                out,
                "vm {vm}: on the {} since {}",
                match p {
                    jettison_power_model::Placement::Desktop => "desktop",
                    jettison_power_model::Placement::Server => "server",
                },
                secs(since)
            );
        }
    }
    let pages: u64 = r.served.iter().map(|s| s.pages).sum();
    let asleep_or_waking = r
        .served
        .iter()
        .filter(|s| !t.state_at(s.t_ms).is_some_and(HostState::is_awake))
        .count();
    // The record keeps the last fetches only; the count is of them all.
    let total = r.served_total.max(r.served.len() as u64);
    let kept = if total > r.served.len() as u64 {
        format!("(of the last {}: ", r.served.len())
    } else {
        "(".to_string()
    };
    let _ = writeln!(
        out,
        "served:     {total} fetches {kept}{pages} pages, {asleep_or_waking} while not fully awake)",
    );
    let _ = writeln!(
        out,
        "handovers:  {} migrations by idle detection, {} returns by the user",
        r.migrations.len(),
        r.reintegrations.len()
    );
    let policy = r
        .policy
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(
        out,
        "policy:     {policy}; selective resume {}; tick {}",
        match r.selective_resume {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        },
        r.tick_ms.map_or("unknown".into(), |t| format!("{t} ms"))
    );
    out
}

fn name(s: HostState) -> &'static str {
    match s {
        HostState::Active => "active",
        HostState::Idle => "idle",
        HostState::Suspending => "suspending",
        HostState::Asleep => "asleep",
        HostState::Resuming => "resuming",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jettison_agent::power::Served;
    use jettison_power_model::{Placement, PowerProfile, Timeline};

    fn record() -> PowerRecord {
        let mut t = Timeline::starting(0, HostState::Active);
        t.record_placement(0, "desk-17", Placement::Desktop)
            .unwrap();
        t.record(1_000, HostState::Idle).unwrap();
        t.record_placement(1_500, "desk-17", Placement::Server)
            .unwrap();
        t.record(2_000, HostState::Suspending).unwrap();
        t.record(2_500, HostState::Asleep).unwrap();
        t.record_service_wake(10_000, WakeReason::PageMiss).unwrap();
        t.record(11_000, HostState::Idle).unwrap();
        PowerRecord {
            timeline: t,
            profile: PowerProfile::default(),
            served: vec![
                Served {
                    t_ms: 1_700,
                    pages: 10,
                    first_page: 0,
                    file: jettison_wire::FileKind::Memory,
                },
                Served {
                    t_ms: 10_500,
                    pages: 64,
                    first_page: 128,
                    file: jettison_wire::FileKind::Memory,
                },
            ],
            served_total: 2,
            reintegrations: vec![],
            migrations: vec![],
            now_ms: 12_000,
            policy: None,
            selective_resume: Some(true),
            tick_ms: Some(250),
        }
    }

    #[test]
    fn sums_up_states_wakes_placements_and_fetches() {
        let text = render(&record());
        for needle in [
            "state:      idle for 1.0 s (timeline clock 12.0 s)",
            "active 1.0 s, idle 2.0 s, suspending 0.5 s, asleep 7.5 s, resuming 1.0 s",
            "wakes:      1 (1 page miss, 0 user return, 0 other; 1 service-only)",
            "vm desk-17: on the server since 1.5 s",
            "served:     2 fetches (74 pages, 1 while not fully awake)",
            "policy:     unknown; selective resume on; tick 250 ms",
        ] {
            assert!(text.contains(needle), "{needle:?} in\n{text}");
        }
    }

    #[test]
    fn an_empty_record_says_so() {
        let mut r = record();
        r.timeline = Timeline::default();
        r.served.clear();
        r.served_total = 0;
        let text = render(&r);
        assert!(text.contains("state:      nothing recorded"), "{text}");
        assert!(text.contains("served:     0 fetches (0 pages"), "{text}");
    }

    #[test]
    fn a_long_record_counts_every_fetch_and_sums_the_kept_ones() {
        let mut r = record();
        r.served_total = 70_000;
        let text = render(&r);
        assert!(
            text.contains(
                "served:     70000 fetches (of the last 2: 74 pages, 1 while not fully awake)"
            ),
            "{text}"
        );
    }
}

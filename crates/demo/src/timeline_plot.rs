//! The demo's timeline figure from the desktop's power record.

use std::path::Path;

use jettison_agent::power::PowerRecord;
use jettison_plot::{Placement as PlotPlacement, PowerState, TimelineInput};
use jettison_power_model::{HostState, Placement};

fn state(s: HostState) -> PowerState {
    match s {
        HostState::Active => PowerState::Active,
        HostState::Idle => PowerState::Idle,
        HostState::Suspending => PowerState::Suspending,
        HostState::Asleep => PowerState::Asleep,
        HostState::Resuming => PowerState::Resuming,
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Draws the figure (PNG) of `rec` up to `until` ms.
pub fn draw(rec: &PowerRecord, until: u64, path: &Path) -> anyhow::Result<()> {
    let desktop_states = rec
        .timeline
        .intervals(until)
        .into_iter()
        .map(|(s, a, b)| (secs(a), secs(b), state(s)))
        .collect();
    let desktop_watts = rec
        .timeline
        .intervals(until)
        .into_iter()
        .map(|(s, a, _)| {
            (
                secs(a),
                jettison_power_model::energy::watts(&rec.profile, s),
            )
        })
        .collect();
    let mut vm_placement = Vec::new();
    if let Some(events) = rec.timeline.vms.values().next() {
        let mut from = (0u64, PlotPlacement::Home);
        for &(t, p) in events {
            if t > from.0 {
                vm_placement.push((secs(from.0), secs(t), from.1));
            }
            from = (
                t,
                if p == Placement::Server {
                    PlotPlacement::Server
                } else {
                    PlotPlacement::Home
                },
            );
        }
        if until > from.0 {
            vm_placement.push((secs(from.0), secs(until), from.1));
        }
    }
    let mut served: Vec<(u64, u64)> = rec.served.iter().map(|f| (f.t_ms, f.pages)).collect();
    // Fetches served concurrently were recorded in completion order.
    served.sort_unstable();
    let mut total = 0u64;
    let mut pages_fetched = vec![(0.0, 0)];
    for &(t, n) in &served {
        total += n;
        pages_fetched.push((secs(t.min(until)), total));
    }
    let wakes = rec
        .timeline
        .wakes
        .iter()
        .map(|(t, r)| (secs(*t), crate::power_report::reason(r)))
        .collect();
    let input = TimelineInput {
        title: "jettison demo: the desktop sleeps while its VM runs on the server".into(),
        duration_s: secs(until),
        desktop_states,
        vm_placement,
        pages_fetched,
        wakes,
        desktop_watts,
    };
    jettison_plot::render_png(&input, path, 1400, 900)?;
    Ok(())
}

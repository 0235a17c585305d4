//! Replaying a demo run in the fleet simulator: the agent's power record
//! becomes a one-desktop [`FleetTrace`], which `jettison_sim::simulate` runs
//! with the profile, sleep policy, prefetch policy and selective resume the
//! daemons used; its energy is then set against the energy meter's for the
//! same span. The conversion is pure.
//!
//! * The trace covers the run, `[0, until)` on the agent's timeline clock.
//! * Idle periods: from the VM leaving for the server to the user's return
//!   (the first user wake, rest-of-devices resume or switch to Active after
//!   it left). Stays of several VMs are merged.
//! * Activity: the host's Active intervals outside idle periods.
//! * Requests: the fetches the state server served within an idle period,
//!   one per fetch, at its time and first page; fetches served while the VM
//!   was being handed over (before its period starts) count at the start.
//!   Disk fetches are requests too (they wake the desktop alike), their
//!   pages moved past the memory's (`disk_page_base`) so the two files do
//!   not share page numbers. Fetches after the user's return are left out:
//!   the desktop is in use then.

use anyhow::Context;
use jettison_agent::power::PowerRecord;
use jettison_power::{HostState, Placement, PrefetchConfig, WakeReason};
use jettison_sim::{DesktopTrace, FleetTrace, IdlePeriod, Request, Span};
use jettison_wire::FileKind;
use serde_json::{json, Value};

/// The end of the recorded span: the record's time or its last event.
pub fn until_ms(rec: &PowerRecord) -> u64 {
    rec.now_ms.max(rec.timeline.last_ms().unwrap_or(0))
}

/// The VMs' stays on the server, merged, as `(start, end)`.
fn stays(rec: &PowerRecord, until: u64) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = Vec::new();
    for changes in rec.timeline.vms.values() {
        for (i, &(t, p)) in changes.iter().enumerate() {
            if p == Placement::Server {
                let end = changes[i + 1..]
                    .iter()
                    .find(|c| c.1 == Placement::Desktop)
                    .map_or(until, |c| c.0);
                all.push((t, end.min(until)));
            }
        }
    }
    all.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in all {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// When the user came back after `t_ms`, if they did before `limit`.
fn user_return_after(rec: &PowerRecord, t_ms: u64, limit: u64) -> Option<u64> {
    let tl = &rec.timeline;
    let wakes = tl
        .wakes
        .iter()
        .filter(|w| w.1 == WakeReason::UserReturn)
        .map(|w| w.0);
    let active = tl
        .events
        .iter()
        .filter(|e| e.1 == HostState::Active)
        .map(|e| e.0);
    wakes
        .chain(active)
        .chain(tl.rest_resumes.iter().copied())
        .filter(|&t| t > t_ms && t < limit)
        .min()
}

/// The run as a one-desktop trace (see the module documentation).
pub fn to_trace(rec: &PowerRecord, disk_page_base: u32) -> anyhow::Result<FleetTrace> {
    let until = until_ms(rec);
    let mut periods: Vec<Span> = Vec::new();
    for (start, end) in stays(rec, until) {
        let end = user_return_after(rec, start, end).unwrap_or(end);
        if end > start {
            periods.push(Span {
                start_ms: start,
                end_ms: end,
            });
        }
    }
    let mut idle = Vec::new();
    for (i, span) in periods.iter().enumerate() {
        let before = if i == 0 { 0 } else { periods[i - 1].end_ms };
        let mut requests: Vec<Request> = rec
            .served
            .iter()
            .filter(|f| f.t_ms >= before && f.t_ms < span.end_ms)
            .map(|f| {
                let page = match f.file {
                    FileKind::Memory => f.first_page,
                    FileKind::Disk => u64::from(disk_page_base) + f.first_page,
                };
                Ok(Request {
                    offset_ms: u32::try_from(f.t_ms.saturating_sub(span.start_ms))?,
                    page: u32::try_from(page).context("page number beyond u32")?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        requests.sort_by_key(|r| r.offset_ms);
        idle.push(IdlePeriod {
            span: *span,
            requests,
        });
    }
    let mut activity: Vec<Span> = Vec::new();
    for (state, a, b) in rec.timeline.intervals(until) {
        if state != HostState::Active {
            continue;
        }
        // Active time outside every idle period (they never overlap here,
        // but a clock step must not make the trace invalid).
        let mut pieces = vec![(a, b)];
        for p in &periods {
            pieces = pieces
                .into_iter()
                .flat_map(|(x, y)| {
                    [(x, y.min(p.start_ms)), (x.max(p.end_ms), y)]
                        .into_iter()
                        .filter(|(u, v)| v > u)
                })
                .collect();
        }
        for (x, y) in pieces {
            match activity.last_mut() {
                Some(last) if last.end_ms == x => last.end_ms = y,
                _ => activity.push(Span {
                    start_ms: x,
                    end_ms: y,
                }),
            }
        }
    }
    let trace = FleetTrace {
        days: 1,
        length_ms: Some(until),
        desktops: vec![DesktopTrace { activity, idle }],
    };
    trace.validate()?;
    Ok(trace)
}

/// How often the agent's power loop asks its sleep policy (ms).
pub const AGENT_TICK_MS: u32 = 250;

/// `trace` with each idle period's requests thinned to one per `tick_ms`
/// window: what a policy that is asked only every `tick_ms` can act on.
/// The simulator asks its policy at the start of every gap between
/// requests, even a gap of a millisecond inside a burst of fetches, and
/// break-even sleeps at once while its mean gap is long (after a long quiet
/// spell), so it starts sleep cycles inside bursts that the agent, which
/// decides every [`AGENT_TICK_MS`] and asks the server first, never starts.
pub fn coalesce(trace: &FleetTrace, tick_ms: u32) -> FleetTrace {
    let mut out = trace.clone();
    for p in out.desktops.iter_mut().flat_map(|d| d.idle.iter_mut()) {
        let mut last: Option<u32> = None;
        p.requests.retain(|r| {
            let keep = last.is_none_or(|l| r.offset_ms >= l.saturating_add(tick_ms));
            if keep {
                last = Some(r.offset_ms);
            }
            keep
        });
    }
    out
}

/// The simulator's energy for `trace` (joules, desktop and server share)
/// under the break-even policy with `prefetch` and selective resume or not.
///
/// The configuration is built through serde so that it reads both the
/// simulator's older configuration (no prefetch or selective resume: they
/// are then not simulated, and `replay.sim_has_prefetch` says so) and the
/// newer one.
pub fn simulate(
    trace: &FleetTrace,
    rec: &PowerRecord,
    prefetch: &PrefetchConfig,
    selective: bool,
) -> anyhow::Result<(f64, Value)> {
    let config = json!({
        "profile": rec.profile,
        "policies": ["break-even"],
        "prefetch": [prefetch],
        "selective_resume": if selective { "on" } else { "off" },
        "full_migration": jettison_sim::FullMigration::default(),
    });
    let config: jettison_sim::SimConfig = serde_json::from_value(config.clone())?;
    let understood = serde_json::to_value(&config)?;
    let report = jettison_sim::simulate(trace, &config);
    let (key, outcome) = report
        .policies
        .iter()
        .find(|(k, _)| k.starts_with("break-even"))
        .context("the simulator reported no break-even outcome")?;
    let detail = json!({
        "key": key,
        "outcome": outcome,
        "sim_has_prefetch": understood.get("prefetch").is_some(),
        "sim_has_selective_resume": understood.get("selective_resume").is_some(),
    });
    Ok((outcome.energy_j, detail))
}

/// The `replay` section of the report: writes the trace to `trace_path`,
/// replays it and compares the simulator's energy with the meter's over
/// the same span (`diff_pct` = (sim - meter) / meter).
pub fn report(
    rec: &PowerRecord,
    memory_pages: u32,
    prefetch: &PrefetchConfig,
    selective: bool,
    trace_path: &std::path::Path,
) -> anyhow::Result<Value> {
    let trace = to_trace(rec, memory_pages)?;
    jettison_sim::io::save(trace_path, &trace)?;
    let (sim_j, detail) = simulate(&trace, rec, prefetch, selective)?;
    let (tick_j, tick_detail) =
        simulate(&coalesce(&trace, AGENT_TICK_MS), rec, prefetch, selective)?;
    let metered = jettison_power::meter(&rec.timeline, &rec.profile, until_ms(rec))?;
    let (meter_wh, sim_wh) = (metered.total_j / 3600.0, sim_j / 3600.0);
    let desk = &trace.desktops[0];
    Ok(json!({
        "meter_wh": meter_wh,
        "sim_wh": sim_wh,
        "diff_pct": if meter_wh > 0.0 { 100.0 * (sim_wh - meter_wh) / meter_wh } else { 0.0 },
        "sim_per_tick_wh": tick_j / 3600.0,
        "diff_per_tick_pct": if meter_wh > 0.0 { 100.0 * (tick_j / 3600.0 - meter_wh) / meter_wh } else { 0.0 },
        "sim_per_tick_sleeps": tick_detail["outcome"]["sleeps"],
        "meter_desktop_wh": metered.desktop_j / 3600.0,
        "meter_server_wh": metered.server_j / 3600.0,
        "sim_server_wh": detail["outcome"]["server_j"].as_f64().unwrap_or(0.0) / 3600.0,
        "meter_sleeps": rec.timeline.events.iter().filter(|e| e.1 == HostState::Asleep).count(),
        "sim_sleeps": detail["outcome"]["sleeps"],
        "idle_periods_s": desk.idle.iter().map(|p| p.span.len_ms() as f64 / 1000.0).collect::<Vec<_>>(),
        "requests": desk.idle.iter().map(|p| p.requests.len()).sum::<usize>(),
        "prefetch": prefetch.name(),
        "selective_resume": selective,
        "trace": trace_path.display().to_string(),
        "sim": detail,
    }))
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;

//! Replaying a demo run in the fleet simulator: the agent's power record
//! becomes a one-desktop [`FleetTrace`], which `jettison_sim::simulate` runs
//! with the profile, sleep policy, decision tick and selective resume the
//! agent recorded and the prefetch policy the server used; its energy is
//! then set against the energy meter's for the same span. The conversion
//! is pure.
//!
//! * The trace covers the run, `[0, until)` on the agent's timeline clock.
//! * Idle periods: from the VM leaving for the server to the desktop being
//!   back in use after the user's return (Active again: the simulator
//!   charges the user's resume, full or the rest after a service wake, as
//!   ending at the period's end). Stays of several VMs are merged.
//! * Activity: the host's Active intervals outside idle periods.
//! * Requests: the fetches the state server served within an idle period,
//!   one per fetch, at its time and first page; fetches served while the VM
//!   was being handed over (before its period starts) count at the start.
//!   A fetch served after a wake by a page miss was asked for before the
//!   wake, and the simulator wakes the desktop when a request comes: the
//!   first one after each such wake counts at the wake's time (the magic
//!   packet's arrival). Disk fetches are requests too (they wake the
//!   desktop alike), their pages moved past the memory's (`disk_page_base`)
//!   so the two files do not share page numbers. Fetches after the user's
//!   return are left out: the desktop is in use then.

use anyhow::Context;
use jettison_agent::power::PowerRecord;
use jettison_power_model::policy::{PolicyConfig, PolicyName};
use jettison_power_model::{HostState, Placement, PrefetchConfig, WakeReason};
use jettison_sim::{
    DesktopTrace, FleetTrace, IdlePeriod, PolicySpec, Request, SelectiveResume, SimConfig, Span,
};
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

/// When the desktop was back in use after `t_ms` (Active again), if it was
/// before `limit`; else when the user came back, if before `limit`.
fn user_return_after(rec: &PowerRecord, t_ms: u64, limit: u64) -> Option<u64> {
    let tl = &rec.timeline;
    let back = tl
        .events
        .iter()
        .find(|e| e.1 == HostState::Active && e.0 > t_ms && e.0 <= limit)
        .map(|e| e.0);
    if back.is_some() {
        return back;
    }
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
        // The first fetch after each page-miss wake was asked for by then.
        for &(w, _) in
            rec.timeline.wakes.iter().filter(|w| {
                w.1 == WakeReason::PageMiss && w.0 >= span.start_ms && w.0 < span.end_ms
            })
        {
            let offset = u32::try_from(w - span.start_ms)?;
            if let Some(r) = requests
                .iter_mut()
                .filter(|r| r.offset_ms >= offset)
                .min_by_key(|r| r.offset_ms)
            {
                r.offset_ms = offset;
            }
        }
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

/// The simulator's policy for the agent's `policy` (break-even if the
/// record predates the field).
fn policy_spec(policy: Option<&PolicyConfig>) -> anyhow::Result<PolicySpec> {
    Ok(match policy {
        None | Some(PolicyConfig::Named(PolicyName::BreakEven)) => PolicySpec::BreakEven,
        Some(PolicyConfig::Named(PolicyName::SkiRental)) => {
            PolicySpec::SkiRental(jettison_power_model::policy::SkiRental::DEFAULT_SEED)
        }
        Some(PolicyConfig::FixedTimeout(c)) => {
            PolicySpec::FixedTimeout(c.fixed_timeout_s.saturating_mul(1000))
        }
        Some(PolicyConfig::Named(PolicyName::Never)) => {
            anyhow::bail!("the agent never sleeps: nothing to replay")
        }
    })
}

/// What the replay simulates: the agent's settings as its record states
/// them (the demo's `selective` and the simulator's tick for records that
/// predate them) and the server's prefetch policy.
pub fn sim_config(
    rec: &PowerRecord,
    prefetch: &PrefetchConfig,
    selective: bool,
) -> anyhow::Result<SimConfig> {
    let selective = rec.selective_resume.unwrap_or(selective);
    Ok(SimConfig {
        profile: rec.profile.clone(),
        policies: vec![policy_spec(rec.policy.as_ref())?],
        prefetch: vec![*prefetch],
        selective_resume: if selective {
            SelectiveResume::On
        } else {
            SelectiveResume::Off
        },
        decision_tick_ms: rec
            .tick_ms
            .unwrap_or(jettison_power_model::policy::AGENT_TICK_MS),
        ..SimConfig::default()
    })
}

/// The simulator's energy for `trace` (joules, desktop and server share)
/// under the agent's settings (see [`sim_config`]).
pub fn simulate(
    trace: &FleetTrace,
    rec: &PowerRecord,
    prefetch: &PrefetchConfig,
    selective: bool,
) -> anyhow::Result<(f64, Value)> {
    let config = sim_config(rec, prefetch, selective)?;
    let report = jettison_sim::simulate(trace, &config);
    let (key, outcome) = report
        .policies
        .iter()
        .next()
        .context("the simulator reported no outcome")?;
    let detail = json!({
        "key": key,
        "outcome": outcome,
        "decision_tick_ms": config.decision_tick_ms,
    });
    Ok((outcome.energy_j, detail))
}

/// What the simulator leaves out of a run, for the report: the residual
/// differences from the meter (see docs/simulation.md).
pub const MODEL_NOTE: &str = "the simulator runs the agent's policy on its tick and wakes the \
desktop at each request; it does not model the time from a wake's end to the server's next \
probe (up to 0.1 s of idle per wake), the actual suspend and resume times (the emulated \
host's freezes and thaws take a few ms more than the profile's), the jitter of the agent's \
tick, or fetches served during hand-over before the period starts";

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
    let config = sim_config(rec, prefetch, selective)?;
    jettison_sim::io::save(trace_path, &trace)?;
    let (sim_j, detail) = simulate(&trace, rec, prefetch, selective)?;
    let metered = jettison_power_model::meter(&rec.timeline, &rec.profile, until_ms(rec))?;
    let (meter_wh, sim_wh) = (metered.total_j / 3600.0, sim_j / 3600.0);
    let desk = &trace.desktops[0];
    Ok(json!({
        "meter_wh": meter_wh,
        "sim_wh": sim_wh,
        "diff_pct": if meter_wh > 0.0 { 100.0 * (sim_wh - meter_wh) / meter_wh } else { 0.0 },
        "meter_desktop_wh": metered.desktop_j / 3600.0,
        "meter_server_wh": metered.server_j / 3600.0,
        "sim_server_wh": detail["outcome"]["server_j"].as_f64().unwrap_or(0.0) / 3600.0,
        "meter_sleeps": rec.timeline.events.iter().filter(|e| e.1 == HostState::Asleep).count(),
        "sim_sleeps": detail["outcome"]["sleeps"],
        "idle_periods_s": desk.idle.iter().map(|p| p.span.len_ms() as f64 / 1000.0).collect::<Vec<_>>(),
        "requests": desk.idle.iter().map(|p| p.requests.len()).sum::<usize>(),
        "prefetch": prefetch.name(),
        "selective_resume": config.selective_resume == SelectiveResume::On,
        "policy": config.policies[0].name(),
        "decision_tick_ms": config.decision_tick_ms,
        "model": MODEL_NOTE,
        "trace": trace_path.display().to_string(),
        "sim": detail,
    }))
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;

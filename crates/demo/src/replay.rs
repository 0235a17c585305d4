//! Replaying a demo run in the fleet simulator: the agent's power record
//! becomes a one-desktop [`FleetTrace`], which `jettison_sim::simulate` runs
//! with the profile, sleep policy, decision tick and selective resume the
//! agent recorded and the prefetch policy the server used; its energy is
//! then set against the energy meter's for the same span. The conversion
//! is pure.
//!
//! The conversion is `jettison_sim::replay::fleet_trace`, the same the
//! agent's trace files go through (`jettison simulate --trace`); the
//! `trace` section of the report replays those files ([`trace_section`]):
//! the simulator against the recorded timeline over the idle periods only.

use anyhow::Context;
use jettison_agent::power::PowerRecord;
use jettison_power_model::policy::{PolicyConfig, PolicyName};
use jettison_power_model::{HostState, PrefetchConfig};
use jettison_sim::{FleetTrace, SelectiveResume, SimConfig};
use jettison_wire::FileKind;
use serde_json::{json, Value};

/// The end of the recorded span: the record's time or its last event.
pub fn until_ms(rec: &PowerRecord) -> u64 {
    rec.now_ms.max(rec.timeline.last_ms().unwrap_or(0))
}

/// The run as a one-desktop trace (see `jettison_sim::replay`): memory
/// pages as they are, disk pages from `disk_page_base` on.
pub fn to_trace(rec: &PowerRecord, disk_page_base: u32) -> anyhow::Result<FleetTrace> {
    let fetches = rec
        .served
        .iter()
        .map(|f| {
            let page = match f.file {
                FileKind::Memory => f.first_page,
                FileKind::Disk => u64::from(disk_page_base) + f.first_page,
            };
            Ok((
                f.t_ms,
                u32::try_from(page).context("page number beyond u32")?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(jettison_sim::replay::fleet_trace(
        &rec.timeline,
        &fetches,
        until_ms(rec),
    )?)
}

/// What the replay simulates: the agent's settings as its record states
/// them (break-even, the demo's `selective` and the simulator's tick for
/// records that predate them) and the server's prefetch policy.
pub fn sim_config(
    rec: &PowerRecord,
    prefetch: &PrefetchConfig,
    selective: bool,
) -> anyhow::Result<SimConfig> {
    let policy = rec
        .policy
        .clone()
        .unwrap_or(PolicyConfig::Named(PolicyName::BreakEven));
    Ok(jettison_sim::replay::agent_config(
        &rec.profile,
        &policy,
        rec.selective_resume.unwrap_or(selective),
        rec.tick_ms
            .unwrap_or(jettison_power_model::policy::AGENT_TICK_MS),
        *prefetch,
    )?)
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

/// The `trace` section of the report: the agent's trace files in `dir`
/// (`<state_dir>/trace`) replayed with its settings, against its recorded
/// timeline over the idle periods (`replay_diff_idle_pct`).
pub fn trace_section(dir: &std::path::Path) -> anyhow::Result<Value> {
    let files = jettison_sim::trace_files::list(dir)?;
    let read = jettison_sim::trace_files::read_files(&files)?;
    let run = jettison_sim::recorded::assemble(&read.records)?;
    let (_, diff) = jettison_sim::replay::replay_run(&run)?;
    Ok(json!({
        "dir": dir.display().to_string(),
        "files": read.files,
        "records": read.records.len(),
        "torn_lines": read.torn_lines,
        "fetches": run.fetches.len(),
        "replay_diff_idle_pct": diff.replay_diff_idle_pct,
        "replay": diff,
    }))
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;

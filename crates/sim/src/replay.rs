//! Replaying a recorded run ([`crate::recorded::RecordedRun`], or the demo's
//! power record) in the simulator, and the difference between what the
//! simulator computes for its idle spans and what the agent's own timeline
//! recorded for them. Pure.
//!
//! The run as a one-desktop [`FleetTrace`] ([`fleet_trace`]):
//!
//! * The trace covers `[0, until)` on the recorded clock.
//! * Idle periods: from a VM leaving for the server to the desktop being
//!   back in use after the user's return (Active again: the simulator
//!   charges the user's resume, full or the rest after a service wake, as
//!   ending at the period's end). Stays of several VMs are merged.
//! * Activity: the host's Active intervals outside idle periods.
//! * Requests: the fetches served within an idle period, one per fetch, at
//!   its time and first page; fetches served while the VM was being handed
//!   over (before its period starts) count at the start. A fetch served
//!   after a wake by a page miss was asked for before the wake, and the
//!   simulator wakes the desktop when a request comes: the first one after
//!   each such wake counts at the wake's time (the magic packet's arrival).
//!   Fetches after the user's return are left out: the desktop is in use.
//!
//! The replay ([`replay_idle`]) runs the agent's own settings (its sleep
//! policy, tick, selective resume and profile) with no prefetching on top
//! of the recorded fetches (each recorded fetch reached the desktop, after
//! whatever the server prefetched), each period's first sleep delayed as
//! long as the agent's were on average (the memory copy before a first
//! sleep: [`first_sleep_delay_ms`]), and compares, over the idle periods
//! only, the simulator's energy with the energy meter's over the recorded
//! timeline (desktop and server share in both; a period that ends as the
//! user's resume starts is metered to the resume's end, as the simulator
//! charges it).

use jettison_power_model::policy::{PolicyConfig, PolicyName, SkiRental};
use jettison_power_model::{meter, HostState, Placement, PowerProfile, Timeline, WakeReason};
use jettison_power_model::{PrefetchConfig, TimelineError};
use serde::{Deserialize, Serialize};

use crate::recorded::{RecordedFile, RecordedRun};
use crate::trace::{DesktopTrace, FleetTrace, IdlePeriod, Request, Span};
use crate::{PolicySpec, SelectiveResume, SimConfig, SimError};

/// The VMs' stays on the server, merged, as `(start, end)`.
fn stays(tl: &Timeline, until: u64) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = Vec::new();
    for changes in tl.vms.values() {
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
fn user_return_after(tl: &Timeline, t_ms: u64, limit: u64) -> Option<u64> {
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

/// The idle periods of a recorded timeline (see the module documentation).
pub fn idle_spans(tl: &Timeline, until: u64) -> Vec<Span> {
    stays(tl, until)
        .into_iter()
        .map(|(start, end)| Span {
            start_ms: start,
            end_ms: user_return_after(tl, start, end).unwrap_or(end),
        })
        .filter(|s| s.end_ms > s.start_ms)
        .collect()
}

/// A recorded run as a one-desktop trace: `fetches` are `(time, page)`, the
/// caller's page numbers (distinct files must not share them).
pub fn fleet_trace(
    tl: &Timeline,
    fetches: &[(u64, u32)],
    until: u64,
) -> Result<FleetTrace, SimError> {
    let periods = idle_spans(tl, until);
    let mut idle = Vec::new();
    for (i, span) in periods.iter().enumerate() {
        let before = if i == 0 { 0 } else { periods[i - 1].end_ms };
        let offset = |t: u64| {
            u32::try_from(t.saturating_sub(span.start_ms))
                .map_err(|_| SimError::Invalid("an idle period longer than 49 days".into()))
        };
        let mut requests: Vec<Request> = fetches
            .iter()
            .filter(|f| f.0 >= before && f.0 < span.end_ms)
            .map(|&(t, page)| {
                Ok(Request {
                    offset_ms: offset(t)?,
                    page,
                })
            })
            .collect::<Result<_, SimError>>()?;
        // The first fetch after each page-miss wake was asked for by then.
        let miss_wakes = tl
            .wakes
            .iter()
            .filter(|w| w.1 == WakeReason::PageMiss && w.0 >= span.start_ms && w.0 < span.end_ms);
        for &(w, _) in miss_wakes {
            let at = offset(w)?;
            if let Some(r) = requests
                .iter_mut()
                .filter(|r| r.offset_ms >= at)
                .min_by_key(|r| r.offset_ms)
            {
                r.offset_ms = at;
            }
        }
        requests.sort_by_key(|r| r.offset_ms);
        idle.push(IdlePeriod {
            span: *span,
            requests,
        });
    }
    let mut activity: Vec<Span> = Vec::new();
    for (state, a, b) in tl.intervals(until) {
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

/// The fetches of a recorded run as `(time, page)`: each (VM, file) gets a
/// range of page numbers of its own, as large as its highest page, in the
/// order of their names.
pub fn fetch_pages(run: &RecordedRun) -> Result<Vec<(u64, u32)>, SimError> {
    let mut size: std::collections::BTreeMap<(&str, RecordedFile), u64> = Default::default();
    for f in &run.fetches {
        let e = size.entry((f.vm.as_str(), f.file)).or_default();
        *e = (*e).max(f.first_page + 1);
    }
    let mut base = std::collections::BTreeMap::new();
    let mut next = 0u64;
    for (k, n) in size {
        base.insert(k, next);
        next += n.div_ceil(64) * 64;
    }
    run.fetches
        .iter()
        .map(|f| {
            let page = base[&(f.vm.as_str(), f.file)] + f.first_page;
            let page = u32::try_from(page)
                .map_err(|_| SimError::Invalid("page numbers beyond u32".into()))?;
            Ok((f.t_ms, page))
        })
        .collect()
}

/// The simulator's policy for the agent's `policy`; `None` for `never`
/// (nothing to replay).
pub fn policy_spec(policy: &PolicyConfig) -> Option<PolicySpec> {
    Some(match policy {
        PolicyConfig::Named(PolicyName::BreakEven) => PolicySpec::BreakEven,
        PolicyConfig::Named(PolicyName::SkiRental) => {
            PolicySpec::SkiRental(SkiRental::DEFAULT_SEED)
        }
        PolicyConfig::FixedTimeout(c) => {
            PolicySpec::FixedTimeout(c.fixed_timeout_s.saturating_mul(1000))
        }
        PolicyConfig::Named(PolicyName::Never) => return None,
    })
}

/// The agent's settings as a one-combination simulation.
pub fn agent_config(
    profile: &PowerProfile,
    policy: &PolicyConfig,
    selective: bool,
    tick_ms: u64,
    prefetch: PrefetchConfig,
) -> Result<SimConfig, SimError> {
    let spec = policy_spec(policy)
        .ok_or_else(|| SimError::Invalid("the agent never sleeps: nothing to replay".into()))?;
    Ok(SimConfig {
        profile: profile.clone(),
        policies: vec![spec],
        prefetch: vec![prefetch],
        selective_resume: if selective {
            SelectiveResume::On
        } else {
            SelectiveResume::Off
        },
        decision_tick_ms: tick_ms,
        ..SimConfig::default()
    })
}

/// The timeline as it stood at `t` (everything recorded at or before it).
fn prefix(tl: &Timeline, t: u64) -> Timeline {
    let upto = |v: &[u64]| v.iter().copied().filter(|&x| x <= t).collect();
    Timeline {
        events: tl.events.iter().copied().filter(|e| e.0 <= t).collect(),
        wakes: tl.wakes.iter().filter(|w| w.0 <= t).cloned().collect(),
        vms: tl
            .vms
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().copied().filter(|e| e.0 <= t).collect()))
            .collect(),
        service_wakes: upto(&tl.service_wakes),
        rest_resumes: upto(&tl.rest_resumes),
    }
}

/// The energy meter's joules (desktop and server share) over `[a, b)`.
pub fn metered_j(
    tl: &Timeline,
    profile: &PowerProfile,
    a: u64,
    b: u64,
) -> Result<f64, TimelineError> {
    let upto = |t: u64| -> Result<f64, TimelineError> {
        let p = prefix(tl, t);
        if p.events.is_empty() {
            return Ok(0.0);
        }
        Ok(meter(&p, profile, t)?.total_j)
    };
    Ok(upto(b)? - upto(a)?)
}

/// Where a period that ends as a resume starts (the VM was home before
/// the desktop was back in use: the period ends at the user's wake or at
/// the rest's resume) is metered to: the resume's end, since the simulator
/// charges that resume within the period. Otherwise the period's end.
fn resume_end(tl: &Timeline, t: u64) -> u64 {
    match tl.state_at(t) {
        Some(HostState::Resuming) => tl.events.iter().find(|e| e.0 > t).map_or(t, |e| e.0),
        _ => t,
    }
}

/// The simulator against the recorded timeline over the idle periods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayDiff {
    /// The combination simulated (the agent's settings).
    pub combination: String,
    /// The delay of a period's first sleep simulated (the agent's memory
    /// copy, as recorded), ms.
    pub first_sleep_delay_ms: u64,
    /// Idle periods replayed.
    pub idle_periods: usize,
    /// Their total length, s.
    pub idle_s: f64,
    /// Fetches within them (the simulator's requests).
    pub requests: usize,
    /// The simulator's energy for the idle periods, Wh.
    pub sim_idle_wh: f64,
    /// The energy meter's over the recorded timeline for the same spans, Wh.
    pub recorded_idle_wh: f64,
    /// `(sim - recorded) / recorded`, percent.
    pub replay_diff_idle_pct: f64,
    /// Sleeps the simulator took in them.
    pub sim_sleeps: u64,
    /// Sleeps the host took in them (entries into Asleep).
    pub recorded_sleeps: u64,
    /// Wakes by a page miss the simulator took in them.
    pub sim_page_wakes: u64,
    /// Page-miss wakes the host recorded in them.
    pub recorded_page_wakes: u64,
}

/// Simulates `trace` (from [`fleet_trace`] over `tl`) under `config` (one
/// combination: [`agent_config`]) and compares its idle periods' energy and
/// counts with the recorded timeline's.
pub fn replay_idle(
    trace: &FleetTrace,
    tl: &Timeline,
    config: &SimConfig,
) -> Result<ReplayDiff, SimError> {
    let report = crate::simulate(trace, config);
    let (key, o) = report
        .policies
        .iter()
        .next()
        .ok_or_else(|| SimError::Invalid("no combination to replay".into()))?;
    let periods: Vec<Span> = trace
        .desktops
        .iter()
        .flat_map(|d| d.idle.iter().map(|p| p.span))
        .collect();
    let within = |t: u64| periods.iter().any(|s| t >= s.start_ms && t < s.end_ms);
    let mut recorded_j = 0.0;
    for s in &periods {
        recorded_j += metered_j(tl, &config.profile, s.start_ms, resume_end(tl, s.end_ms))
            .map_err(|e| SimError::Invalid(format!("the recorded timeline: {e}")))?;
    }
    let sim_j = o.idle_j();
    let count = |n: usize| n as u64;
    Ok(ReplayDiff {
        combination: key.clone(),
        first_sleep_delay_ms: config.durable_copy_ms,
        idle_periods: periods.len(),
        idle_s: periods.iter().map(|s| s.len_ms() as f64 / 1000.0).sum(),
        requests: trace
            .desktops
            .iter()
            .flat_map(|d| &d.idle)
            .map(|p| p.requests.len())
            .sum(),
        sim_idle_wh: sim_j / 3600.0,
        recorded_idle_wh: recorded_j / 3600.0,
        replay_diff_idle_pct: if recorded_j > 0.0 {
            100.0 * (sim_j - recorded_j) / recorded_j
        } else {
            0.0
        },
        sim_sleeps: o.sleeps,
        recorded_sleeps: count(
            tl.events
                .iter()
                .filter(|e| e.1 == HostState::Asleep && within(e.0))
                .count(),
        ),
        sim_page_wakes: o.page_wakes,
        recorded_page_wakes: count(
            tl.wakes
                .iter()
                .filter(|w| w.1 == WakeReason::PageMiss && within(w.0))
                .count(),
        ),
    })
}

/// How long the agent took, in the idle periods where it slept, from its
/// policy's first decision to sleep to the suspend (it makes the away VM's
/// memory durable first): the mean, ms; 0 without such periods.
pub fn first_sleep_delay_ms(run: &RecordedRun, periods: &[Span]) -> u64 {
    let delays: Vec<u64> = periods
        .iter()
        .filter_map(|p| {
            let inside = |t: &u64| (p.start_ms..p.end_ms).contains(t);
            let d = *run.sleep_decisions.iter().find(|t| inside(t))?;
            let s = run
                .timeline
                .events
                .iter()
                .find(|e| e.1 == HostState::Suspending && e.0 >= d && inside(&e.0))?;
            Some(s.0 - d)
        })
        .collect();
    match delays.len() as u64 {
        0 => 0,
        n => delays.iter().sum::<u64>() / n,
    }
}

/// A recorded run replayed with the agent's settings from its first
/// header, the first sleep of a period delayed as the agent's were
/// ([`first_sleep_delay_ms`]).
pub fn replay_run(run: &RecordedRun) -> Result<(FleetTrace, ReplayDiff), SimError> {
    let trace = fleet_trace(&run.timeline, &fetch_pages(run)?, run.until_ms)?;
    let h = &run.header;
    let mut config = agent_config(
        &h.profile,
        &h.policy,
        h.selective_resume,
        h.tick_ms,
        PrefetchConfig::None,
    )?;
    let periods: Vec<Span> = trace.desktops[0].idle.iter().map(|p| p.span).collect();
    config.durable_copy_ms = first_sleep_delay_ms(run, &periods);
    let diff = replay_idle(&trace, &run.timeline, &config)?;
    Ok((trace, diff))
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;

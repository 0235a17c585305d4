//! The server's view of its desktops, for the dashboard and the metrics:
//! each desktop's power state as the server sees it (awake when it talks,
//! asleep from its `GoingToSleep`, waking while the server sends it magic
//! packets), where its VMs run, the pages fetched from it, as a
//! [`Timeline`] on the Unix clock (ms) that the power model meters and the
//! plot draws. Pure bookkeeping behind one lock; the callers give the time.
//!
//! An awake desktop is *idle* while one of its VMs runs here (it was moved
//! because its user left) and *active* otherwise; a desktop that talks
//! again after its sleep without the server waking it came back for its
//! user (a `user return` wake).
//!
//! The history is bounded: each desktop keeps the last [`KEEP_MS`] (35
//! days, the dashboard's energy per day) of its timeline and of its fetch
//! points, at most [`MAX_FETCH_POINTS`] of those (the oldest go first),
//! and a desktop with none of its VMs here is forgotten once its last
//! event is older than that.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jettison_power_model::{HostState, Placement, PowerProfile, Timeline, WakeReason};
use serde::Serialize;

/// Fetches closer than this to the previous one are added to its point.
const FETCH_POINT_MS: u64 = 1000;

/// Pages fetched from a desktop, one point per second at most.
pub const MAX_FETCH_POINTS: usize = 100_000;

/// How much history the view keeps (ms): 35 days.
pub const KEEP_MS: u64 = jettison_power_model::timeline::HISTORY_KEPT_MS;

/// One VM as the fleet view knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmView {
    /// Where it runs, in words (`"server"`, `"returning home"`, `"home"`...).
    pub placement: String,
    /// Whether it is on this server (arriving, running or leaving).
    pub here: bool,
    /// Since when (Unix ms).
    pub since_ms: u64,
}

/// One desktop as the server sees it.
#[derive(Debug, Clone, Serialize)]
pub struct DesktopView {
    /// Its power states, wakes and VM placements (Unix ms).
    pub timeline: Timeline,
    /// Its VMs.
    pub vms: BTreeMap<String, VmView>,
    /// Pages fetched from it: `(t_ms, pages)`.
    pub fetches: Vec<(u64, u64)>,
}

impl DesktopView {
    fn new(t_ms: u64) -> Self {
        DesktopView {
            timeline: Timeline::starting(t_ms, HostState::Active),
            vms: BTreeMap::new(),
            fetches: Vec::new(),
        }
    }

    /// Its power state now.
    pub fn state(&self) -> HostState {
        self.timeline.current().unwrap_or(HostState::Active)
    }

    /// Since when it is in that state (Unix ms).
    pub fn since_ms(&self) -> u64 {
        self.timeline.events.last().map_or(0, |e| e.0)
    }

    /// When the server first saw it (Unix ms).
    pub fn first_ms(&self) -> u64 {
        self.timeline.events.first().map_or(0, |e| e.0)
    }

    /// Forgets the history before `cut_ms`.
    fn forget_before(&mut self, cut_ms: u64) {
        self.timeline.forget_before(cut_ms);
        let old = self.fetches.partition_point(|f| f.0 < cut_ms);
        self.fetches.drain(..old);
    }

    fn awake_state(&self) -> HostState {
        if self.vms.values().any(|v| v.here) {
            HostState::Idle
        } else {
            HostState::Active
        }
    }

    /// Records a change; a change the state machine refuses is logged and
    /// skipped (the view is the server's guess, not a proof).
    fn record(&mut self, t_ms: u64, state: HostState) {
        let t = t_ms.max(self.timeline.last_ms().unwrap_or(0));
        if let Err(e) = self.timeline.record(t, state) {
            tracing::debug!("fleet view: {e}");
        }
    }

    fn awake(&mut self, t_ms: u64) {
        let t = t_ms.max(self.timeline.last_ms().unwrap_or(0));
        if self.state() == HostState::Asleep {
            let _ = self.timeline.record_wake(t, WakeReason::UserReturn);
        }
        if self.state() != HostState::Asleep {
            let s = self.awake_state();
            self.record(t, s);
        }
    }
}

/// The server's view of every desktop that brought it a VM.
#[derive(Debug, Default)]
pub struct Fleet {
    desktops: Mutex<BTreeMap<String, DesktopView>>,
}

impl Fleet {
    fn with<R>(&self, desktop: &str, t_ms: u64, f: impl FnOnce(&mut DesktopView) -> R) -> R {
        let mut all = self.desktops.lock().unwrap_or_else(|p| p.into_inner());
        let cut = t_ms.saturating_sub(KEEP_MS);
        all.retain(|name, d| {
            name == desktop || d.vms.values().any(|v| v.here) || d.timeline.last_ms() >= Some(cut)
        });
        let d = all
            .entry(desktop.to_owned())
            .or_insert_with(|| DesktopView::new(t_ms));
        let r = f(d);
        d.forget_before(cut);
        r
    }

    /// The desktop talked to the server: it is awake.
    pub fn awake(&self, desktop: &str, t_ms: u64) {
        self.with(desktop, t_ms, |d| d.awake(t_ms));
    }

    /// The desktop announced its sleep.
    pub fn asleep(&self, desktop: &str, t_ms: u64) {
        self.with(desktop, t_ms, |d| {
            d.record(t_ms, HostState::Suspending);
            d.record(t_ms, HostState::Asleep);
        });
    }

    /// The server started waking the desktop for a page.
    pub fn waking(&self, desktop: &str, t_ms: u64) {
        self.with(desktop, t_ms, |d| {
            if d.state() == HostState::Asleep {
                let t = t_ms.max(d.timeline.last_ms().unwrap_or(0));
                let _ = d.timeline.record_wake(t, WakeReason::PageMiss);
            }
        });
    }

    /// `vm` of `desktop` is now `placement` (`here`: on this server).
    pub fn vm(&self, desktop: &str, vm: &str, placement: &str, here: bool, t_ms: u64) {
        self.with(desktop, t_ms, |d| {
            let t = t_ms.max(d.timeline.last_ms().unwrap_or(0));
            let was_here = d.vms.get(vm).is_some_and(|v| v.here);
            let changed = d.vms.get(vm).is_none_or(|v| v.placement != placement);
            if changed {
                d.vms.insert(
                    vm.to_owned(),
                    VmView {
                        placement: placement.to_owned(),
                        here,
                        since_ms: t,
                    },
                );
            }
            if here != was_here {
                let p = if here {
                    Placement::Server
                } else {
                    Placement::Desktop
                };
                let _ = d.timeline.record_placement(t, vm, p);
            }
            if d.state().is_awake() {
                let s = d.awake_state();
                d.record(t, s);
            }
        });
    }

    /// `pages` pages of `vm` were fetched (from the desktop it belongs to).
    pub fn fetched(&self, vm: &str, pages: u64, t_ms: u64) {
        let mut all = self.desktops.lock().unwrap_or_else(|p| p.into_inner());
        let Some(d) = all
            .values_mut()
            .find(|d| d.vms.get(vm).is_some_and(|v| v.here))
        else {
            return;
        };
        match d.fetches.last_mut() {
            Some(last) if t_ms.saturating_sub(last.0) < FETCH_POINT_MS => last.1 += pages,
            _ => {
                if d.fetches.len() >= MAX_FETCH_POINTS {
                    // The oldest tenth goes, so this happens once in a while.
                    d.fetches.drain(..MAX_FETCH_POINTS / 10);
                }
                d.fetches.push((t_ms, pages));
            }
        }
        d.forget_before(t_ms.saturating_sub(KEEP_MS));
    }

    /// Every desktop, by name.
    pub fn desktops(&self) -> BTreeMap<String, DesktopView> {
        self.desktops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Where a VM in `state` runs, in words, and whether it runs here.
pub fn placement_of(state: jettison_handover::ServerState) -> (&'static str, bool) {
    use jettison_handover::ServerState::*;
    match state {
        Preparing | Loaded => ("arriving", false),
        Running => ("server", true),
        Sending => ("returning home", true),
        Released => ("home", false),
    }
}

/// The Unix clock in ms.
pub fn now_ms() -> u64 {
    u64::try_from(jettison_qemu::unix_ms()).unwrap_or(0)
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// The part of `t` between `from` and `to` (Unix ms) as a timeline of its
/// own: the state at `from` first, then the changes, wakes and placements
/// within.
pub fn window(t: &Timeline, from: u64, to: u64) -> Option<Timeline> {
    let start = t
        .events
        .first()
        .map(|e| e.0.max(from))
        .filter(|&s| s < to)?;
    let first = t.state_at(start)?;
    let mut w = Timeline::starting(start, first);
    w.events
        .extend(t.events.iter().filter(|e| e.0 > start && e.0 < to).copied());
    w.wakes = t
        .wakes
        .iter()
        .filter(|(at, _)| *at >= start && *at < to)
        .cloned()
        .collect();
    w.service_wakes = t
        .service_wakes
        .iter()
        .filter(|&&at| at >= start && at < to)
        .copied()
        .collect();
    w.rest_resumes = t
        .rest_resumes
        .iter()
        .filter(|&&at| at >= start && at < to)
        .copied()
        .collect();
    for (vm, events) in &t.vms {
        let before = events
            .iter()
            .take_while(|e| e.0 <= start)
            .last()
            .map(|e| (start, e.1));
        let within = events.iter().filter(|e| e.0 > start && e.0 < to).copied();
        let v: Vec<(u64, Placement)> = before.into_iter().chain(within).collect();
        if !v.is_empty() {
            w.vms.insert(vm.clone(), v);
        }
    }
    Some(w)
}

/// One UTC day's estimated energy of a fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayEnergy {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Watt-hours the desktops (and their VMs' share of this server) used.
    pub used_wh: f64,
    /// Watt-hours the desktops would have used left on.
    pub baseline_wh: f64,
}

impl DayEnergy {
    /// Saved against the baseline (negative: it cost more).
    pub fn saved_wh(&self) -> f64 {
        self.baseline_wh - self.used_wh
    }
}

/// The estimated energy of `desktops` per UTC day up to `now_ms`, metered
/// with `profile` (oldest day first).
pub fn energy_per_day(
    desktops: &BTreeMap<String, DesktopView>,
    profile: &PowerProfile,
    now_ms: u64,
) -> Vec<DayEnergy> {
    let mut days: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for d in desktops.values() {
        let mut day = d.first_ms() / DAY_MS;
        while day * DAY_MS < now_ms {
            let (from, to) = (day * DAY_MS, ((day + 1) * DAY_MS).min(now_ms));
            if let Some(w) = window(&d.timeline, from, to) {
                if let Ok(e) = jettison_power_model::meter(&w, profile, to) {
                    let slot = days.entry(day).or_default();
                    slot.0 += e.total_j / 3600.0;
                    slot.1 += e.baseline_j / 3600.0;
                }
            }
            day += 1;
        }
    }
    days.into_iter()
        .map(|(day, (used_wh, baseline_wh))| DayEnergy {
            day: utc_date(day),
            used_wh,
            baseline_wh,
        })
        .collect()
}

/// `YYYY-MM-DD` (UTC) of a day number since the Unix epoch.
pub fn utc_date(day: u64) -> String {
    i64::try_from(day * 86_400)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(|| format!("day {day}"), |t| t.date().to_string())
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;

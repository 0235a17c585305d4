//! The figure's input data and its validation.

use serde::{Deserialize, Serialize};

use crate::PlotError;

/// Power state of the desktop host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PowerState {
    /// In use by its owner.
    Active,
    /// Powered on but idle (candidate for consolidation).
    Idle,
    /// Entering suspend-to-RAM.
    Suspending,
    /// Suspended; woken by Wake-on-LAN.
    Asleep,
    /// Coming back from suspend.
    Resuming,
}

impl PowerState {
    /// Every state, in legend order.
    pub const ALL: [PowerState; 5] = [
        PowerState::Active,
        PowerState::Idle,
        PowerState::Suspending,
        PowerState::Asleep,
        PowerState::Resuming,
    ];

    /// Human-readable name used in the legend.
    pub fn label(self) -> &'static str {
        match self {
            PowerState::Active => "active",
            PowerState::Idle => "idle",
            PowerState::Suspending => "suspending",
            PowerState::Asleep => "asleep",
            PowerState::Resuming => "resuming",
        }
    }
}

/// Where the VM is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Placement {
    /// On its desktop.
    Home,
    /// Being partially migrated to the consolidation server.
    Migrating,
    /// On the consolidation server, fetching pages on demand.
    Server,
    /// Being reintegrated to the desktop.
    Returning,
}

impl Placement {
    /// Every placement, in legend order.
    pub const ALL: [Placement; 4] = [
        Placement::Home,
        Placement::Migrating,
        Placement::Server,
        Placement::Returning,
    ];

    /// Human-readable name used in the legend.
    pub fn label(self) -> &'static str {
        match self {
            Placement::Home => "home",
            Placement::Migrating => "migrating",
            Placement::Server => "server",
            Placement::Returning => "returning",
        }
    }
}

/// Everything the timeline figure shows. All times are seconds from the
/// start of the run, within `0..=duration_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineInput {
    /// Figure title.
    pub title: String,
    /// Length of the time axis in seconds.
    pub duration_s: f64,
    /// Desktop power state spans: `(start_s, end_s, state)`.
    pub desktop_states: Vec<(f64, f64, PowerState)>,
    /// Where the VM runs: `(start_s, end_s, placement)`.
    pub vm_placement: Vec<(f64, f64, Placement)>,
    /// Cumulative pages fetched by the server over time: `(t_s, pages)`,
    /// sorted by time.
    pub pages_fetched: Vec<(f64, u64)>,
    /// Wakes of the desktop: `(t_s, reason)`, e.g. "page miss".
    pub wakes: Vec<(f64, String)>,
    /// Optional power draw of the desktop: `(t_s, watts)`, sorted by time;
    /// each sample holds until the next one (step function). May be empty.
    #[serde(default)]
    pub desktop_watts: Vec<(f64, f64)>,
}

/// Slack allowed when comparing times (absorbs float rounding from the
/// caller's conversions), relative to the duration.
const REL_EPS: f64 = 1e-9;

impl TimelineInput {
    /// Checks the input is drawable: a finite positive duration, something
    /// to draw, finite numbers, spans with `start <= end` inside the
    /// duration and not overlapping within one band, time series sorted,
    /// non-negative watts.
    pub fn validate(&self) -> Result<(), PlotError> {
        let d = self.duration_s;
        if !d.is_finite() || d <= 0.0 {
            return Err(PlotError::InvalidDuration(d));
        }
        if self.desktop_states.is_empty()
            && self.vm_placement.is_empty()
            && self.pages_fetched.is_empty()
        {
            return Err(PlotError::EmptyInput);
        }
        let spans: Vec<(f64, f64)> = self.desktop_states.iter().map(|s| (s.0, s.1)).collect();
        check_spans("desktop_states", &spans, d)?;
        let spans: Vec<(f64, f64)> = self.vm_placement.iter().map(|s| (s.0, s.1)).collect();
        check_spans("vm_placement", &spans, d)?;
        let ts: Vec<f64> = self.pages_fetched.iter().map(|p| p.0).collect();
        check_series("pages_fetched", &ts, d, true)?;
        let ts: Vec<f64> = self.wakes.iter().map(|w| w.0).collect();
        check_series("wakes", &ts, d, false)?;
        let ts: Vec<f64> = self.desktop_watts.iter().map(|w| w.0).collect();
        check_series("desktop_watts", &ts, d, true)?;
        for (index, &(_, w)) in self.desktop_watts.iter().enumerate() {
            if !w.is_finite() {
                return Err(PlotError::NonFinite {
                    field: "desktop_watts",
                    index,
                });
            }
            if w < 0.0 {
                return Err(PlotError::NegativeWatts { index, watts: w });
            }
        }
        Ok(())
    }
}

fn check_time(field: &'static str, index: usize, t: f64, duration: f64) -> Result<(), PlotError> {
    if !t.is_finite() {
        return Err(PlotError::NonFinite { field, index });
    }
    let eps = duration * REL_EPS;
    if t < -eps || t > duration + eps {
        return Err(PlotError::OutOfRange {
            field,
            index,
            t,
            duration,
        });
    }
    Ok(())
}

fn check_spans(field: &'static str, spans: &[(f64, f64)], duration: f64) -> Result<(), PlotError> {
    for (index, &(start, end)) in spans.iter().enumerate() {
        check_time(field, index, start, duration)?;
        check_time(field, index, end, duration)?;
        if end < start {
            return Err(PlotError::ReversedSpan {
                field,
                index,
                start,
                end,
            });
        }
    }
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| spans[a].0.total_cmp(&spans[b].0));
    let eps = duration * REL_EPS;
    for pair in order.windows(2) {
        let (prev, next) = (spans[pair[0]], spans[pair[1]]);
        if next.0 < prev.1 - eps {
            return Err(PlotError::Overlap {
                field,
                index: pair[0].max(pair[1]),
            });
        }
    }
    Ok(())
}

fn check_series(
    field: &'static str,
    times: &[f64],
    duration: f64,
    sorted: bool,
) -> Result<(), PlotError> {
    for (index, &t) in times.iter().enumerate() {
        check_time(field, index, t, duration)?;
        if sorted && index > 0 && t < times[index - 1] {
            return Err(PlotError::Unordered { field, index });
        }
    }
    Ok(())
}

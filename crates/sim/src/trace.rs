//! The fleet trace: the simulator's input. Pure data (serde).
//!
//! Times are milliseconds since the trace's start, a Monday at 00:00 local
//! time. A desktop's idle periods are the stretches without user activity
//! long enough for its VM to be consolidated; between them the user works.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Milliseconds in a day.
pub const DAY_MS: u64 = 24 * 3_600_000;

/// A half-open time interval `[start_ms, end_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Start, in ms since the trace's start.
    pub start_ms: u64,
    /// End (excluded).
    pub end_ms: u64,
}

impl Span {
    /// Its length in ms.
    pub fn len_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// A memory page the consolidated VM fetched from its desktop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Milliseconds since the idle period's start (so at most ~49 days).
    pub offset_ms: u32,
    /// Guest page number (4 KiB pages).
    pub page: u32,
}

/// An idle period: the user away, the VM on the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdlePeriod {
    /// When the user left and when they came back.
    pub span: Span,
    /// The VM's page requests, sorted by offset, all within the span.
    pub requests: Vec<Request>,
}

/// One desktop and its VM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesktopTrace {
    /// The user's activity intervals, sorted, disjoint.
    pub activity: Vec<Span>,
    /// The idle periods, sorted, disjoint from each other and from activity.
    pub idle: Vec<IdlePeriod>,
}

/// A fleet over a number of days.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetTrace {
    /// The trace covers `[0, days x DAY_MS)`, unless `length_ms` is given.
    pub days: u32,
    /// A shorter length in ms, for traces recorded over minutes (a demo run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_ms: Option<u64>,
    /// The desktops.
    pub desktops: Vec<DesktopTrace>,
}

impl FleetTrace {
    /// The trace's length in ms.
    pub fn wall_ms(&self) -> u64 {
        self.length_ms
            .unwrap_or_else(|| u64::from(self.days) * DAY_MS)
    }

    /// Checks that spans are non-empty, sorted, disjoint (activity against
    /// idle periods too) and within the trace, and that requests are sorted
    /// and fall inside their idle period.
    pub fn validate(&self) -> Result<(), SimError> {
        let wall = self.wall_ms();
        for (d, desk) in self.desktops.iter().enumerate() {
            let bad = |m: String| Err(SimError::Invalid(format!("desktop {d}: {m}")));
            let mut spans: Vec<Span> = desk.activity.clone();
            spans.extend(desk.idle.iter().map(|p| p.span));
            spans.sort_by_key(|s| s.start_ms);
            for (i, s) in spans.iter().enumerate() {
                if s.start_ms >= s.end_ms || s.end_ms > wall {
                    return bad(format!("span {s:?} is empty or beyond the trace"));
                }
                if i > 0 && spans[i - 1].end_ms > s.start_ms {
                    return bad(format!("span {s:?} overlaps {:?}", spans[i - 1]));
                }
            }
            if desk
                .activity
                .windows(2)
                .any(|w| w[0].start_ms > w[1].start_ms)
            {
                return bad("activity not sorted".into());
            }
            for (i, p) in desk.idle.iter().enumerate() {
                if i > 0 && desk.idle[i - 1].span.start_ms > p.span.start_ms {
                    return bad("idle periods not sorted".into());
                }
                let sorted = p
                    .requests
                    .windows(2)
                    .all(|w| w[0].offset_ms <= w[1].offset_ms);
                let inside = p
                    .requests
                    .last()
                    .is_none_or(|r| u64::from(r.offset_ms) < p.span.len_ms());
                if !sorted || !inside {
                    return bad(format!("idle period {i}: requests unsorted or outside it"));
                }
            }
        }
        Ok(())
    }
}

//! Delay as a result: what each miss waits, how often a desktop wakes, and
//! how long the user waits at their return.
//!
//! * **Stall per miss**: a miss served awake waits nothing; one that finds
//!   its desktop asleep (or suspending, or resuming) waits until the
//!   resume's end ([`crate::cost`]). Kept as a histogram of 10 ms bins over
//!   every miss, zeros included; percentiles are a bin's upper edge (never
//!   above the exact maximum).
//! * **Wakes per idle hour**: wakes by a miss (not the user's return) per
//!   hour of idle periods, over the fleet.
//! * **Return latency**: from the user's return until the desktop is usable:
//!   the desktop's resume (the full resume if asleep; the rest of the
//!   devices if woken for pages with selective resume and still resuming or
//!   up; nothing if up), then the VM's way home over the server's link,
//!   shared ([`return_groups`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::report::Bucket;
use crate::trace::{Span, DAY_MS};

/// Bin width of [`Stalls`], ms.
pub const STALL_BIN_MS: u64 = 10;

/// Stalls of every miss: counts per 10 ms bin, zeros included.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stalls {
    bins: Vec<u64>,
    max_ms: u64,
    count: u64,
}

impl Stalls {
    /// Records one miss that waited `ms` (0: served awake).
    pub fn add(&mut self, ms: u64) {
        self.add_n(ms, 1);
    }

    /// Records `n` misses that waited `ms`.
    pub fn add_n(&mut self, ms: u64, n: u64) {
        if n == 0 {
            return;
        }
        let b = ms.div_ceil(STALL_BIN_MS) as usize;
        if b >= self.bins.len() {
            self.bins.resize(b + 1, 0);
        }
        self.bins[b] += n;
        self.max_ms = self.max_ms.max(ms);
        self.count += n;
    }

    /// Adds `other`'s misses.
    pub fn absorb(&mut self, other: &Self) {
        if other.bins.len() > self.bins.len() {
            self.bins.resize(other.bins.len(), 0);
        }
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            *a += b;
        }
        self.max_ms = self.max_ms.max(other.max_ms);
        self.count += other.count;
    }

    /// Misses recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1), ms: the upper edge of the bin holding it,
    /// capped at the maximum; 0 without misses.
    pub fn quantile_ms(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &n) in self.bins.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return (b as u64 * STALL_BIN_MS).min(self.max_ms);
            }
        }
        self.max_ms
    }

    /// p50, p99 and max.
    pub fn summary(&self) -> StallMs {
        StallMs {
            p50: self.quantile_ms(0.5),
            p99: self.quantile_ms(0.99),
            max: self.max_ms,
        }
    }
}

/// The per-miss stall distribution of a combination, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StallMs {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// The return latency of a scheme over its idle periods, seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReturnLatency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One user's return, before the link is shared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Return {
    /// Which returns share the link ([`return_group`]).
    pub group: u64,
    /// Bytes the VM sends home.
    pub bytes: u64,
    /// The desktop's resume, ms.
    pub resume_ms: u64,
}

/// The link group of a return at the end of `span`: returns from an
/// overnight period share the morning (everyone arrives at once: the 9 am
/// storm, whatever the trace's jitter); others share the link with the
/// returns of the same `window_ms`.
pub fn return_group(span: Span, window_ms: u64) -> u64 {
    if Bucket::of(span) == Bucket::Overnight {
        (1 << 63) | (span.end_ms / DAY_MS)
    } else {
        span.end_ms / window_ms.max(1)
    }
}

/// Seconds until usable of each return: its resume, then every byte of its
/// group over the shared `link_bps` (fair sharing: a flow ends at the
/// latest when its group's have; equal flows end together).
pub fn return_groups(returns: &[Return], link_bps: f64) -> Vec<f64> {
    let mut total: HashMap<u64, u64> = HashMap::new();
    for r in returns {
        *total.entry(r.group).or_default() += r.bytes;
    }
    returns
        .iter()
        .map(|r| {
            let link_s = if r.bytes == 0 {
                0.0
            } else {
                total[&r.group] as f64 * 8.0 / link_bps
            };
            r.resume_ms as f64 / 1000.0 + link_s
        })
        .collect()
}

/// p50 and p99 of `values` (nearest rank); zeros if empty.
pub fn latency_quantiles(mut values: Vec<f64>) -> ReturnLatency {
    if values.is_empty() {
        return ReturnLatency::default();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[rank - 1]
    };
    ReturnLatency {
        p50: at(0.5),
        p99: at(0.99),
    }
}

#[cfg(test)]
#[path = "delay_tests.rs"]
mod tests;

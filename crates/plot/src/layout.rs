//! Pure layout helpers: colours, span merging, axis ranges, label placement.
//!
//! Nothing here touches a drawing backend, so all of it is unit-tested.

use plotters::style::RGBColor;

use crate::model::{Placement, PowerState};

/// Colour of a desktop power state band.
pub fn state_color(state: PowerState) -> RGBColor {
    match state {
        PowerState::Active => RGBColor(46, 160, 67),
        PowerState::Idle => RGBColor(166, 206, 57),
        PowerState::Suspending => RGBColor(245, 166, 35),
        PowerState::Asleep => RGBColor(63, 81, 181),
        PowerState::Resuming => RGBColor(171, 71, 188),
    }
}

/// Colour of a VM placement band.
pub fn placement_color(placement: Placement) -> RGBColor {
    match placement {
        Placement::Home => RGBColor(120, 144, 156),
        Placement::Migrating => RGBColor(255, 152, 0),
        Placement::Server => RGBColor(0, 150, 136),
        Placement::Returning => RGBColor(233, 30, 99),
    }
}

/// Colour of the wake marker lines and labels.
pub const WAKE_COLOR: RGBColor = RGBColor(211, 47, 47);
/// Colour of the desktop power draw line.
pub const WATTS_COLOR: RGBColor = RGBColor(33, 33, 33);
/// Colour of the pages-fetched line.
pub const PAGES_COLOR: RGBColor = RGBColor(21, 101, 192);

/// Sorts spans by start and merges neighbours of the same kind that touch or
/// overlap (within `eps` seconds), dropping zero-length spans that merge
/// into nothing. The result is what gets drawn, one rectangle per span.
pub fn merge_spans<T: Copy + PartialEq>(spans: &[(f64, f64, T)], eps: f64) -> Vec<(f64, f64, T)> {
    let mut sorted: Vec<(f64, f64, T)> = spans.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64, T)> = Vec::with_capacity(sorted.len());
    for span in sorted {
        match out.last_mut() {
            Some(last) if last.2 == span.2 && span.0 <= last.1 + eps => {
                last.1 = last.1.max(span.1);
            }
            _ => out.push(span),
        }
    }
    out.retain(|s| s.1 > s.0);
    out
}

/// The kinds present in `spans`, in the order of `all` (for legends).
pub fn kinds_present<T: Copy + PartialEq>(spans: &[(f64, f64, T)], all: &[T]) -> Vec<T> {
    all.iter()
        .copied()
        .filter(|k| spans.iter().any(|s| s.2 == *k))
        .collect()
}

/// Rounds `x` up to a "nice" axis bound: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6
/// or 8 times a power of ten. Non-positive or non-finite input gives 1.
pub fn nice_ceil(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(x.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        let v = m * mag;
        // Tolerate rounding in powf/log10 for exact powers of ten.
        if v >= x * (1.0 - 1e-12) {
            return v;
        }
    }
    10.0 * mag
}

/// Upper bound of the pages axis: 10% head room over the largest count,
/// rounded up, at least 10.
pub fn pages_axis_max(pages: &[(f64, u64)]) -> f64 {
    let max = pages.iter().map(|p| p.1).max().unwrap_or(0) as f64;
    nice_ceil(max * 1.1).max(10.0)
}

/// Upper bound of the watts axis: 15% head room, rounded up, at least 1.
/// `None` when there are no samples (the panel then has no watts axis).
pub fn watts_axis_max(watts: &[(f64, f64)]) -> Option<f64> {
    let max = watts.iter().map(|w| w.1).fold(f64::NAN, f64::max);
    if watts.is_empty() {
        None
    } else {
        Some(nice_ceil(max * 1.15).max(1.0))
    }
}

/// Turns step samples `(t, value)` (sorted, each holding until the next)
/// into polyline vertices, holding the last value until `duration`.
pub fn step_points(samples: &[(f64, f64)], duration: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(samples.len() * 2 + 1);
    for (i, &(t, v)) in samples.iter().enumerate() {
        if i > 0 {
            out.push((t, samples[i - 1].1));
        }
        out.push((t, v));
    }
    if let Some(&(t, v)) = samples.last() {
        if t < duration {
            out.push((duration, v));
        }
    }
    out
}

/// Formats a tick on the time axis: whole seconds for long timelines, one
/// decimal for short ones.
pub fn format_seconds(t: f64, duration: f64) -> String {
    if duration >= 20.0 {
        format!("{t:.0}")
    } else {
        format!("{t:.1}")
    }
}

/// Formats a page count compactly: `950`, `1.5k`, `25k`, `3.2M`, with no
/// trailing `.0`.
pub fn format_count(n: f64) -> String {
    let a = n.abs();
    let (value, suffix, decimals) = if a >= 1e6 {
        (n / 1e6, "M", 1)
    } else if a >= 1e4 {
        (n / 1e3, "k", 0)
    } else if a >= 1e3 {
        (n / 1e3, "k", 1)
    } else {
        (n, "", 0)
    };
    let text = format!("{value:.decimals$}");
    let text = match text.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => text,
    };
    format!("{text}{suffix}")
}

/// Assigns each label (`x` pixel of its left edge, `width` in pixels, in
/// any order) to the lowest row where it does not overlap an earlier label
/// of that row, keeping `gap` pixels between labels. Labels that fit in none
/// of `max_rows` rows get `None` (their marker line is still drawn).
pub fn label_rows(labels: &[(i32, i32)], gap: i32, max_rows: usize) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| labels[i].0);
    // Right edge of the last label placed in each row.
    let mut row_end: Vec<i32> = Vec::new();
    let mut out = vec![None; labels.len()];
    for i in order {
        let (x, w) = labels[i];
        if let Some(r) = row_end.iter().position(|&end| x >= end + gap) {
            row_end[r] = x + w;
            out[i] = Some(r);
        } else if row_end.len() < max_rows {
            row_end.push(x + w);
            out[i] = Some(row_end.len() - 1);
        }
    }
    out
}

/// Font sizes (pixels) scaled to the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FontSizes {
    /// Figure title.
    pub title: f64,
    /// Axis descriptions, tick labels and legends.
    pub label: f64,
    /// Wake marker labels.
    pub small: f64,
}

/// Picks font sizes for an image of `width` x `height` pixels: about 1/50
/// of the shorter side for labels, clamped to stay readable.
pub fn font_sizes(width: u32, height: u32) -> FontSizes {
    let short = f64::from(width.min(height));
    let label = (short / 50.0).clamp(11.0, 28.0);
    FontSizes {
        title: (label * 1.5).round(),
        label: label.round(),
        small: (label * 0.95).round(),
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;

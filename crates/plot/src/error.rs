//! The crate's error type.

use thiserror::Error;

/// Why a timeline could not be drawn.
#[derive(Debug, Error)]
pub enum PlotError {
    /// The input has nothing to draw: no desktop states, no VM placement and
    /// no pages-fetched samples.
    #[error("timeline has nothing to draw (no desktop states, VM placement or pages fetched)")]
    EmptyInput,
    /// `duration_s` is not a finite, positive number of seconds.
    #[error("duration_s must be finite and > 0, got {0}")]
    InvalidDuration(f64),
    /// A number in the input is NaN or infinite.
    #[error("{field}[{index}]: value is not finite")]
    NonFinite {
        /// Which input field (e.g. `desktop_states`).
        field: &'static str,
        /// Index of the offending entry.
        index: usize,
    },
    /// A span ends before it starts.
    #[error("{field}[{index}]: span ends before it starts ({start} s > {end} s)")]
    ReversedSpan {
        /// Which input field.
        field: &'static str,
        /// Index of the offending entry.
        index: usize,
        /// Span start in seconds.
        start: f64,
        /// Span end in seconds.
        end: f64,
    },
    /// A time lies outside `0..=duration_s`.
    #[error("{field}[{index}]: time {t} s is outside 0..={duration} s")]
    OutOfRange {
        /// Which input field.
        field: &'static str,
        /// Index of the offending entry.
        index: usize,
        /// The offending time.
        t: f64,
        /// The timeline's duration.
        duration: f64,
    },
    /// Two spans of the same band overlap.
    #[error("{field}[{index}]: span overlaps an earlier span")]
    Overlap {
        /// Which input field.
        field: &'static str,
        /// Index of the offending entry (in input order).
        index: usize,
    },
    /// A time series is not sorted by time.
    #[error("{field}[{index}]: time goes backwards")]
    Unordered {
        /// Which input field.
        field: &'static str,
        /// Index of the offending entry.
        index: usize,
    },
    /// A power draw sample is negative.
    #[error("desktop_watts[{index}]: negative power {watts} W")]
    NegativeWatts {
        /// Index of the offending entry.
        index: usize,
        /// The offending value.
        watts: f64,
    },
    /// The requested image is too small to lay the figure out.
    #[error("image size {width}x{height} is too small (minimum {min_width}x{min_height})")]
    TooSmall {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
        /// Minimum width in pixels.
        min_width: u32,
        /// Minimum height in pixels.
        min_height: u32,
    },
    /// A bar chart's input is unusable.
    #[error("bar chart: {0}")]
    Input(String),
    /// The embedded font could not be registered with plotters.
    #[error("embedded font could not be loaded")]
    Font,
    /// The drawing backend failed (including I/O errors writing the file).
    #[error("drawing failed: {0}")]
    Draw(String),
}

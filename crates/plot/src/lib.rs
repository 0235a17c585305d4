//! Draws the jettison demo's timeline figure, grouped bar charts
//! ([`bars`]: the fleet simulator's savings by idle-period length), scatter
//! plots with a front ([`scatter`]: its energy against delay) and line
//! charts with error bars ([`lines`]: its sensitivity sweeps).
//!
//! A [`TimelineInput`] describes one run: the desktop's power states (and,
//! optionally, its power draw), where the VM ran, the pages the
//! consolidation server fetched from the desktop, and the desktop's wakes.
//! [`render_png`] and [`render_svg`] draw it as stacked panels sharing the
//! time axis:
//!
//! 1. desktop power state as coloured bands, with the watts step line on top;
//! 2. VM placement (home / migrating / server / returning) as bands;
//! 3. cumulative pages fetched (line), with the time axis.
//!
//! Wakes are red vertical lines across all panels, labelled with their reason
//! in a strip above the first panel (labels that would overlap are stacked in
//! up to three rows; beyond that a label is dropped but its line is kept).
//!
//! Text is rendered with an embedded DejaVu Sans font (see [`font`]), so no
//! system font or fontconfig is needed.
#![forbid(unsafe_code)]

mod annotate;
pub mod bars;
mod draw;
mod error;
pub mod font;
pub mod layout;
pub mod lines;
mod model;
pub mod recorded;
mod sample;
pub mod scatter;

use std::path::Path;

use plotters::prelude::*;

pub use bars::{render_bars, render_bars_svg_string, BarChart, BarSeries};
pub use error::PlotError;
pub use lines::{render_lines, render_lines_svg_string, LineChart, LinePoint, LineSeries};
pub use model::{Placement, PowerState, TimelineInput};
pub use recorded::{from_recorded, Recorded};
pub use sample::sample_input;
pub use scatter::{render_scatter, render_scatter_svg_string, ScatterChart, ScatterPoint};

/// Smallest image width accepted, in pixels.
pub const MIN_WIDTH: u32 = 400;
/// Smallest image height accepted, in pixels.
pub const MIN_HEIGHT: u32 = 300;

/// Renders the timeline as a PNG file of `width` x `height` pixels.
pub fn render_png(
    input: &TimelineInput,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    prepare(input, width, height)?;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    draw::draw_timeline(&root, input)?;
    root.present().map_err(draw::draw_err)
}

/// Renders the timeline as an SVG file of `width` x `height` pixels.
pub fn render_svg(
    input: &TimelineInput,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    let svg = render_svg_string(input, width, height)?;
    std::fs::write(path, svg).map_err(|e| PlotError::Draw(format!("{}: {e}", path.display())))
}

/// Renders the timeline as an SVG document held in memory.
pub fn render_svg_string(
    input: &TimelineInput,
    width: u32,
    height: u32,
) -> Result<String, PlotError> {
    prepare(input, width, height)?;
    svg_string(width, height, |root| draw::draw_timeline(root, input))
}

/// A chart drawn on any backend (bars, scatter, lines): rendered to a file or an
/// SVG string by [`render_file`] and [`render_svg_of`].
pub(crate) trait Chart {
    /// Refuses a chart that cannot be drawn.
    fn check(&self) -> Result<(), PlotError>;
    /// Draws the chart on `root`.
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static;
}

/// Renders `chart` as a PNG (`.png`) or SVG (any other extension) file.
pub(crate) fn render_file<C: Chart>(
    chart: &C,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    prepare_chart(chart, width, height)?;
    write_file(
        path,
        width,
        height,
        |root| chart.draw_on(root),
        || render_svg_of(chart, width, height),
    )
}

/// Renders `chart` as an SVG document held in memory.
pub(crate) fn render_svg_of<C: Chart>(
    chart: &C,
    width: u32,
    height: u32,
) -> Result<String, PlotError> {
    prepare_chart(chart, width, height)?;
    svg_string(width, height, |root| chart.draw_on(root))
}

fn prepare_chart<C: Chart>(chart: &C, width: u32, height: u32) -> Result<(), PlotError> {
    check_size(width, height)?;
    chart.check()?;
    font::ensure_registered()
}

/// Writes a chart to `path`: a PNG drawn by `png` for a `.png` file, else
/// the SVG document `svg` makes.
fn write_file(
    path: &Path,
    width: u32,
    height: u32,
    png: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), PlotError>,
    svg: impl FnOnce() -> Result<String, PlotError>,
) -> Result<(), PlotError> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
        png(&root)?;
        root.present().map_err(draw::draw_err)
    } else {
        let svg = svg()?;
        std::fs::write(path, svg).map_err(|e| PlotError::Draw(format!("{}: {e}", path.display())))
    }
}

/// Draws with `draw` on an in-memory SVG document of `width` x `height`.
pub(crate) fn svg_string(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(draw::draw_err)?;
    }
    Ok(out)
}

/// Validates the input and the size, and registers the embedded font.
fn prepare(input: &TimelineInput, width: u32, height: u32) -> Result<(), PlotError> {
    check_size(width, height)?;
    input.validate()?;
    font::ensure_registered()
}

/// Refuses an image smaller than [`MIN_WIDTH`] x [`MIN_HEIGHT`].
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), PlotError> {
    if width < MIN_WIDTH || height < MIN_HEIGHT {
        return Err(PlotError::TooSmall {
            width,
            height,
            min_width: MIN_WIDTH,
            min_height: MIN_HEIGHT,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

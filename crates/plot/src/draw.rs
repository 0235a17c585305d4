//! Drawing the figure on any plotters backend (bitmap or SVG).

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::annotate::{self, Swatch};
use crate::layout::{self, FontSizes, PAGES_COLOR, WAKE_COLOR, WATTS_COLOR};
use crate::{Placement, PlotError, PowerState, TimelineInput};

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Converts a plotters drawing error into ours.
pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(
    e: DrawingAreaErrorKind<E>,
) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Pixel geometry shared by all panels, so that their time axes line up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    /// Font sizes for this image.
    pub fs: FontSizes,
    /// Image width.
    pub width: u32,
    /// Width of the legend column right of the panels.
    pub legend_w: u32,
    /// Blank space left of the y-axis label area.
    pub margin_left: u32,
    /// Width of the y-axis label area left of the panels.
    pub y_label_w: u32,
    /// Space between a panel's plot and its legend column.
    pub margin_right: u32,
    /// Vertical space above each panel's plot.
    pub gap: u32,
    /// Timeline duration in seconds.
    pub duration: f64,
}

impl Frame {
    fn new(width: u32, height: u32, duration: f64) -> Self {
        let fs = layout::font_sizes(width, height);
        Frame {
            fs,
            width,
            legend_w: (fs.label * 9.0) as u32,
            margin_left: (fs.label * 0.8) as u32,
            y_label_w: (fs.label * 5.0) as u32,
            margin_right: (fs.label * 1.2) as u32,
            gap: (fs.label * 0.6) as u32,
            duration,
        }
    }

    /// Horizontal pixel of time `t` (same mapping as the panels' charts).
    pub fn x_px(&self, t: f64) -> i32 {
        let left = f64::from(self.margin_left + self.y_label_w);
        let right = f64::from(self.width - self.legend_w - self.margin_right);
        (left + t / self.duration * (right - left)).round() as i32
    }

    /// Number of time-axis ticks that fit without crowding.
    fn x_ticks(&self) -> usize {
        let plot_w = f64::from(
            self.width - self.legend_w - self.margin_right - self.margin_left - self.y_label_w,
        );
        ((plot_w / (self.fs.label * 5.0)) as usize).clamp(3, 15)
    }
}

/// A text style in the embedded font.
pub(crate) fn text_style(size: f64, bold: bool) -> TextStyle<'static> {
    let style = if bold {
        FontStyle::Bold
    } else {
        FontStyle::Normal
    };
    TextStyle::from(FontDesc::new(FontFamily::SansSerif, size, style)).color(&BLACK)
}

/// Draws the whole figure on `root`.
pub(crate) fn draw_timeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    input: &TimelineInput,
) -> Result<(), PlotError> {
    let (width, height) = root.dim_in_pixel();
    let frame = Frame::new(width, height, input.duration_s);
    let fs = frame.fs;
    root.fill(&WHITE).map_err(draw_err)?;

    let title_h = (fs.title * 1.8) as u32;
    let (title_area, rest) = root.split_vertically(title_h);
    let centre = Pos::new(HPos::Center, VPos::Center);
    title_area
        .draw(&Text::new(
            input.title.clone(),
            (width as i32 / 2, title_h as i32 / 2),
            text_style(fs.title, true).pos(centre),
        ))
        .map_err(draw_err)?;

    let labels = annotate::place_wake_labels(root, &frame, &input.wakes)?;
    let strip_h = annotate::strip_height(&frame, &labels);
    let (strip, rest) = rest.split_vertically(strip_h);

    let x_label_h = (fs.label * 3.4) as u32;
    let avail = rest.dim_in_pixel().1.saturating_sub(x_label_h);
    let (a1, rest) = rest.split_vertically(avail * 44 / 100);
    let (a2, a3) = rest.split_vertically(avail * 18 / 100);
    power_panel(&a1, &frame, input)?;
    placement_panel(&a2, &frame, input)?;
    pages_panel(&a3, &frame, input, x_label_h)?;
    annotate::draw_wake_labels(&strip, &frame, &labels)
}

/// Splits a panel row into the chart and its legend column and builds the
/// chart with the shared geometry.
fn build<'a, DB: DrawingBackend>(
    chart_area: &'a DrawingArea<DB, Shift>,
    frame: &Frame,
    y_max: f64,
    x_label_h: u32,
) -> Result<Chart<'a, DB>, PlotError> {
    ChartBuilder::on(chart_area)
        .margin_top(frame.gap)
        .margin_left(frame.margin_left)
        .margin_right(frame.margin_right)
        .y_label_area_size(frame.y_label_w)
        .x_label_area_size(x_label_h)
        .build_cartesian_2d(0f64..frame.duration, 0f64..y_max)
        .map_err(draw_err)
}

/// Draws grid, axes and labels. `y_labels == 0` hides the y ticks (bands).
fn mesh<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    frame: &Frame,
    y_desc: &str,
    y_labels: usize,
    y_fmt: &dyn Fn(&f64) -> String,
    x_desc: Option<&str>,
) -> Result<(), PlotError> {
    let fs = frame.fs;
    let x_fmt = |t: &f64| layout::format_seconds(*t, frame.duration);
    let mut m = chart.configure_mesh();
    m.x_labels(frame.x_ticks())
        .x_label_formatter(&x_fmt)
        .y_labels(y_labels)
        .y_label_formatter(y_fmt)
        .y_desc(y_desc)
        .label_style(text_style(fs.label * 0.9, false))
        .axis_desc_style(text_style(fs.label, false))
        .bold_line_style(BLACK.mix(0.18))
        .light_line_style(TRANSPARENT);
    if y_labels == 0 {
        m.disable_y_mesh();
    }
    if let Some(desc) = x_desc {
        m.x_desc(desc);
    }
    m.draw().map_err(draw_err)
}

/// Draws coloured spans covering the full height of the chart.
fn bands<DB: DrawingBackend, T: Copy + PartialEq>(
    chart: &mut Chart<'_, DB>,
    spans: &[(f64, f64, T)],
    colour: impl Fn(T) -> RGBColor,
    alpha: f64,
    y_max: f64,
) -> Result<(), PlotError> {
    let eps = chart.x_range().end * 1e-9;
    let merged = layout::merge_spans(spans, eps);
    chart
        .draw_series(merged.into_iter().map(|(start, end, kind)| {
            Rectangle::new(
                [(start, 0.0), (end, y_max)],
                colour(kind).mix(alpha).filled(),
            )
        }))
        .map_err(draw_err)?;
    Ok(())
}

/// Draws the wakes as vertical lines across the chart.
fn wake_lines<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    wakes: &[(f64, String)],
    y_max: f64,
) -> Result<(), PlotError> {
    chart
        .draw_series(wakes.iter().map(|(t, _)| {
            PathElement::new(vec![(*t, 0.0), (*t, y_max)], WAKE_COLOR.stroke_width(2))
        }))
        .map_err(draw_err)?;
    Ok(())
}

fn power_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    frame: &Frame,
    input: &TimelineInput,
) -> Result<(), PlotError> {
    let (chart_area, legend_area) = area.split_horizontally(frame.width - frame.legend_w);
    let watts_max = layout::watts_axis_max(&input.desktop_watts);
    let y_max = watts_max.unwrap_or(1.0);
    let alpha = if watts_max.is_some() { 0.45 } else { 0.8 };
    let mut chart = build(&chart_area, frame, y_max, 0)?;
    bands(
        &mut chart,
        &input.desktop_states,
        layout::state_color,
        alpha,
        y_max,
    )?;
    let fmt = |w: &f64| format!("{w:.0}");
    let (desc, ticks) = match watts_max {
        Some(_) => ("desktop power (W)", 5),
        None => ("desktop", 0),
    };
    mesh(&mut chart, frame, desc, ticks, &fmt, None)?;
    let points = layout::step_points(&input.desktop_watts, frame.duration);
    chart
        .draw_series(LineSeries::new(points, WATTS_COLOR.stroke_width(2)))
        .map_err(draw_err)?;
    wake_lines(&mut chart, &input.wakes, y_max)?;

    let mut items: Vec<(Swatch, String)> =
        layout::kinds_present(&input.desktop_states, &PowerState::ALL)
            .into_iter()
            .map(|s| {
                (
                    Swatch::Fill(layout::state_color(s).mix(alpha)),
                    s.label().into(),
                )
            })
            .collect();
    if watts_max.is_some() {
        items.push((Swatch::Line(WATTS_COLOR), "power (W)".into()));
    }
    if !input.wakes.is_empty() {
        items.push((Swatch::Line(WAKE_COLOR), "wake (WoL)".into()));
    }
    annotate::legend(&legend_area, frame, "desktop", &items)
}

fn placement_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    frame: &Frame,
    input: &TimelineInput,
) -> Result<(), PlotError> {
    let (chart_area, legend_area) = area.split_horizontally(frame.width - frame.legend_w);
    let alpha = 0.8;
    let mut chart = build(&chart_area, frame, 1.0, 0)?;
    bands(
        &mut chart,
        &input.vm_placement,
        layout::placement_color,
        alpha,
        1.0,
    )?;
    mesh(&mut chart, frame, "VM", 0, &|_| String::new(), None)?;
    wake_lines(&mut chart, &input.wakes, 1.0)?;
    let items: Vec<(Swatch, String)> = layout::kinds_present(&input.vm_placement, &Placement::ALL)
        .into_iter()
        .map(|p| {
            (
                Swatch::Fill(layout::placement_color(p).mix(alpha)),
                p.label().into(),
            )
        })
        .collect();
    annotate::legend(&legend_area, frame, "VM runs at", &items)
}

fn pages_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    frame: &Frame,
    input: &TimelineInput,
    x_label_h: u32,
) -> Result<(), PlotError> {
    let (chart_area, legend_area) = area.split_horizontally(frame.width - frame.legend_w);
    let y_max = layout::pages_axis_max(&input.pages_fetched);
    let mut chart = build(&chart_area, frame, y_max, x_label_h)?;
    let fmt = |n: &f64| layout::format_count(*n);
    mesh(
        &mut chart,
        frame,
        "pages fetched",
        5,
        &fmt,
        Some("time (s)"),
    )?;
    let points = input.pages_fetched.iter().map(|&(t, n)| (t, n as f64));
    chart
        .draw_series(LineSeries::new(points, PAGES_COLOR.stroke_width(3)))
        .map_err(draw_err)?;
    wake_lines(&mut chart, &input.wakes, y_max)?;
    let items = [(Swatch::Line(PAGES_COLOR), "cumulative".to_string())];
    annotate::legend(&legend_area, frame, "server fetches", &items)
}

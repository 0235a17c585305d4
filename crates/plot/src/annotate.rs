//! Legends and wake labels, drawn in pixel coordinates.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::draw::{draw_err, text_style, Frame};
use crate::layout::{self, WAKE_COLOR};
use crate::PlotError;

/// Most rows of wake labels stacked above the panels.
const MAX_LABEL_ROWS: usize = 3;

/// What a legend entry shows next to its name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Swatch {
    /// A filled square (for bands).
    Fill(RGBAColor),
    /// A short line (for series and markers).
    Line(RGBColor),
}

/// Draws a legend column: a bold heading, then one entry per item.
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    frame: &Frame,
    heading: &str,
    items: &[(Swatch, String)],
) -> Result<(), PlotError> {
    let fs = frame.fs;
    let row_h = (fs.label * 1.45) as i32;
    let side = (fs.label * 0.9) as i32;
    let x0 = 2;
    let left_centre = Pos::new(HPos::Left, VPos::Center);
    let mut y = frame.gap as i32 + row_h / 2;
    area.draw(&Text::new(
        heading.to_string(),
        (x0, y),
        text_style(fs.label, true).pos(left_centre),
    ))
    .map_err(draw_err)?;
    for (swatch, name) in items {
        y += row_h;
        match *swatch {
            Swatch::Fill(colour) => {
                let corners = [(x0, y - side / 2), (x0 + side, y + side / 2)];
                area.draw(&Rectangle::new(corners, colour.filled()))
                    .map_err(draw_err)?;
                area.draw(&Rectangle::new(corners, BLACK.mix(0.4)))
                    .map_err(draw_err)?;
            }
            Swatch::Line(colour) => {
                let line = vec![(x0, y), (x0 + side, y)];
                area.draw(&PathElement::new(line, colour.stroke_width(3)))
                    .map_err(draw_err)?;
            }
        }
        area.draw(&Text::new(
            name.clone(),
            (x0 + side + side / 2, y),
            text_style(fs.label, false).pos(left_centre),
        ))
        .map_err(draw_err)?;
    }
    Ok(())
}

/// A wake's label, placed in the strip above the panels.
#[derive(Debug, Clone)]
pub(crate) struct WakeLabel {
    /// Pixel of the wake's marker line.
    line_x: i32,
    /// Left edge of the text.
    text_x: i32,
    /// Width of the text in pixels.
    text_w: i32,
    /// Row in the strip, or `None` when it did not fit.
    row: Option<usize>,
    /// The text.
    text: String,
}

/// Measures the wake labels and assigns them rows so they do not overlap.
/// Text goes right of its line, or left of it near the right edge.
pub(crate) fn place_wake_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    frame: &Frame,
    wakes: &[(f64, String)],
) -> Result<Vec<WakeLabel>, PlotError> {
    let style = text_style(frame.fs.small, false);
    let pad = (frame.fs.small * 0.3) as i32 + 1;
    let mut labels = Vec::with_capacity(wakes.len());
    let mut extents = Vec::with_capacity(wakes.len());
    for (t, reason) in wakes {
        let (w, _) = root.estimate_text_size(reason, &style).map_err(draw_err)?;
        let w = w as i32;
        let line_x = frame.x_px(*t);
        let mut text_x = line_x + pad;
        if text_x + w > frame.width as i32 - 2 {
            text_x = line_x - pad - w;
        }
        extents.push((text_x.min(line_x), w + pad));
        labels.push(WakeLabel {
            line_x,
            text_x,
            text_w: w,
            row: None,
            text: reason.clone(),
        });
    }
    let rows = layout::label_rows(&extents, pad * 2, MAX_LABEL_ROWS);
    for (label, row) in labels.iter_mut().zip(rows) {
        label.row = row;
    }
    Ok(labels)
}

fn row_height(frame: &Frame) -> u32 {
    (frame.fs.small * 1.35) as u32
}

/// Height of the label strip: enough rows for the placed labels, or a
/// small spacer when there are none.
pub(crate) fn strip_height(frame: &Frame, labels: &[WakeLabel]) -> u32 {
    let rows = labels
        .iter()
        .filter_map(|l| l.row)
        .max()
        .map_or(0, |r| r + 1) as u32;
    rows * row_height(frame) + (frame.fs.label * 0.4) as u32
}

/// Draws the wake labels in `strip` (full image width, just above the
/// first panel), each with a stub of its line reaching down to the panels.
pub(crate) fn draw_wake_labels<DB: DrawingBackend>(
    strip: &DrawingArea<DB, Shift>,
    frame: &Frame,
    labels: &[WakeLabel],
) -> Result<(), PlotError> {
    let row_h = row_height(frame) as i32;
    let bottom = strip.dim_in_pixel().1 as i32 + frame.gap as i32;
    let style = text_style(frame.fs.small, false)
        .color(&WAKE_COLOR)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let placed = labels
        .iter()
        .filter_map(|l| l.row.map(|row| (l, row as i32 * row_h + row_h / 2)));
    // Stubs first, then labels on a white box, so that a stub reaching down
    // past a lower row never runs through that row's text.
    for (label, y) in placed.clone() {
        let stub = vec![(label.line_x, y - row_h / 2 + 1), (label.line_x, bottom)];
        strip
            .draw(&PathElement::new(stub, WAKE_COLOR.stroke_width(2)))
            .map_err(draw_err)?;
    }
    for (label, y) in placed {
        let corners = [
            (label.text_x - 1, y - row_h / 2 + 1),
            (label.text_x + label.text_w + 1, y + row_h / 2 - 1),
        ];
        strip
            .draw(&Rectangle::new(corners, WHITE.filled()))
            .map_err(draw_err)?;
        strip
            .draw(&Text::new(
                label.text.clone(),
                (label.text_x, y),
                style.clone(),
            ))
            .map_err(draw_err)?;
    }
    Ok(())
}

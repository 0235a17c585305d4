//! Scatter plots with a front (the fleet simulator's energy against delay):
//! every point as a dot, the points of the front larger, in colour and
//! labelled, optional dashed limits (a budget) on either axis.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::draw::draw_err;
use crate::font::FAMILY;
use crate::PlotError;

/// A scatter plot.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterChart {
    /// Title above the plot.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// Every point.
    pub points: Vec<ScatterPoint>,
    /// A vertical dashed line at this x (a budget), if any.
    pub x_limit: Option<f64>,
}

/// One point.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterPoint {
    /// Its label (drawn for front points only).
    pub label: String,
    /// Its x.
    pub x: f64,
    /// Its y.
    pub y: f64,
    /// Whether it is on the front (labelled, drawn larger).
    pub front: bool,
}

impl ScatterChart {
    /// Checks that there is something to draw and every value is finite.
    pub fn validate(&self) -> Result<(), PlotError> {
        if self.points.is_empty() {
            return Err(PlotError::Input("a scatter plot needs a point".into()));
        }
        if let Some(p) = self
            .points
            .iter()
            .find(|p| !p.x.is_finite() || !p.y.is_finite())
        {
            return Err(PlotError::Input(format!(
                "point {:?} is not finite",
                p.label
            )));
        }
        if self.x_limit.is_some_and(|x| !x.is_finite()) {
            return Err(PlotError::Input("the x limit is not finite".into()));
        }
        Ok(())
    }

    /// The axes' ranges, padded.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let xs = self.points.iter().map(|p| p.x).chain(self.x_limit);
        let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
        let (y0, y1) = self
            .points
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.y), h.max(p.y)));
        let pad = |lo: f64, hi: f64| {
            let d = (hi - lo).max(1e-9) * 0.08;
            (lo - d, hi + d)
        };
        (pad(x0.min(0.0), x1), pad(y0, y1))
    }
}

/// Renders `chart` as a PNG (`.png`) or SVG (any other extension) file.
pub fn render_scatter(
    chart: &ScatterChart,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    crate::render_file(chart, path, width, height)
}

/// Renders `chart` as an SVG document held in memory.
pub fn render_scatter_svg_string(
    chart: &ScatterChart,
    width: u32,
    height: u32,
) -> Result<String, PlotError> {
    crate::render_svg_of(chart, width, height)
}

impl crate::Chart for ScatterChart {
    fn check(&self) -> Result<(), PlotError> {
        self.validate()
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        draw(root, self)
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &ScatterChart,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(draw_err)?;
    let ((x0, x1), (y0, y1)) = c.ranges();
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(draw_err)?;
    let blue = RGBColor(31, 119, 180);
    let grey = RGBColor(150, 150, 150);
    if let Some(x) = c.x_limit {
        let red = RGBColor(214, 39, 40);
        chart
            .draw_series(DashedLineSeries::new(
                [(x, y0), (x, y1)],
                6,
                4,
                red.stroke_width(2),
            ))
            .map_err(draw_err)?;
    }
    chart
        .draw_series(
            c.points
                .iter()
                .filter(|p| !p.front)
                .map(|p| Circle::new((p.x, p.y), 4, grey.filled())),
        )
        .map_err(draw_err)?;
    // the front may have more dimensions than the plot: points, no line
    for p in c.points.iter().filter(|p| p.front) {
        chart
            .draw_series([Circle::new((p.x, p.y), 6, blue.filled())])
            .map_err(draw_err)?;
        chart
            .draw_series([Text::new(
                p.label.clone(),
                (p.x, p.y),
                (FAMILY, 13).into_font().color(&BLACK),
            )])
            .map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> ScatterChart {
        ScatterChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            points: vec![
                ScatterPoint {
                    label: "alpha-front".into(),
                    x: 0.0,
                    y: 60.0,
                    front: true,
                },
                ScatterPoint {
                    label: "beta-behind".into(),
                    x: 5.0,
                    y: 50.0,
                    front: false,
                },
            ],
            x_limit: Some(1.0),
        }
    }

    #[test]
    fn draws_an_svg_with_the_front_labelled() {
        let svg = render_scatter_svg_string(&chart(), 800, 500).unwrap();
        assert!(svg.contains("<svg") && svg.contains("alpha-front"));
        assert!(!svg.contains("beta-behind"), "only the front is labelled");
    }

    #[test]
    fn refuses_bad_input() {
        let mut c = chart();
        c.points[1].y = f64::NAN;
        assert!(c.validate().is_err());
        c.points.clear();
        assert!(c.validate().is_err());
        assert!(render_scatter_svg_string(&chart(), 10, 10).is_err());
    }
}

//! Line charts over categories with error bars (the fleet simulator's
//! sensitivity sweeps): each series a line through its points, each point
//! with a vertical bar from `lo` to `hi` (a confidence interval), the x
//! axis the categories evenly spaced, one of them optionally marked (the
//! default) by a dashed line.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::draw::draw_err;
use crate::font::FAMILY;
use crate::PlotError;

/// A line chart with error bars.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// The x axis' categories, left to right.
    pub categories: Vec<String>,
    /// The series; each has one point per category (`None`: no point).
    pub series: Vec<LineSeries>,
    /// A category marked by a vertical dashed line (the default), if any.
    pub marked: Option<usize>,
}

/// One series.
#[derive(Clone, Debug, PartialEq)]
pub struct LineSeries {
    /// Its name, in the legend.
    pub name: String,
    /// Per category: the value and its interval.
    pub points: Vec<Option<LinePoint>>,
}

/// A point with its interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinePoint {
    /// The value.
    pub y: f64,
    /// The interval's lower end.
    pub lo: f64,
    /// Its upper end.
    pub hi: f64,
}

impl LineChart {
    /// Checks that there is something to draw, one point (or none) per
    /// category in every series, finite values and `lo <= y <= hi`.
    pub fn validate(&self) -> Result<(), PlotError> {
        if self.categories.is_empty() || self.series.is_empty() {
            return Err(PlotError::Input(
                "a line chart needs a category and a series".into(),
            ));
        }
        for s in &self.series {
            if s.points.len() != self.categories.len() {
                return Err(PlotError::Input(format!(
                    "series {:?} has {} points for {} categories",
                    s.name,
                    s.points.len(),
                    self.categories.len()
                )));
            }
            for p in s.points.iter().flatten() {
                let finite = p.y.is_finite() && p.lo.is_finite() && p.hi.is_finite();
                if !finite || p.lo > p.y || p.y > p.hi {
                    return Err(PlotError::Input(format!(
                        "series {:?}: bad point {p:?}",
                        s.name
                    )));
                }
            }
        }
        if self.marked.is_some_and(|m| m >= self.categories.len()) {
            return Err(PlotError::Input(
                "the marked category does not exist".into(),
            ));
        }
        if self
            .series
            .iter()
            .all(|s| s.points.iter().all(Option::is_none))
        {
            return Err(PlotError::Input("a line chart needs a point".into()));
        }
        Ok(())
    }

    /// The y range, padded (more below, where the legend goes).
    fn y_range(&self) -> (f64, f64) {
        let (lo, hi) = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().flatten())
            .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.lo), h.max(p.hi)));
        let d = (hi - lo).max(1.0);
        (lo - 0.35 * d, hi + 0.1 * d)
    }
}

/// Renders `chart` as a PNG (`.png`) or SVG (any other extension) file.
pub fn render_lines(
    chart: &LineChart,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    crate::render_file(chart, path, width, height)
}

/// Renders `chart` as an SVG document held in memory.
pub fn render_lines_svg_string(
    chart: &LineChart,
    width: u32,
    height: u32,
) -> Result<String, PlotError> {
    crate::render_svg_of(chart, width, height)
}

impl crate::Chart for LineChart {
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

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &LineChart) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(draw_err)?;
    let (y0, y1) = c.y_range();
    let n = c.categories.len();
    let (x0, x1) = (-0.5, n as f64 - 0.5);
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            c.categories[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .x_labels(n.max(2) * 2 + 1)
        .x_label_formatter(&label)
        .disable_x_mesh()
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(draw_err)?;
    if let Some(m) = c.marked {
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(DashedLineSeries::new(
                [(m as f64, y0), (m as f64, y1)],
                6,
                4,
                grey.stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    for (k, s) in c.series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let pts: Vec<(f64, LinePoint)> = s
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|p| (i as f64, p)))
            .collect();
        chart
            .draw_series(plotters::series::LineSeries::new(
                pts.iter().map(|(x, p)| (*x, p.y)),
                colour.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        for (x, p) in &pts {
            let w = 0.06;
            let bar = [
                PathElement::new([(*x, p.lo), (*x, p.hi)], colour.stroke_width(1)),
                PathElement::new([(x - w, p.lo), (x + w, p.lo)], colour.stroke_width(1)),
                PathElement::new([(x - w, p.hi), (x + w, p.hi)], colour.stroke_width(1)),
            ];
            chart.draw_series(bar).map_err(draw_err)?;
            chart
                .draw_series([Circle::new((*x, p.y), 4, colour.filled())])
                .map_err(draw_err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> LineChart {
        let pt = |y: f64| {
            Some(LinePoint {
                y,
                lo: y - 1.0,
                hi: y + 1.0,
            })
        };
        LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            categories: vec!["x0.1".into(), "x1".into(), "x10".into()],
            series: vec![
                LineSeries {
                    name: "partial-series".into(),
                    points: vec![pt(60.0), pt(55.0), None],
                },
                LineSeries {
                    name: "full-series".into(),
                    points: vec![pt(50.0), pt(50.0), pt(49.0)],
                },
            ],
            marked: Some(1),
        }
    }

    #[test]
    fn draws_categories_and_legend() {
        let svg = render_lines_svg_string(&chart(), 800, 500).unwrap();
        for want in ["<svg", "x0.1", "x10", "partial-series", "full-series"] {
            assert!(svg.contains(want), "{want}");
        }
    }

    #[test]
    fn writes_a_png() {
        let dir = std::env::temp_dir().join(format!("jettison-plot-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.png");
        let r = render_lines(&chart(), &path, 800, 500);
        let bytes = std::fs::read(&path);
        let _ = std::fs::remove_dir_all(&dir);
        r.unwrap();
        assert!(bytes.unwrap().starts_with(b"\x89PNG"));
    }

    #[test]
    fn refuses_bad_input() {
        let mut c = chart();
        c.series[0].points.pop();
        assert!(c.validate().is_err(), "a point missing");
        let mut c = chart();
        c.series[1].points[0] = Some(LinePoint {
            y: 5.0,
            lo: 6.0,
            hi: 7.0,
        });
        assert!(c.validate().is_err(), "y below lo");
        let mut c = chart();
        c.marked = Some(3);
        assert!(c.validate().is_err());
        let mut c = chart();
        c.series[0].points[0] = Some(LinePoint {
            y: f64::NAN,
            lo: 0.0,
            hi: 1.0,
        });
        assert!(c.validate().is_err());
        assert!(render_lines_svg_string(&chart(), 10, 10).is_err());
    }
}

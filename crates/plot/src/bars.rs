//! Grouped bar charts (the fleet simulator's savings by idle-period length):
//! one group per category along the x axis, one bar per series in each
//! group, a legend of the series on the right.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::draw::draw_err;
use crate::font::FAMILY;
use crate::PlotError;

/// Series colours, in order (repeated beyond six series).
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
    RGBColor(214, 39, 40),
];

/// A grouped bar chart.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    /// Title above the chart.
    pub title: String,
    /// The y axis' label.
    pub y_label: String,
    /// Category names along the x axis.
    pub groups: Vec<String>,
    /// One value per group for each series.
    pub series: Vec<BarSeries>,
}

/// One series of bars.
#[derive(Clone, Debug, PartialEq)]
pub struct BarSeries {
    /// Its name in the legend.
    pub name: String,
    /// One value per group.
    pub values: Vec<f64>,
}

impl BarChart {
    /// Checks that there is something to draw and every value is finite.
    pub fn validate(&self) -> Result<(), PlotError> {
        let bad = |m: String| Err(PlotError::Input(m));
        if self.groups.is_empty() || self.series.is_empty() {
            return bad("a bar chart needs at least one group and one series".into());
        }
        for s in &self.series {
            if s.values.len() != self.groups.len() {
                return bad(format!(
                    "series {:?} has {} values for {} groups",
                    s.name,
                    s.values.len(),
                    self.groups.len()
                ));
            }
            if let Some(v) = s.values.iter().find(|v| !v.is_finite()) {
                return bad(format!("series {:?} has a non-finite value {v}", s.name));
            }
        }
        Ok(())
    }

    /// The y range: from 0 (or the lowest value) to a little above the highest.
    fn y_range(&self) -> (f64, f64) {
        let all = self.series.iter().flat_map(|s| s.values.iter().copied());
        let (lo, hi) = all.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        (lo * 1.1, if hi > 0.0 { hi * 1.1 } else { 1.0 })
    }
}

/// Renders `chart` as a PNG (`.png`) or SVG (any other extension) file.
pub fn render_bars(
    chart: &BarChart,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    crate::render_file(chart, path, width, height)
}

/// Renders `chart` as an SVG document held in memory.
pub fn render_bars_svg_string(
    chart: &BarChart,
    width: u32,
    height: u32,
) -> Result<String, PlotError> {
    crate::render_svg_of(chart, width, height)
}

impl crate::Chart for BarChart {
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

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &BarChart) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(draw_err)?;
    let (w, h) = root.dim_in_pixel();
    let size = f64::from(w.min(h)) / 40.0;
    let text = (FAMILY, size).into_font().color(&BLACK);
    let longest = c
        .series
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    let legend_w = ((longest as f64 + 4.0) * size * 0.6).min(f64::from(w) * 0.45) as u32;
    let (plot_area, legend) = root.split_horizontally(w - legend_w);
    let n = c.groups.len();
    let (y0, y1) = c.y_range();
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&c.title, (FAMILY, size * 1.3).into_font())
        .margin(size as u32)
        .x_label_area_size((size * 2.5) as u32)
        .y_label_area_size((size * 4.0) as u32)
        .build_cartesian_2d(0.0..n as f64, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(&c.y_label)
        .label_style(text.clone())
        .axis_desc_style(text.clone())
        .draw()
        .map_err(draw_err)?;
    let k = c.series.len() as f64;
    let bar = 0.8 / k;
    for (si, s) in c.series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let left = move |gi: usize| gi as f64 + 0.1 + si as f64 * bar;
        chart
            .draw_series(s.values.iter().enumerate().map(|(gi, &v)| {
                Rectangle::new([(left(gi), 0.0), (left(gi) + bar, v)], color.filled())
            }))
            .map_err(draw_err)?;
        // The legend: a swatch and the name, one row per series.
        let y = (size * (4.0 + 1.6 * si as f64)) as i32;
        let s0 = (size * 0.3) as i32;
        let side = size as i32;
        legend
            .draw(&Rectangle::new(
                [(s0, y), (s0 + side, y + side)],
                color.filled(),
            ))
            .map_err(draw_err)?;
        let left_mid = text.clone().pos(Pos::new(HPos::Left, VPos::Center));
        legend
            .draw(&Text::new(
                s.name.as_str(),
                (s0 + side * 3 / 2, y + side / 2),
                &left_mid,
            ))
            .map_err(draw_err)?;
    }
    let below = text.pos(Pos::new(HPos::Center, VPos::Top));
    for (gi, g) in c.groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(gi as f64 + 0.5, y0));
        plot_area
            .draw(&Text::new(g.as_str(), (x, y + (size * 0.5) as i32), &below))
            .map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> BarChart {
        BarChart {
            title: "Savings by idle-period length".into(),
            y_label: "% saved".into(),
            groups: vec!["10-30m".into(), "1h+".into()],
            series: vec![
                BarSeries {
                    name: "best online".into(),
                    values: vec![85.3, 88.1],
                },
                BarSeries {
                    name: "full migration".into(),
                    values: vec![72.5, 77.2],
                },
            ],
        }
    }

    #[test]
    fn svg_names_every_group_and_series() {
        let svg = render_bars_svg_string(&chart(), 800, 500).unwrap();
        for name in ["10-30m", "1h+", "best online", "full migration", "% saved"] {
            assert!(svg.contains(name), "{name} missing");
        }
        // Two series of two groups: four bars, plus two legend swatches.
        assert!(svg.matches("<rect").count() >= 6);
    }

    #[test]
    fn png_is_written_and_bad_input_refused() {
        let dir = std::env::temp_dir().join(format!("jt-bars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bars.png");
        render_bars(&chart(), &path, 800, 500).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
        let mut bad = chart();
        bad.series[0].values.pop();
        assert!(matches!(bad.validate(), Err(PlotError::Input(_))));
        bad = chart();
        bad.series[1].values[0] = f64::NAN;
        assert!(bad.validate().is_err());
        assert!(render_bars(&chart(), &path, 10, 10).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Charts of a sweep's results, drawn with plotters as SVG or PNG: one
//! metric by variant (a dot per variant, in the results' order), or one
//! metric against one swept dimension (a line per assignment of the other
//! dimensions).
//!
//! Text is set in DejaVu Sans, embedded in the binary, so a PNG looks the
//! same on a machine without fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::results::SweepResults;
use crate::error::{Error, Result};

/// The embedded face (see `assets/fonts/DejaVuSans-LICENSE`).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family the charts name.
const FAMILY: &str = "sans-serif";

/// Width of a chart in pixels; its height grows with the variants.
const WIDTH: u32 = 900;

/// What a chart shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chart {
    /// The metric, a column of [`SweepResults::metrics`].
    pub metric: String,
    /// Draw the metric against this dimension instead of by variant.
    pub against: Option<String>,
}

/// What a chart is drawn from: the metric's column, and the `against`
/// dimension's index and whether its values are all numbers.
struct Plan<'r> {
    results: &'r SweepResults,
    chart: &'r Chart,
    metric: usize,
    against: Option<(usize, bool)>,
}

impl Chart {
    /// Draw this chart of `results` to `path`: SVG or PNG, by extension.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the metric, the dimension or the
    /// extension when the results have no such metric or dimension or the
    /// path is neither `.svg` nor `.png`; [`Error::Io`] when the file cannot
    /// be written.
    pub fn draw(&self, results: &SweepResults, path: &Path) -> Result<()> {
        let plan = self.plan(results)?;
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let size = (WIDTH, plan.height());
        register_font();
        let fail = |e: &dyn std::fmt::Display| Error::io(path, format!("drawing the chart: {e}"));
        match extension.to_ascii_lowercase().as_str() {
            "svg" => {
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                    plan.draw(&root).map_err(|e| fail(&e))?;
                    root.present().map_err(|e| fail(&e))?;
                }
                std::fs::write(path, svg).map_err(|e| Error::io_from(path, e))
            }
            "png" => {
                let root = BitMapBackend::new(path, size).into_drawing_area();
                plan.draw(&root).map_err(|e| fail(&e))?;
                root.present().map_err(|e| fail(&e))
            }
            _ => Err(Error::InvalidParameter {
                step: "--chart".into(),
                message: format!(
                    "{}: a chart is written as SVG or PNG; name the file .svg or .png",
                    path.display()
                ),
            }),
        }
    }

    fn plan<'r>(&'r self, results: &'r SweepResults) -> Result<Plan<'r>> {
        let invalid = |message: String| Error::InvalidParameter {
            step: "--chart".into(),
            message,
        };
        let metric = results.metric_column(&self.metric, "--chart")?;
        let against = match &self.against {
            None => None,
            Some(dim) => {
                let d = (results.dimensions.iter())
                    .position(|x| x == dim)
                    .ok_or_else(|| {
                        invalid(format!(
                            "the sweep has no dimension '{dim}'; its dimensions: {}",
                            results.dimensions.join(", ")
                        ))
                    })?;
                let numeric =
                    (results.rows.iter()).all(|r| r.variant.assignment[d].1.parse::<f64>().is_ok());
                Some((d, numeric))
            }
        };
        Ok(Plan {
            results,
            chart: self,
            metric,
            against,
        })
    }
}

/// Register the embedded face once per process.
fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The face is a constant of the build; a test draws with it.
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded chart font does not parse"));
    });
}

/// A drawing failure, whatever the backend.
type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

impl Plan<'_> {
    fn height(&self) -> u32 {
        match self.against {
            Some(_) => 560,
            None => (140 + 26 * self.results.rows.len() as u32).max(320),
        }
    }

    /// The metric's value per row, NaN where a variant recorded none.
    fn values(&self) -> Vec<f64> {
        let rows = self.results.rows.iter();
        rows.map(|r| r.metrics[self.metric]).collect()
    }

    /// `lo..hi` around every finite value, with a margin (more on the
    /// right, for the values written beside dots); 0..1 for none.
    fn value_range(&self) -> std::ops::Range<f64> {
        let finite = self.values().into_iter().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if lo > hi {
            return 0.0..1.0;
        }
        let margin = match hi - lo {
            0.0 => lo.abs().max(1.0) * 0.05,
            span => span * 0.05,
        };
        lo - margin..hi + margin * 2.0
    }

    fn title(&self) -> String {
        let run = &self.results.run;
        match &self.chart.against {
            Some(dim) => format!("{} by {dim}, sweep run {run}", self.chart.metric),
            None => format!("{} by variant, sweep run {run}", self.chart.metric),
        }
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        match self.against {
            None => self.draw_dots(root),
            Some((d, true)) => self.draw_numeric(root, d),
            Some((d, false)) => self.draw_categories(root, d),
        }
    }

    /// A dot per variant on its own row, labelled with its name, its value
    /// beside it. Dots, not bars: a sweep's values are often close, and an
    /// axis from zero would hide their differences.
    fn draw_dots<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let rows = &self.results.rows;
        let names: Vec<&str> = rows.iter().map(|r| r.variant.name.as_str()).collect();
        let label_width = names.iter().map(|n| n.len()).max().unwrap_or(8) as u32 * 8 + 16;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title(), (FAMILY, 20))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(label_width.min(WIDTH / 2))
            .build_cartesian_2d(self.value_range(), (0..rows.len()).into_segmented())?;
        chart
            .configure_mesh()
            .x_desc(self.chart.metric.as_str())
            .y_labels(rows.len().max(1))
            .y_label_formatter(&|v| match v {
                // The first row at the top.
                SegmentValue::CenterOf(i) => (names.len().checked_sub(i + 1))
                    .map_or("", |r| names[r])
                    .to_string(),
                _ => String::new(),
            })
            .label_style((FAMILY, 14))
            .draw()?;
        let color = Palette99::pick(4).to_rgba();
        let dots = self.values().into_iter().enumerate();
        chart.draw_series(dots.filter(|(_, v)| v.is_finite()).map(|(i, v)| {
            EmptyElement::at((v, SegmentValue::CenterOf(rows.len() - 1 - i)))
                + Circle::new((0, 0), 5, color.filled())
                + Text::new(format!("{v:.4}"), (9, -7), (FAMILY, 12))
        }))?;
        Ok(())
    }

    /// The metric against a numeric dimension (a log axis when its values
    /// are positive and span two decades or more).
    fn draw_numeric<DB>(&self, root: &DrawingArea<DB, Shift>, d: usize) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let x_of = |r: usize| -> f64 {
            let value = &self.results.rows[r].variant.assignment[d].1;
            value.parse().unwrap_or(f64::NAN)
        };
        let xs: Vec<f64> = (0..self.results.rows.len()).map(x_of).collect();
        let (lo, hi) = xs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        let (lo, hi) = if lo < hi {
            (lo, hi)
        } else {
            (lo - 1.0, hi + 1.0)
        };
        let builder = &mut ChartBuilder::on(root);
        builder
            .caption(self.title(), (FAMILY, 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70);
        if lo > 0.0 && hi / lo >= 100.0 {
            let x = (lo / 1.5..hi * 1.5).log_scale();
            let mut chart = builder.build_cartesian_2d(x, self.value_range())?;
            self.draw_series(&mut chart, &xs, d, None)
        } else {
            let margin = (hi - lo) * 0.05;
            let x = lo - margin..hi + margin;
            let mut chart = builder.build_cartesian_2d(x, self.value_range())?;
            self.draw_series(&mut chart, &xs, d, None)
        }
    }

    /// The metric against a dimension of named values, in the sweep's order.
    fn draw_categories<DB>(&self, root: &DrawingArea<DB, Shift>, d: usize) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let mut labels: Vec<&str> = Vec::new();
        for r in &self.results.rows {
            let value = r.variant.assignment[d].1.as_str();
            if !labels.contains(&value) {
                labels.push(value);
            }
        }
        let xs: Vec<f64> = (self.results.rows.iter())
            .map(|r| {
                let value = r.variant.assignment[d].1.as_str();
                labels.iter().position(|l| *l == value).unwrap_or(0) as f64
            })
            .collect();
        let x = -0.5..labels.len() as f64 - 0.5;
        let chart = ChartBuilder::on(root)
            .caption(self.title(), (FAMILY, 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x, self.value_range())?;
        let mut chart = chart;
        self.draw_series(&mut chart, &xs, d, Some(&labels))
    }

    /// The mesh (x labelled with `labels` at 0, 1, ... when given, else
    /// with numbers), then one line with points per assignment of the
    /// dimensions other than `d`, with a legend naming it.
    fn draw_series<'a, DB, X>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
        xs: &[f64],
        d: usize,
        labels: Option<&[&str]>,
    ) -> DrawResult
    where
        DB: DrawingBackend + 'a,
        DB::ErrorType: 'static,
        X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
    {
        let named = |x: &f64| {
            let i = x.round();
            let names = labels.unwrap_or_default();
            match (x - i).abs() < 1e-9 && i >= 0.0 {
                true => names.get(i as usize).copied().unwrap_or("").to_string(),
                false => String::new(),
            }
        };
        let mut mesh = chart.configure_mesh();
        if let Some(labels) = labels {
            mesh.x_labels(labels.len()).x_label_formatter(&named);
        }
        mesh.x_desc(self.chart.against.as_deref().unwrap_or(""))
            .y_desc(self.chart.metric.as_str())
            .label_style((FAMILY, 14))
            .draw()?;
        let values = self.values();
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for (r, row) in self.results.rows.iter().enumerate() {
            let others = (row.variant.assignment.iter().enumerate())
                .filter(|(i, _)| *i != d)
                .map(|(_, (dim, value))| format!("{dim}={value}"))
                .collect::<Vec<_>>()
                .join(",");
            if !values[r].is_finite() {
                continue;
            }
            match series.iter_mut().find(|(name, _)| *name == others) {
                Some((_, points)) => points.push((xs[r], values[r])),
                None => series.push((others, vec![(xs[r], values[r])])),
            }
        }
        let labelled = series.len() > 1 || !series.first().is_none_or(|(n, _)| n.is_empty());
        for (s, (name, mut points)) in series.into_iter().enumerate() {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = Palette99::pick(s).to_rgba();
            let line = chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
            if labelled {
                line.label(name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )?;
        }
        if labelled {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font((FAMILY, 12))
                .position(SeriesLabelPosition::LowerRight)
                .draw()?;
        }
        Ok(())
    }
}

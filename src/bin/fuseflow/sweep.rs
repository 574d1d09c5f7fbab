//! `fuseflow sweep`: the results of a sweep's run.

use std::path::PathBuf;

use clap::Subcommand;
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::track::{Chart, SweepResults};
use fuseflow::{Error, Workspace};

/// What `fuseflow sweep` does.
#[derive(Subcommand)]
pub(crate) enum SweepAction {
    /// Compare the variants of a sweep's run: a row per variant with its
    /// assignment, status, metrics, time and cache hits.
    Results {
        /// A run id, a unique prefix of one, or `latest`.
        run: String,
        /// Order the variants by this metric (ascending unless --descending).
        #[arg(long, value_name = "METRIC")]
        sort: Option<String>,
        /// With --sort: the largest value first.
        #[arg(long, requires = "sort")]
        descending: bool,
        /// Also write the table: CSV, Parquet or Arrow IPC, by extension
        /// (repeatable).
        #[arg(short, long, value_name = "FILE")]
        output: Vec<PathBuf>,
        /// Draw a chart of one metric: SVG or PNG, by extension
        /// (repeatable). A dot per variant, or with --against a line of the
        /// metric against one dimension.
        #[arg(long, value_name = "FILE")]
        chart: Vec<PathBuf>,
        /// The metric to chart (default: the --sort metric, else the first).
        #[arg(long, value_name = "METRIC")]
        metric: Option<String>,
        /// Chart the metric against this swept dimension (a parameter or a
        /// step with alternatives), a line per assignment of the others.
        #[arg(long, value_name = "DIMENSION", requires = "chart")]
        against: Option<String>,
    },
}

impl SweepAction {
    pub(crate) fn run(self, ws: &Workspace) -> Result<(), Error> {
        let SweepAction::Results {
            run,
            sort,
            descending,
            output,
            chart,
            metric,
            against,
        } = self;
        let mut results = results_of(ws, &run)?;
        if let Some(metric) = &sort {
            results.sort_by(metric, descending)?;
        }
        print!("{}", results.render());
        if !output.is_empty() {
            let table = results.to_table()?;
            for path in output {
                write_table(&table, &path, FileFormat::from_path(&path)?)?;
                println!("wrote {} variants to {}", table.num_rows(), path.display());
            }
        }
        if !chart.is_empty() {
            let Some(metric) = metric.or(sort).or_else(|| results.metrics.first().cloned()) else {
                return Err(Error::InvalidParameter {
                    step: "--chart".into(),
                    message: "the sweep recorded no metric to chart".into(),
                });
            };
            let spec = Chart { metric, against };
            for path in chart {
                spec.draw(&results, &path)?;
                println!(
                    "drew {} of {} variants to {}",
                    spec.metric,
                    results.rows.len(),
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// The results of the sweep run `run` names (see `RunStore::resolve`).
pub(crate) fn results_of(ws: &Workspace, run: &str) -> Result<SweepResults, Error> {
    let runs = ws.runs();
    let detail = runs.run(run)?;
    let variants = runs.variants(&detail.summary.id)?;
    SweepResults::of(&detail, variants)
}

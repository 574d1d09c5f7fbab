//! Quickstart: a whole pipeline, run twice in a workspace.
//!
//! On a deterministic synthetic customer table (1M rows, nulls, a
//! categorical region, a churn label; generated in memory, no files needed):
//! split, derive features, fit statistics and categories on the training
//! rows, fill nulls, z-score, one-hot encode, train a logistic regression,
//! score the held-out rows with the model (which carries its fitted
//! preparation) and evaluate. The first run computes every step and caches
//! its outputs in a fresh workspace; the second run changes one parameter
//! (the model's L2 penalty), so only the model and what depends on it run
//! again, and the rest is reused.
//!
//! Run with `cargo run --release --example quickstart`; add `-- --device
//! cuda` (or `wgpu`) to compute on a GPU. Without one, the run goes on on the
//! CPU and each step says why.

use std::sync::Arc;

use fuseflow::backend::DeviceChoice;
use fuseflow::ml::logistic::LogisticConfig;
use fuseflow::{CacheUse, RunOptions, RunOutput, Table, Workspace, datasets};

fn main() -> fuseflow::Result<()> {
    let device = DeviceChoice::from_args(std::env::args())?;
    let rows = 1_000_000;
    let data = datasets::customers(rows, 42);
    // Cut the table into 64K-row chunks as a file reader would.
    let chunks = (0..rows)
        .step_by(65_536)
        .map(|s| data.slice(s, 65_536.min(rows - s)))
        .collect();
    let table = Table::try_new(data.schema(), chunks)?;

    let dir = std::env::temp_dir().join(format!("fuseflow-quickstart-{}", std::process::id()));
    let workspace = Arc::new(Workspace::open(&dir)?);
    let options = RunOptions {
        device,
        ..RunOptions::default().with_workspace(Arc::clone(&workspace))
    };
    let result = (|| {
        for (label, l2) in [("first run", 1.0), ("second run, l2 = 10", 10.0)] {
            let config = LogisticConfig {
                l2,
                ..LogisticConfig::default()
            };
            let run = datasets::churn_pipeline_with(table.clone(), config).run_with(&options)?;
            report(label, &run)?;
            // After a change: why the model ran again, field by field.
            let reused = run
                .steps
                .iter()
                .any(|s| matches!(s.cache, CacheUse::Hit { .. }));
            if let (true, Some(id)) = (reused, &run.run_id) {
                println!("why 'model' ran: {}", workspace.why(id.as_str(), "model")?);
            }
        }
        Ok(())
    })();
    // The workspace was only for this demonstration.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The run's time, what it reused and what it computed, and its metrics.
fn report(label: &str, run: &RunOutput) -> fuseflow::Result<()> {
    println!("== {label}: {:.3} s", run.duration.as_secs_f64());
    let names = |reused: bool| -> Vec<&str> {
        run.steps
            .iter()
            .filter(|s| matches!(s.cache, CacheUse::Hit { .. }) == reused)
            .map(|s| s.name.as_str())
            .collect()
    };
    println!("   reused:     {}", names(true).join(", "));
    println!("   recomputed: {}", names(false).join(", "));
    for step in &run.steps {
        for note in step.notes.iter().filter(|n| n.contains("fell back")) {
            println!("   note on {}: {note}", step.name);
        }
    }
    let metrics = run.output("evaluation.metrics")?.concat()?;
    println!(
        "{}",
        arrow_cast::pretty::pretty_format_batches(&[metrics]).map_err(fuseflow::Error::from)?
    );
    Ok(())
}

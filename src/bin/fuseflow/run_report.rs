//! What `fuseflow run` prints when a run ends.

use arrow_array::cast::AsArray;
use fuseflow::data::format_bytes;
use fuseflow::exec::peak_rss_bytes;
use fuseflow::{CacheUse, RunOutput};

/// The run's report: its steps, then (with `metrics`) the metrics of its
/// evaluation steps.
pub(crate) fn print_run(name: &str, run: &RunOutput, metrics: bool) {
    let id = run
        .run_id
        .as_ref()
        .map(|id| format!(" (run {id})"))
        .unwrap_or_default();
    println!(
        "pipeline '{name}' finished in {:.3} s{id}",
        run.duration.as_secs_f64()
    );
    if let Some(rss) = peak_rss_bytes() {
        println!("peak resident memory: {}", format_bytes(rss));
    }
    for notice in &run.plan.notices {
        println!("notice: {notice}");
    }
    let width = run
        .steps
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(20);
    println!(
        "{:<width$} {:<15} {:<6} {:>10} {:>12} {:>10}  cache",
        "step", "kind", "device", "ms", "rows", "bytes"
    );
    for step in &run.steps {
        let rows: Vec<String> = step.rows.iter().map(usize::to_string).collect();
        let cache = match &step.cache {
            CacheUse::Off => "-".to_string(),
            CacheUse::Miss => "miss".to_string(),
            CacheUse::Hit { from } => format!("hit ({from})"),
        };
        let device = step.device.split(':').next().unwrap_or_default();
        println!(
            "{:<width$} {:<15} {device:<6} {:>10.1} {:>12} {:>10}  {cache}",
            step.name,
            step.kind,
            step.duration.as_secs_f64() * 1e3,
            if rows.is_empty() {
                "-".to_string()
            } else {
                rows.join("/")
            },
            step.bytes
                .iter()
                .map(|&b| format_bytes(b as u64))
                .collect::<Vec<_>>()
                .join("/")
        );
        for note in &step.notes {
            println!("  note: {note}");
        }
    }
    // Metrics of evaluation steps, in the order the steps finished.
    let evaluations = run.steps.iter().filter(|s| metrics && s.kind == "evaluate");
    for step in evaluations {
        let Ok(metrics) = run.output(&format!("{}.metrics", step.name)) else {
            continue;
        };
        println!("\nmetrics of '{}':", step.name);
        for batch in metrics.batches() {
            let names = batch.column(0).as_string::<i32>();
            let values = batch
                .column(1)
                .as_primitive::<arrow_array::types::Float64Type>();
            for i in 0..batch.num_rows() {
                println!("  {:<16} {:.6}", names.value(i), values.value(i));
            }
        }
    }
}

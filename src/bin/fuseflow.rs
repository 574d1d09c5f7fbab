//! The `fuseflow` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use arrow_array::cast::AsArray;
use clap::{Parser, Subcommand};
use fuseflow::exec::{Progress, ProgressMode, ScoreOptions, score_file};
use fuseflow::ml::model::Model;
use fuseflow::pipeline::spec;
use fuseflow::{RunOptions, RunOutput};

/// Run and inspect fuseflow pipelines described in TOML spec files.
#[derive(Parser)]
#[command(name = "fuseflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline spec file.
    Run {
        /// The spec file (TOML; see docs/spec-format.md).
        spec: PathBuf,
        /// Most steps to run at once (default: the number of cores, at least 4).
        #[arg(long)]
        concurrent_steps: Option<usize>,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print the steps in execution order with their inputs, outputs and schemas.
    Explain {
        /// The spec file.
        spec: PathBuf,
    },
    /// Score a Parquet, Arrow IPC or CSV file with a trained model, streaming
    /// it in bounded chunks, and write the scores.
    Score {
        /// The model (an Arrow IPC file written by a training step).
        model: PathBuf,
        /// The input file.
        input: PathBuf,
        /// The output file (format from the extension).
        output: PathBuf,
        /// Input columns to copy to the output, comma-separated (e.g. ids).
        #[arg(long, value_delimiter = ',')]
        keep: Vec<String>,
        /// Rows per chunk; memory stays near a few chunks.
        #[arg(long, default_value_t = 256 * 1024)]
        chunk_rows: usize,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            spec,
            concurrent_steps,
            quiet,
        } => spec::load(&spec).and_then(|pipeline| {
            let mut options = RunOptions::default();
            if let Some(n) = concurrent_steps {
                options.max_concurrent_steps = n.max(1);
            }
            let run = pipeline.run_with(&options)?;
            if !quiet {
                print_run(pipeline.name(), &run);
            }
            Ok(())
        }),
        Command::Explain { spec } => spec::load(&spec)
            .and_then(|p| p.explain())
            .map(|text| print!("{text}")),
        Command::Score {
            model,
            input,
            output,
            keep,
            chunk_rows,
            quiet,
        } => Model::load(&model).and_then(|model| {
            let mut progress = Progress::new(ProgressMode::detect(quiet), "scoring", None);
            let options = ScoreOptions {
                keep,
                chunk_rows: chunk_rows.max(1),
            };
            let summary = score_file(model, &input, &output, &options, &mut progress)?;
            if !quiet {
                let secs = summary.duration.as_secs_f64().max(1e-9);
                println!(
                    "scored {} rows in {} chunks in {secs:.3} s ({:.1}M rows/s) -> {}",
                    summary.rows,
                    summary.chunks,
                    summary.rows as f64 / secs / 1e6,
                    output.display()
                );
                if let Some(rss) = summary.peak_rss_bytes {
                    println!(
                        "peak resident memory: {:.1} MiB",
                        rss as f64 / (1024.0 * 1024.0)
                    );
                }
            }
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_run(name: &str, run: &RunOutput) {
    println!(
        "pipeline '{name}' finished in {:.3} s",
        run.duration.as_secs_f64()
    );
    println!(
        "{:<20} {:<15} {:>10} {:>12} {:>10}",
        "step", "kind", "ms", "rows", "MB"
    );
    for step in &run.steps {
        let rows: Vec<String> = step.rows.iter().map(usize::to_string).collect();
        println!(
            "{:<20} {:<15} {:>10.1} {:>12} {:>10.1}",
            step.name,
            step.kind,
            step.duration.as_secs_f64() * 1e3,
            if rows.is_empty() {
                "-".to_string()
            } else {
                rows.join("/")
            },
            step.bytes as f64 / 1e6
        );
    }
    // Metrics of evaluation steps, in the order the steps finished.
    for step in run.steps.iter().filter(|s| s.kind == "evaluate") {
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

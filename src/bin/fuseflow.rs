//! The `fuseflow` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

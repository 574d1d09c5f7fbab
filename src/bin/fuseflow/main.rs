//! The `fuseflow` command-line tool.

mod run_report;
mod serve;
mod sweep;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use fuseflow::backend::DeviceSet;
use fuseflow::backend::{DeviceChoice, DeviceKind};
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::data::{format_bytes, parse_bytes};
use fuseflow::exec::{
    Progress, ProgressMode, ScoreOptions, StepProgress, fetch_output, score_file,
};
use fuseflow::ml::model::Model;
use fuseflow::pipeline::clone::clone_spec;
use fuseflow::pipeline::params::ParamValues;
use fuseflow::pipeline::spec;
use fuseflow::plan::{CALIBRATION_FILE, Calibration, calibrate};
use fuseflow::track::{RunSummary, render_gc, render_objects, render_run, render_runs};
use fuseflow::{CachePolicy, Error, Rerun, RunOptions, Workspace};
use run_report::print_run;

/// mimalloc keeps freed pages for reuse: a run's many large, short-lived
/// buffers (decoded batches, design matrices, per-step tables) otherwise go
/// back to the kernel and come back zeroed, page by page (glibc's, even
/// with its mmap and trim thresholds raised, gave a sweep 20% more time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run and inspect fuseflow pipelines described in TOML spec files.
#[derive(Parser)]
#[command(name = "fuseflow", version, about)]
struct Cli {
    /// The workspace directory holding cached outputs and run history
    /// (default: $FUSEFLOW_WORKSPACE, else .fuseflow in the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    workspace: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline spec file, reusing every step output cached in the
    /// workspace whose inputs, parameters and code did not change.
    Run(RunArgs),
    /// Write a copy of a spec file with some step keys or parameter defaults
    /// changed and its origin recorded; run it as any spec (it reuses every
    /// cached step the changes leave alone).
    Clone(CloneArgs),
    /// Print the physical plan: the steps in execution order, the fused groups
    /// (chains of row-local steps run as one kernel) and the steps inside
    /// them, the device of each step and why, transfers and estimated costs.
    Explain(ExplainArgs),
    /// Measure this machine for the planner's cost model (CPU bandwidth, and
    /// for each GPU its copy bandwidth, launch cost and kernel bandwidth) and
    /// store the result in the workspace, where runs read it.
    Calibrate,
    /// Score a Parquet, Arrow IPC or CSV file with a trained model, streaming
    /// it in bounded chunks, and write the scores.
    Score(ScoreArgs),
    /// List recorded runs, newest first.
    Runs {
        /// Only runs of this pipeline.
        pipeline: Option<String>,
    },
    /// Show one run: its steps with timings, device, cache hit or miss and the
    /// run a hit reused, then its metrics.
    Show {
        /// A run id, a unique prefix of one, or `latest`.
        run: String,
    },
    /// Write an output of a step of a past run to a file. An output the run
    /// did not store (a step inside a fused chain) is computed again from
    /// the chain's stored input, its key checked against the run's record.
    Output {
        /// A run id, a unique prefix of one, or `latest`.
        run: String,
        /// The step.
        step: String,
        /// The output port (needed when the step has several).
        port: Option<String>,
        /// The file to write: Parquet, Arrow IPC or CSV, by extension.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Explain why a step of a run missed the cache: which fields of its key
    /// differ from the most recent earlier run of that step.
    Why {
        /// A run id, a unique prefix of one, or `latest`.
        run: String,
        /// The step.
        step: String,
    },
    /// Compare the variants of a sweep (a spec with a `[sweep]` table, run
    /// with `fuseflow run`).
    Sweep {
        #[command(subcommand)]
        action: sweep::SweepAction,
    },
    /// Publish a spec file to the workspace's pipelines, which `fuseflow
    /// serve` runs when triggered over REST (a changed spec adds a version).
    Publish(serve::PublishArgs),
    /// Serve the workspace over HTTP: publish and trigger pipelines over
    /// REST, query runs and outputs, and the dashboard at `/`
    /// (docs/rest-api.md).
    Serve(serve::ServeArgs),
    /// Inspect and trim the cache of step outputs.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// List cached objects, least recently used first.
    Ls,
    /// Evict least recently used objects until the cache fits a size.
    Gc {
        /// The size to fit in: bytes, or with a unit (500MB, 2GiB).
        #[arg(long, value_parser = parse_bytes)]
        max_size: u64,
    },
    /// Remove every cached object (the run history stays).
    Clear,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Most steps to run at once (default: the number of cores, at least 4).
    #[arg(long)]
    concurrent_steps: Option<usize>,
    /// Run every step, reusing nothing (outputs are still cached).
    #[arg(long, conflicts_with = "rerun")]
    rerun_all: bool,
    /// Run this step even if its outputs are cached (repeatable).
    #[arg(long, value_name = "STEP")]
    rerun: Vec<String>,
    /// Run in memory only: no workspace, no cache, no run record; chains
    /// of row-local steps then run fused.
    #[arg(long)]
    no_workspace: bool,
    /// The device for steps that compute and are not pinned in the spec:
    /// auto, cpu, wgpu or cuda. Under auto the planner's cost model picks
    /// per step among the CPU and hardware GPUs (never a software
    /// adapter). A device that cannot be opened leaves its steps on the
    /// CPU, with a note.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Let devices without f64 (wgpu) compute f64 columns in f32 rather
    /// than sending that work to the CPU; the precision is recorded.
    #[arg(long)]
    allow_f32: bool,
    /// Evaluate expressions op by op, every intermediate materialized,
    /// instead of as fused kernels, and train sibling models one by one
    /// (slower; for checking fused results).
    #[arg(long)]
    no_fuse: bool,
    /// Hash every source file again instead of trusting the workspace's
    /// stat cache (an unchanged size, modification time and inode).
    #[arg(long)]
    verify_sources: bool,
    /// Data the run may keep resident (e.g. 2GiB): a memory-mapped
    /// source larger than this is streamed with each batch's pages
    /// released after use (default: a quarter of physical memory).
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE")]
    memory_budget: Option<u64>,
    #[command(flatten)]
    outputs: OutputArgs,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct ExplainArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Emit the plan as a Graphviz graph (`fuseflow explain p.toml --dot | dot -Tsvg`).
    #[arg(long, conflicts_with = "schemas")]
    dot: bool,
    /// Print the steps with their inputs, outputs and schemas instead.
    #[arg(long)]
    schemas: bool,
    /// Plan for this run device, as `run --device` (auto, cpu, wgpu or cuda).
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Plan a run without a workspace, as `run --no-workspace`: nothing is
    /// cached, so chains of row-local steps fuse.
    #[arg(long)]
    no_workspace: bool,
    #[command(flatten)]
    outputs: OutputArgs,
}

#[derive(clap::Args)]
struct CloneArgs {
    /// The spec file to copy.
    spec: PathBuf,
    /// The new spec file.
    #[arg(long, short)]
    output: PathBuf,
    /// A change: STEP.KEY=VALUE (a step's key; KEY may be a dotted path
    /// into a table) or params.NAME=VALUE (a parameter's default);
    /// repeatable. VALUE is read as TOML, else as text.
    #[arg(long, value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// The new pipeline's name (default: the new file's name without its
    /// extension).
    #[arg(long)]
    name: Option<String>,
}

impl CloneArgs {
    /// `fuseflow clone`: write the changed copy.
    fn write(self) -> Result<(), Error> {
        let text =
            std::fs::read_to_string(&self.spec).map_err(|e| Error::io_from(&self.spec, e))?;
        let stem = self
            .output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        let name = self.name.or(stem).unwrap_or_else(|| "clone".into());
        let cloned = clone_spec(&text, &self.spec, &self.set, &name)?;
        // Checked before it is written: the changes must leave a valid spec.
        spec::check(&cloned, &self.output)?;
        std::fs::write(&self.output, cloned).map_err(|e| Error::io_from(&self.output, e))
    }
}

#[derive(clap::Args)]
struct ScoreArgs {
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
}

impl RunArgs {
    /// `fuseflow run`: load the spec, run it with these options, print the
    /// run's table.
    fn run(self, open: &dyn Fn() -> Result<Workspace, Error>) -> Result<(), Error> {
        let (pipeline, params) = self.spec.load()?;
        let mut options = RunOptions {
            device: self.device,
            params,
            allow_f32: self.allow_f32,
            verify_sources: self.verify_sources,
            observer: Some(Arc::new(StepProgress::new(ProgressMode::detect(
                self.quiet,
            )))),
            ..RunOptions::default()
        };
        self.outputs.apply(&mut options);
        if self.no_fuse {
            options.fuse = false;
        }
        if let Some(n) = self.concurrent_steps {
            options.max_concurrent_steps = n.max(1);
        }
        if let Some(bytes) = self.memory_budget {
            options.memory_budget = bytes;
        }
        if !self.no_workspace {
            options.workspace = Some(Arc::new(open()?));
            let path = &self.spec.path;
            options.spec =
                Some(std::fs::read_to_string(path).map_err(|e| Error::io_from(path, e))?);
        }
        options.rerun = match (self.rerun_all, self.rerun.is_empty()) {
            (true, _) => Rerun::All,
            (false, false) => Rerun::Steps(self.rerun),
            (false, true) => Rerun::Nothing,
        };
        let mut run = pipeline.run_with(&options)?;
        let sweep = !pipeline.variants().is_empty();
        if !self.quiet {
            print_run(pipeline.name(), &run, !sweep || run.run_id.is_none());
        }
        if let (true, Some(id), Some(ws)) = (sweep, &run.run_id, &options.workspace) {
            let results = sweep::results_of(ws, id.as_str())?;
            if !self.quiet {
                print!("\n{}", results.render());
                println!("compare them again: fuseflow sweep results {id} --sort METRIC");
            }
        }
        // A sweep's run went on past its failed steps: name each, and fail.
        let Some(last) = run.failed.pop() else {
            return Ok(());
        };
        if !run.failed.is_empty() {
            eprintln!(
                "{} steps failed; the variants that read them did not complete:",
                run.failed.len() + 1
            );
        }
        for e in &run.failed {
            eprintln!("error: {e}");
        }
        Err(last)
    }
}

impl ExplainArgs {
    /// `fuseflow explain`: the plan as text or a Graphviz graph, or the
    /// steps' schemas.
    fn explain(self, open: &dyn Fn() -> Result<Workspace, Error>) -> Result<(), Error> {
        let (pipeline, _) = self.spec.load()?;
        if self.schemas {
            print!("{}", pipeline.explain()?);
            return Ok(());
        }
        let mut options = RunOptions {
            device: self.device,
            ..RunOptions::default()
        };
        self.outputs.apply(&mut options);
        if !self.no_workspace {
            options.workspace = Some(Arc::new(open()?));
        }
        let plan = pipeline.plan(&options)?;
        if self.dot {
            print!("{}", plan.to_dot());
        } else {
            print!("{plan}");
        }
        Ok(())
    }
}

impl ScoreArgs {
    /// `fuseflow score`: stream the input through the model into the output.
    fn score(self) -> Result<(), Error> {
        let model = Model::load(&self.model)?;
        let mut progress = Progress::new(ProgressMode::detect(self.quiet), "scoring", None);
        let options = ScoreOptions {
            keep: self.keep,
            chunk_rows: self.chunk_rows.max(1),
        };
        let summary = score_file(model, &self.input, &self.output, &options, &mut progress)?;
        if !self.quiet {
            let secs = summary.duration.as_secs_f64().max(1e-9);
            println!(
                "scored {} rows in {} chunks in {secs:.3} s ({:.1}M rows/s) -> {}",
                summary.rows,
                summary.chunks,
                summary.rows as f64 / secs / 1e6,
                self.output.display()
            );
            if let Some(rss) = summary.peak_rss_bytes {
                println!("peak resident memory: {}", format_bytes(rss));
            }
        }
        Ok(())
    }
}

/// The spec file and its parameters' values, shared by `run` and `explain`.
#[derive(clap::Args)]
struct SpecArgs {
    /// The spec file (TOML; see docs/spec-format.md).
    #[arg(value_name = "SPEC")]
    path: PathBuf,
    /// A value for one of the spec's parameters (repeatable; after the
    /// params file's values).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A TOML file of parameter values (`name = value` lines).
    #[arg(long = "params", value_name = "FILE")]
    params_file: Option<PathBuf>,
}

impl SpecArgs {
    /// The pipeline, with every parameter's value.
    fn load(&self) -> Result<(fuseflow::Pipeline, Vec<(String, String)>), Error> {
        let mut values = ParamValues::new();
        if let Some(file) = &self.params_file {
            values = values.file(file)?;
        }
        for assignment in &self.params {
            values = values.assignment(assignment)?;
        }
        spec::load_with(&self.path, &values)
    }
}

/// Which step outputs a run keeps, shared by `run` and `explain`.
#[derive(clap::Args)]
struct OutputArgs {
    /// Which outputs the workspace stores: materialized (the default: only
    /// the outputs the plan materializes, so chains run fused as one kernel;
    /// `fuseflow output` computes a step inside a chain again from the
    /// chain's stored input) or every-step (each step's outputs, so any can
    /// be reused on its own; chains of row-local steps then run step by
    /// step).
    #[arg(long, default_value = "materialized", value_name = "POLICY")]
    cache: CachePolicy,
    /// Keep this step's outputs although it fuses into the next step
    /// (repeatable); they are then stored and can be fetched.
    #[arg(long, value_name = "STEP")]
    keep: Vec<String>,
}

impl OutputArgs {
    fn apply(self, options: &mut RunOptions) {
        options.cache = self.cache;
        options.keep = self.keep;
    }
}

/// Panics print one line asking for a bug report (the full message and
/// backtrace only with `RUST_BACKTRACE` set), and nothing for those that
/// fuseflow contains and reports as errors (a decoder's, on a damaged file).
fn report_panics_briefly() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if fuseflow::error::panic_is_contained() {
        } else if std::env::var_os("RUST_BACKTRACE").is_some() {
            default(info);
        } else {
            let at = info
                .location()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            eprintln!(
                "fuseflow: internal error{at}; please report it as a bug with the command \
                 that caused it (RUST_BACKTRACE=1 shows the details)"
            );
        }
    }));
}

fn main() -> ExitCode {
    // Output piped into `head` ends quietly, as with other command-line tools,
    // rather than as a panic on the first write after the pipe closed.
    // SAFETY: restoring the default disposition of a signal, before any
    // thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    report_panics_briefly();
    let cli = Cli::parse();
    let ws_dir = Workspace::locate(cli.workspace.as_deref());
    let open = || Workspace::open(&ws_dir);
    let result = match cli.command {
        Command::Run(args) => args.run(&open),
        Command::Explain(args) => args.explain(&open),
        Command::Clone(args) => args.write(),
        Command::Calibrate => open().and_then(|ws| calibrate_into(&ws)),
        Command::Score(args) => args.score(),
        Command::Runs { pipeline } => open().and_then(|ws| {
            let runs = ws.runs().runs(pipeline.as_deref())?;
            let origins = cloned_from(&ws, &runs)?;
            print!("{}", render_runs(&runs, &origins));
            Ok(())
        }),
        Command::Show { run } => open().and_then(|ws| {
            let detail = ws.runs().run(&run)?;
            print!("{}", render_run(&detail));
            if let Some(origin) = spec::origin_of(&ws.runs().spec_of(&detail.summary.id)?) {
                println!("\norigin    {}", origin.describe());
            }
            Ok(())
        }),
        Command::Output {
            run,
            step,
            port,
            output,
        } => open().and_then(|ws| {
            let table = fetch_output(&ws, &run, &step, port.as_deref())?;
            write_table(&table, &output, FileFormat::from_path(&output)?)?;
            println!(
                "wrote {} rows of '{step}' to {}",
                table.num_rows(),
                output.display()
            );
            Ok(())
        }),
        Command::Why { run, step } => open().and_then(|ws| {
            print!("{}", ws.why(&run, &step)?);
            Ok(())
        }),
        Command::Sweep { action } => open().and_then(|ws| action.run(&ws)),
        Command::Publish(args) => open().and_then(|ws| args.publish(&ws)),
        Command::Serve(args) => open().and_then(|ws| args.serve(ws)),
        Command::Cache { action } => open().and_then(|ws| {
            let objects = ws.objects();
            let text = match action {
                CacheAction::Ls => render_objects(&objects.list()?, SystemTime::now()),
                CacheAction::Gc { max_size } => render_gc(&objects.gc(max_size)?),
                CacheAction::Clear => render_gc(&objects.clear()?),
            };
            print!("{text}");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// `fuseflow calibrate`: measure, store in the workspace, print.
fn calibrate_into(ws: &Workspace) -> Result<(), Error> {
    let devices = DeviceSet::probe([
        DeviceChoice::On(DeviceKind::Cuda),
        DeviceChoice::On(DeviceKind::Wgpu),
    ]);
    let calibration = calibrate(&devices)?;
    calibration.store(ws.root())?;
    println!(
        "{}\nstored in {}",
        describe_calibration(&calibration),
        ws.root().join(CALIBRATION_FILE).display()
    );
    Ok(())
}

/// An error as the user reads it: the message, then each cause it does not
/// already quote.
fn report(e: &Error) {
    let mut chain = e.chain().into_iter();
    eprintln!("error: {}", chain.next().unwrap_or_default());
    for cause in chain {
        eprintln!("  caused by: {cause}");
    }
}

/// The calibration as people read it.
fn describe_calibration(calibration: &Calibration) -> String {
    let gpu = |p: &fuseflow::plan::GpuProfile| {
        format!(
            "{:.1} GB/s in kernels, {:.1} GB/s over the link, {:.0} µs per launch",
            p.bandwidth_gbs, p.link_gbs, p.launch_us
        )
    };
    format!(
        "calibration ({})\n  cpu:  {:.1} GB/s in kernels, {:.0} µs per launch\n  cuda: {}\n  wgpu: {}",
        calibration.source,
        calibration.cpu_gbs,
        calibration.cpu_launch_us,
        gpu(&calibration.cuda),
        gpu(&calibration.wgpu)
    )
}

/// The pipeline each of `runs` was cloned from (`fuseflow clone`), read
/// from its spec's `[origin]` once per distinct spec.
fn cloned_from(ws: &Workspace, runs: &[RunSummary]) -> Result<Vec<Option<String>>, Error> {
    let mut by_spec: HashMap<(&str, &str), Option<String>> = HashMap::new();
    runs.iter()
        .map(|r| {
            let key = (r.pipeline.as_str(), r.spec_hash.as_str());
            if let Some(origin) = by_spec.get(&key) {
                return Ok(origin.clone());
            }
            let spec = ws.runs().spec_of(&r.id)?;
            let origin = spec::origin_of(&spec).map(|o| o.pipeline);
            by_spec.insert(key, origin.clone());
            Ok(origin)
        })
        .collect()
}

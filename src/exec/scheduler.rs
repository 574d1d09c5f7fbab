//! The scheduler: runs a validated [`Graph`] on a pool of worker threads.
//!
//! A step becomes ready when all its producers have finished; ready steps are
//! handed to idle workers in pipeline order, so independent steps run at the
//! same time while dependent ones wait. Inside a step, kernels use rayon. The
//! first failure stops new steps from starting; steps already running finish,
//! and the error names the step that failed.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use crossbeam_channel::unbounded;

use super::data::Data;
use super::fused::{Member, Ran, run_group};
use super::progress::RunObserver;
use super::reuse::{self, SourceHashes, StepKey};
use crate::backend::{Device, DeviceChoice, Notes};
use crate::data::ContentHash;
use crate::data::Stream;
use crate::data::Table;
use crate::error::{Error, Result, ensure, panic_message};
use crate::pipeline::graph::{Graph, Pipeline, StepNode};
use crate::pipeline::io::source_stream;
use crate::pipeline::step::StepContext;
use crate::plan::{Calibration, DeviceSet, MaterializePolicy, PhysicalPlan, PlanOptions};
use crate::track::{PipelineRecord, RunId, RunStatus, StepRunRow};
use crate::workspace::Workspace;

/// Knobs for one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Most steps running at once (each may use all cores through rayon).
    pub max_concurrent_steps: usize,
    /// Where step outputs are cached and the run is recorded; `None` runs
    /// everything in memory and records nothing.
    pub workspace: Option<Arc<Workspace>>,
    /// Steps to run even when their cached outputs could be reused.
    pub rerun: Rerun,
    /// The pipeline's definition as recorded in the run store (the CLI passes
    /// the spec file's text); by default, the pipeline's `explain` output.
    pub spec: Option<String>,
    /// The device for steps that compute ([`Step::uses_device`](crate::Step::uses_device))
    /// and are not pinned to one; `auto` (the default) lets the planner's cost
    /// model choose per step. A device that cannot be opened leaves its steps
    /// on the CPU, with a note.
    pub device: DeviceChoice,
    /// Let devices without f64 (wgpu) compute f64 work in f32 instead of
    /// sending it to the CPU. The precision used enters the cache key and the
    /// step records.
    pub allow_f32: bool,
    /// Fuse (the default): chains of row-local steps run as one kernel
    /// wherever the tables between them are needed by nothing else (with a
    /// workspace, only under [`CachePolicy::Materialized`]), and each step's
    /// expressions run as one kernel. Unfused: every step on
    /// its own, and its expressions op by op with every intermediate
    /// materialized, to check fused results against. Fused and unfused runs
    /// agree (bit for bit on the CPU). The default is `false` when the
    /// environment variable `FUSEFLOW_FUSE` is `0`, so any test or run can be
    /// repeated unfused without changing code. Unfused outputs are cached
    /// apart.
    pub fuse: bool,
    /// Steps whose outputs must exist after the run even where fusion would
    /// compute them only in registers.
    pub keep: Vec<String>,
    /// Which outputs a run with a workspace stores.
    pub cache: CachePolicy,
    /// The devices the planner may use; `None` opens those the run's device
    /// choices need (under `auto`: every GPU backend, once per process).
    pub devices: Option<DeviceSet>,
    /// The cost model's constants; `None` reads the workspace's calibration
    /// (`fuseflow calibrate`), else the documented defaults.
    pub calibration: Option<Calibration>,
    /// Hash every source file again instead of trusting the workspace's stat
    /// cache (which takes a file with the size, modification time and inode
    /// it had when hashed to be unchanged).
    pub verify_sources: bool,
    /// Told of each step as it starts and finishes (progress display).
    pub observer: Option<Arc<dyn RunObserver>>,
    /// Bytes of data a run may keep resident: a memory-mapped source larger
    /// than this is scanned with each batch's pages released once it has
    /// been used, so that a file larger than memory streams in bounded
    /// memory; smaller ones stay mapped, so that a second pass over them
    /// costs no page faults. The default is a quarter of physical memory,
    /// or `FUSEFLOW_MEMORY_BUDGET` (bytes) when set.
    pub memory_budget: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RunOptions {
            max_concurrent_steps: cores.max(4),
            workspace: None,
            rerun: Rerun::Nothing,
            spec: None,
            device: DeviceChoice::Auto,
            allow_f32: false,
            fuse: std::env::var("FUSEFLOW_FUSE").map_or(true, |v| v != "0"),
            keep: Vec::new(),
            cache: CachePolicy::default(),
            devices: None,
            calibration: None,
            verify_sources: false,
            observer: None,
            memory_budget: default_memory_budget(),
        }
    }
}

/// A quarter of physical memory, or `FUSEFLOW_MEMORY_BUDGET` when set.
fn default_memory_budget() -> u64 {
    if let Some(bytes) = std::env::var("FUSEFLOW_MEMORY_BUDGET")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return bytes;
    }
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page)) {
        (Ok(pages), Ok(page)) if pages > 0 && page > 0 => pages * page / 4,
        _ => 4 << 30,
    }
}

impl RunOptions {
    /// Cache outputs in and record the run to `workspace`.
    pub fn with_workspace(mut self, workspace: Arc<Workspace>) -> Self {
        self.workspace = Some(workspace);
        self
    }
}

/// Which step outputs a run with a workspace stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// Every step's outputs, so that each can be reused on its own and
    /// fetched later from the store. The tables between row-local steps are
    /// then written anyway, so each such step runs as its own kernel.
    EveryStep,
    /// Only the outputs the plan materializes: the last step of each fused
    /// chain (unless the chain runs batch by batch into a fit or a writer,
    /// which then is the chain's end), outputs read by several steps, those
    /// in [`RunOptions::keep`], and results. Chains of row-local steps run
    /// fused as without a workspace. Each step inside a chain still has its
    /// own cache key (its data input is keyed by the previous member's key)
    /// and run record, so a re-run reuses the chain's output while the
    /// chain's input and steps are unchanged; the outputs inside it are not
    /// stored, and `fuseflow output` (or [`fetch_output`](crate::exec::fetch_output))
    /// computes them again from the chain's stored input. The default.
    #[default]
    Materialized,
}

impl std::str::FromStr for CachePolicy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "every-step" => Ok(CachePolicy::EveryStep),
            "materialized" => Ok(CachePolicy::Materialized),
            _ => Err(format!(
                "unknown cache policy '{s}' (use every-step or materialized)"
            )),
        }
    }
}

/// Which steps to run even when their cached outputs could be reused. Their
/// dependents then key on the new outputs: when those are identical, the
/// dependents still hit the cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Rerun {
    /// Reuse whatever can be reused.
    #[default]
    Nothing,
    /// Run every step.
    All,
    /// Run these steps (by name).
    Steps(Vec<String>),
}

impl Rerun {
    fn includes(&self, step: &str) -> bool {
        match self {
            Rerun::Nothing => false,
            Rerun::All => true,
            Rerun::Steps(names) => names.iter().any(|n| n == step),
        }
    }
}

/// Whether a step's outputs came from the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// No workspace, or reuse is off for the step (or it has side effects).
    Off,
    /// The step ran: nothing reusable was cached, or a re-run was asked for.
    Miss,
    /// The outputs of an earlier run were reused.
    Hit {
        /// The run that computed them.
        from: RunId,
    },
}

/// What happened to one step in a run.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// The step's kind.
    pub kind: String,
    /// When the step started, from the start of the run.
    pub started: Duration,
    /// How long the step ran (for a cache hit: how long finding it took).
    pub duration: Duration,
    /// Rows in each output.
    pub rows: Vec<usize>,
    /// Bytes of the rows of each output (shared buffers counted per output,
    /// for the rows it holds).
    pub bytes: Vec<usize>,
    /// Whether the outputs were reused.
    pub cache: CacheUse,
    /// Things the user should know, e.g. a corrupt cached object that was
    /// removed and recomputed, or a fallback to the CPU.
    pub notes: Vec<String>,
    /// The device the step was placed on (its kernels may still have fallen
    /// back to the CPU; the notes say so).
    pub device: String,
}

/// The result of running a pipeline: every output of every step, and a report per step.
///
/// With a workspace, outputs reused from the cache are loaded when first asked for.
#[derive(Debug)]
pub struct RunOutput {
    outputs: HashMap<String, OutputSlot>,
    workspace: Option<Arc<Workspace>>,
    /// The run's id in the workspace's run store (`None` without a workspace).
    pub run_id: Option<RunId>,
    /// One report per step, in the order the steps finished.
    pub steps: Vec<StepReport>,
    /// The plan the run followed: devices, fused groups, estimated costs.
    pub plan: PhysicalPlan,
    /// Wall time of the whole run.
    pub duration: Duration,
}

/// One output of a run: in memory, a stream to collect, or a content hash
/// to load it by.
#[derive(Debug)]
struct OutputSlot {
    table: OnceLock<Table>,
    stream: Option<Stream>,
    hash: Option<ContentHash>,
    /// The step this output's producer ran fused into (so it was never materialized).
    fused_into: Option<String>,
}

impl RunOutput {
    /// An output by reference: `"step.output"`, or `"step"` for a step with one output.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] listing the available outputs when there is no such output.
    pub fn output(&self, reference: &str) -> Result<&Table> {
        let key = self.resolve(reference)?;
        let slot = &self.outputs[key];
        if let Some(table) = slot.table.get() {
            return Ok(table);
        }
        if let Some(stream) = &slot.stream {
            let table = stream.collect()?;
            return Ok(slot.table.get_or_init(|| table));
        }
        if let Some(into) = &slot.fused_into {
            return Err(Error::InvalidParameter {
                step: reference.to_string(),
                message: format!(
                    "output '{key}' was not materialized: its step ran fused into '{into}' as one kernel; list the step in RunOptions::keep to keep its output"
                ),
            });
        }
        let (Some(ws), Some(hash)) = (&self.workspace, slot.hash) else {
            return Err(Error::Internal(format!(
                "output '{key}' has neither data nor a hash"
            )));
        };
        let table = ws.load_output(&hash, key, "the cached output")?;
        Ok(slot.table.get_or_init(|| table))
    }

    /// The content hash of an output, when the run had a workspace.
    ///
    /// # Errors
    /// As [`RunOutput::output`] for an unknown output.
    pub fn output_hash(&self, reference: &str) -> Result<Option<ContentHash>> {
        Ok(self.outputs[self.resolve(reference)?].hash)
    }

    /// Every output's reference (`"step.output"`), sorted.
    pub fn output_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.outputs.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn resolve<'a>(&'a self, reference: &'a str) -> Result<&'a str> {
        if self.outputs.contains_key(reference) {
            return Ok(reference);
        }
        let matches: Vec<&String> = self
            .outputs
            .keys()
            .filter(|k| k.split_once('.').is_some_and(|(s, _)| s == reference))
            .collect();
        if let [only] = matches.as_slice() {
            return Ok(only);
        }
        Err(Error::InvalidParameter {
            step: reference.to_string(),
            message: format!(
                "no output '{reference}' in this run; outputs are: {}",
                self.output_names().join(", ")
            ),
        })
    }
}

impl Pipeline {
    /// Validate and run with default options.
    ///
    /// # Errors
    /// Validation errors, or the first step failure.
    pub fn run(&self) -> Result<RunOutput> {
        self.run_with(&RunOptions::default())
    }

    /// Validate and run.
    ///
    /// # Errors
    /// Validation errors, or the first step failure.
    pub fn run_with(&self, options: &RunOptions) -> Result<RunOutput> {
        let graph = self.validate()?;
        execute(self, &graph, options)
    }

    /// The physical plan a run with `options` would follow: fused groups,
    /// the device of each step and why, transfers and estimated costs.
    ///
    /// # Errors
    /// Validation errors, or an unreadable calibration in the workspace.
    pub fn plan(&self, options: &RunOptions) -> Result<PhysicalPlan> {
        let graph = self.validate()?;
        Ok(plan_run(self, &graph, options)?.0)
    }
}

/// Plan a run: the devices its choices need, the calibration, the policy.
fn plan_run(
    pipeline: &Pipeline,
    graph: &Graph,
    options: &RunOptions,
) -> Result<(PhysicalPlan, DeviceSet)> {
    let devices = match &options.devices {
        Some(set) => set.clone(),
        None => {
            let choices = pipeline
                .nodes
                .iter()
                .filter(|n| n.step.uses_device())
                .map(|n| n.device.unwrap_or(options.device));
            DeviceSet::probe(choices)
        }
    };
    // Configured before planning, so that placement sees what each device
    // will compute (f64 accepted in f32 or not).
    let devices = devices.map(|d| d.allowing_f32(options.allow_f32).fusing(options.fuse));
    let calibration = match (&options.calibration, &options.workspace) {
        (Some(c), _) => c.clone(),
        (None, Some(ws)) => Calibration::load(ws.root())?,
        (None, None) => Calibration::default(),
    };
    let plan_options = PlanOptions {
        device: options.device,
        calibration,
        devices,
        policy: MaterializePolicy {
            cache_all: options.workspace.is_some() && options.cache == CachePolicy::EveryStep,
            keep: options.keep.clone(),
        },
        fuse: options.fuse,
        memory_budget: options.memory_budget,
    };
    let plan = PhysicalPlan::build(pipeline, graph, &plan_options);
    Ok((plan, plan_options.devices))
}

/// Stack size of step worker threads.
const WORKER_STACK: usize = 32 << 20;

/// An input handed to a step: its data when in memory, and with a workspace
/// its content hash (to key the step, and to load the data if the step runs).
struct Input {
    producer: usize,
    table: Option<Data>,
    hash: Option<ContentHash>,
}

struct Job {
    step: usize,
    /// The step's inputs; for the tail of a fused group, the head's data input.
    inputs: Vec<Input>,
    /// For the tail of a fused group: each member, head first, with its side
    /// inputs (all but its data input).
    fused: Vec<(usize, Vec<Input>)>,
    /// With a workspace: whether a cached result may stand in for running.
    reuse: bool,
    /// Whether the input schemas are checked only now (see
    /// [`Step::schema_depends_on_data`](crate::Step::schema_depends_on_data)).
    check_schemas: bool,
}

struct Done {
    step: usize,
    started: Duration,
    duration: Duration,
    keys: Keys,
    result: Result<Outcome>,
}

/// The cache keys a job computed (with a workspace).
#[derive(Default)]
struct Keys {
    /// The step's own key; for the tail of a fused group, keyed through the
    /// chain.
    own: Option<StepKey>,
    /// For the tail of a fused group: the members before it, with their keys.
    members: Vec<(usize, StepKey)>,
}

enum Outcome {
    /// The step ran; with a workspace, its outputs were stored under `hashes`.
    Ran {
        tables: Vec<Data>,
        hashes: Option<Vec<ContentHash>>,
        /// What the step noted while running (a fallback to the CPU).
        notes: Vec<String>,
        /// For a fused group: the rows that flowed into a sink, and the
        /// members' outputs it never held.
        group: Option<Ran>,
    },
    /// An earlier run's outputs stand in.
    Reused(Box<StepRunRow>),
    /// A cached input could not be loaded: its producer must run again.
    InputLost { producer: usize, note: String },
}

/// What the coordinator knows of a finished step's outputs.
#[derive(Default)]
struct Produced {
    tables: Option<Vec<Data>>,
    hashes: Option<Vec<ContentHash>>,
}

/// Run one job on a worker: key it, reuse a cached result when allowed, else
/// load its inputs, run it and store its outputs.
fn run_job(
    nodes: &[StepNode],
    device: &Device,
    ws: Option<&Workspace>,
    options: &RunOptions,
    job: Job,
    keys: &mut Keys,
) -> Result<Outcome> {
    let memory_budget = options.memory_budget;
    let node = &nodes[job.step];
    if let Some(ws) = ws {
        let sources = SourceHashes {
            ws,
            verify: options.verify_sources,
        };
        let own = keys
            .own
            .insert(key_job(nodes, device, sources, &job, &mut keys.members)?);
        if job.reuse
            && let Some(row) = reuse::find_reusable(ws, &own.key)?
        {
            return Ok(Outcome::Reused(Box::new(row)));
        }
    }
    let mut inputs = Vec::with_capacity(job.inputs.len());
    for input in job.inputs {
        match load_input(input, ws)? {
            Ok(t) => inputs.push(t),
            Err(lost) => return Ok(lost),
        }
    }
    let mut members = Vec::with_capacity(job.fused.len());
    for (m, side_inputs) in job.fused {
        let mut side = Vec::with_capacity(side_inputs.len());
        for input in side_inputs {
            match load_input(input, ws)? {
                Ok(t) => side.push(t.table()?),
                Err(lost) => return Ok(lost),
            }
        }
        members.push(Member::of(&nodes[m], side));
    }
    let name = &node.name;
    let notes = Notes::default();
    let ran = catch_unwind(AssertUnwindSafe(|| {
        compute(
            node,
            &members,
            inputs,
            job.check_schemas,
            device,
            &notes,
            memory_budget,
        )
    }))
    .unwrap_or_else(|panic| {
        Err(Error::Execution {
            step: name.clone(),
            message: format!("panicked: {}", panic_message(&panic)),
        })
    })
    .map_err(|e| e.in_step(name));
    let (tables, group) = ran?;
    ensure!(
        tables.len() == node.step.outputs().len(),
        Error::Internal(format!(
            "step '{name}' returned {} outputs, it declares {}",
            tables.len(),
            node.step.outputs().len()
        ))
    );
    let hashes = match ws {
        Some(ws) => Some(
            reuse::store_outputs(ws, node, keys.own.as_ref(), &tables).map_err(|e| {
                Error::Execution {
                    step: name.clone(),
                    message: format!("its output could not be cached: {e}"),
                }
            })?,
        ),
        None => None,
    };
    Ok(Outcome::Ran {
        tables,
        hashes,
        notes: notes.take(),
        group,
    })
}

/// Compute a job's outputs from its loaded inputs: a file read as a stream,
/// a fused group, a step streaming its data input, or a step given tables.
fn compute(
    node: &StepNode,
    members: &[Member],
    inputs: Vec<Data>,
    check_schemas: bool,
    device: &Device,
    notes: &Notes,
    memory_budget: u64,
) -> Result<(Vec<Data>, Option<Ran>)> {
    let ctx = StepContext::new(&node.name).on(device, notes);
    // A stream read by a step that uses only some of its columns decodes
    // only those, where its source can (Parquet).
    // (A fused group narrows its own input: see `run_group`.)
    let mut inputs = inputs;
    if let (true, Some(Data::Stream(stream)), Some(columns)) =
        (members.is_empty(), inputs.first(), node.step.columns_read())
    {
        let schema = stream.schema();
        let needed: Vec<bool> = schema
            .fields()
            .iter()
            .map(|f| columns.contains(f.name()))
            .collect();
        inputs[0] = Data::Stream(stream.reading_only(&needed)?);
    }
    if !members.is_empty() {
        let mut ran = run_group(members, &inputs[0], device, notes)?;
        let tables = std::mem::take(&mut ran.outputs);
        return Ok((tables.into_iter().map(Data::Table).collect(), Some(ran)));
    }
    if let Some(file) = node.step.source_file()
        && let Some(stream) = source_stream(&file, memory_budget)?
    {
        return Ok((vec![Data::Stream(stream)], None));
    }
    if check_schemas {
        let schemas: Vec<SchemaRef> = inputs.iter().map(|d| Arc::clone(d.schema())).collect();
        node.planned_schemas(&schemas)?;
    }
    let tables = match inputs.split_first() {
        Some((Data::Stream(data), side)) if node.step.streams_input() => {
            let side = side.iter().map(Data::table).collect::<Result<Vec<_>>>()?;
            node.step.run_stream(ctx, data, &side)?
        }
        _ => {
            let inputs = inputs.iter().map(Data::table).collect::<Result<Vec<_>>>()?;
            node.step.run(ctx, &inputs)?
        }
    };
    Ok((tables.into_iter().map(Data::Table).collect(), None))
}

/// A job's cache key. A fused group's members are keyed in turn, each
/// member's data input by the previous member's key; the keys of the members
/// before the tail go to `members`, the tail's is returned.
fn key_job(
    nodes: &[StepNode],
    device: &Device,
    sources: SourceHashes<'_>,
    job: &Job,
    members: &mut Vec<(usize, StepKey)>,
) -> Result<StepKey> {
    let inputs = hashes(&job.inputs)?;
    let mut previous: Option<(usize, StepKey)> = None;
    for (m, side) in &job.fused {
        let side = hashes(side)?;
        let key = match &previous {
            None => StepKey::new(&nodes[*m], &[&inputs[..], &side].concat(), device, sources)?,
            Some((p, before)) => {
                StepKey::fused(&nodes[*m], &nodes[*p].name, before, &side, device, sources)?
            }
        };
        members.extend(previous.replace((*m, key)));
    }
    match previous {
        Some((_, tail)) => Ok(tail),
        None => StepKey::new(&nodes[job.step], &inputs, device, sources),
    }
}

/// The content hashes of inputs in a run with a workspace.
fn hashes(inputs: &[Input]) -> Result<Vec<ContentHash>> {
    inputs
        .iter()
        .map(|i| {
            i.hash
                .ok_or_else(|| Error::Internal("an input without a hash in a cached run".into()))
        })
        .collect()
}

/// An input's table: in memory, or loaded from the workspace. `Ok(Err(_))`
/// says its cached object is gone, so its producer must run again.
fn load_input(input: Input, ws: Option<&Workspace>) -> Result<std::result::Result<Data, Outcome>> {
    let found = match (input.table, input.hash, ws) {
        (Some(t), _, _) => Ok(t),
        (None, Some(hash), Some(ws)) => ws.load(&hash)?.found().map(Data::Table),
        _ => {
            return Err(Error::Internal(
                "an input with neither data nor a workspace".into(),
            ));
        }
    };
    Ok(found.map_err(|why| Outcome::InputLost {
        producer: input.producer,
        note: format!("a cached input {why}"),
    }))
}

fn execute(pipeline: &Pipeline, graph: &Graph, options: &RunOptions) -> Result<RunOutput> {
    let nodes = &pipeline.nodes;
    let ws = options.workspace.as_deref();
    // Planned first: a run that cannot be planned never starts, so no record
    // of it is left behind as running.
    let (plan, devices) = plan_run(pipeline, graph, options)?;
    let run_id = match ws {
        Some(ws) => Some(begin_run(pipeline, ws, options)?),
        None => None,
    };
    if let Some(o) = &options.observer {
        o.run_started(nodes.len());
    }
    let mut result = schedule(pipeline, graph, options, &plan, &devices, run_id.as_ref());
    if let Some(o) = &options.observer {
        o.run_finished();
    }
    if let (Some(ws), Some(id)) = (ws, &run_id) {
        // Succeeded only once its objects are durable: one batched sync.
        if result.is_ok()
            && let Err(e) = ws.sync()
        {
            result = Err(e);
        }
        let (status, error) = match &result {
            Ok(_) => (RunStatus::Succeeded, None),
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        ws.runs().finish_run(id, status, error.as_deref())?;
    }
    let (produced, steps, duration) = result?;
    // The tail of the group a step fused into, for steps whose outputs were never materialized.
    let fused_into = |step: usize| {
        let node = plan.node(step)?;
        let group = &plan.groups[node.group?];
        (group.tail() != step).then(|| nodes[group.tail()].name.clone())
    };
    let mut outputs = HashMap::new();
    for (i, (node, produced)) in nodes.iter().zip(produced).enumerate() {
        for (o, port) in node.step.outputs().iter().enumerate() {
            let (table, stream) = match produced.tables.as_ref().map(|t| &t[o]) {
                Some(Data::Table(t)) => (OnceLock::from(t.clone()), None),
                Some(Data::Stream(s)) => (OnceLock::new(), Some(s.clone())),
                None => (OnceLock::new(), None),
            };
            let hash = produced.hashes.as_ref().map(|h| h[o]);
            let slot = OutputSlot {
                table,
                stream,
                hash,
                fused_into: fused_into(i),
            };
            outputs.insert(format!("{}.{port}", node.name), slot);
        }
    }
    Ok(RunOutput {
        outputs,
        workspace: options.workspace.clone(),
        run_id,
        steps,
        plan,
        duration,
    })
}

fn begin_run(pipeline: &Pipeline, ws: &Workspace, options: &RunOptions) -> Result<RunId> {
    let spec = match &options.spec {
        Some(spec) => spec.clone(),
        None => pipeline.explain()?,
    };
    let params = match &options.rerun {
        Rerun::Nothing => String::new(),
        Rerun::All => "rerun = \"all\"".to_string(),
        Rerun::Steps(steps) => format!("rerun = {steps:?}"),
    };
    ws.runs().begin_run(
        &PipelineRecord {
            name: pipeline.name().to_string(),
            spec_hash: blake3::hash(spec.as_bytes()).to_hex().to_string(),
            spec,
        },
        &params,
    )
}

/// The device of each step as the plan places it; a note on each step that
/// computes where `auto` chose or where the asked-for device was missing.
fn devices_of(
    nodes: &[StepNode],
    default: DeviceChoice,
    plan: &PhysicalPlan,
    set: &DeviceSet,
    notes: &mut [Vec<String>],
) -> Vec<Device> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let cpu = || {
                set.get(crate::backend::DeviceKind::Cpu)
                    .cloned()
                    .unwrap_or_else(Device::cpu)
            };
            let Some(placed) = plan.node(i).map(|n| &n.placement) else {
                return cpu();
            };
            let asked = node.device.unwrap_or(default);
            if node.step.uses_device()
                && (asked == DeviceChoice::Auto || placed.device.name() != asked.name())
            {
                notes[i].push(format!("placed: {}", placed.reason));
            }
            set.get(placed.device).cloned().unwrap_or_else(cpu)
        })
        .collect()
}

/// Start the steps waiting on `step` whose inputs are now all there.
fn release(
    consumers: impl IntoIterator<Item = usize>,
    waiting: &mut [usize],
    ready: &mut BTreeSet<(usize, usize)>,
    position: &[usize],
) {
    for c in consumers {
        waiting[c] -= 1;
        if waiting[c] == 0 {
            ready.insert((position[c], c));
        }
    }
}

/// Whether a step's effects cannot be checked, so that it runs every time
/// (a step that only writes files is skipped while they hold what it wrote).
fn runs_every_time(node: &StepNode) -> bool {
    node.step.has_side_effects() && node.step.written_files().is_empty()
}

/// Why a step must run although a cached result could stand in, if it must.
fn reason_to_run(node: &StepNode, rerun: &Rerun) -> Option<&'static str> {
    if runs_every_time(node) {
        Some("runs every time: it has effects outside the workspace")
    } else if !node.reuse {
        Some("runs every time: reuse is off for this step")
    } else if rerun.includes(&node.name) {
        Some("re-run on request")
    } else {
        None
    }
}

type Scheduled = (Vec<Produced>, Vec<StepReport>, Duration);

fn schedule(
    pipeline: &Pipeline,
    graph: &Graph,
    options: &RunOptions,
    plan: &PhysicalPlan,
    set: &DeviceSet,
    run: Option<&RunId>,
) -> Result<Scheduled> {
    let nodes = &pipeline.nodes;
    let n = nodes.len();
    let ws = options.workspace.as_deref();
    let position: Vec<usize> = {
        let mut p = vec![0; n];
        graph
            .order
            .iter()
            .enumerate()
            .for_each(|(pos, &i)| p[i] = pos);
        p
    };
    let mut waiting: Vec<usize> = graph.edges.iter().map(Vec::len).collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, inputs) in graph.edges.iter().enumerate() {
        for &(p, _) in inputs {
            consumers[p].push(i);
        }
    }
    // Steps that must run rather than reuse: asked for, or whose cached
    // outputs turned out to be lost; and the steps waiting on such a re-run.
    let reasons: Vec<Option<&str>> = nodes
        .iter()
        .map(|node| ws.and(reason_to_run(node, &options.rerun)))
        .collect();
    let mut must_run: Vec<bool> = reasons.iter().map(Option::is_some).collect();
    let mut notes: Vec<Vec<String>> = reasons
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect();
    let devices: Vec<Device> = devices_of(nodes, options.device, plan, set, &mut notes);
    // Fused groups: members before the tail complete without running (the
    // tail's job computes them), the tail runs the whole chain.
    let mut fused_into: Vec<Option<usize>> = vec![None; n];
    let mut group_at_tail: Vec<Option<&[usize]>> = vec![None; n];
    for group in &plan.groups {
        let tail = group.tail();
        for &m in &group.members[..group.members.len() - 1] {
            fused_into[m] = Some(tail);
        }
        group_at_tail[tail] = Some(&group.members);
        let others: Vec<String> = group.members[..group.members.len() - 1]
            .iter()
            .map(|&m| format!("'{}'", nodes[m].name))
            .collect();
        notes[tail].push(if group.sink {
            format!(
                "took its input batch by batch from the kernel of {}",
                others.join(", ")
            )
        } else {
            format!("ran fused with {} as one kernel", others.join(", "))
        });
    }
    let mut blocked_on: Vec<Vec<usize>> = vec![Vec::new(); n];
    let observer: Option<&dyn RunObserver> = options.observer.as_deref();
    let start = Instant::now();
    let (job_tx, job_rx) = unbounded::<Job>();
    let (done_tx, done_rx) = unbounded::<Done>();
    let workers = options.max_concurrent_steps.clamp(1, n.max(1));

    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (job_rx, done_tx, devices) = (job_rx.clone(), done_tx.clone(), &devices);
            // Deep expression trees recurse while being type-checked and planned; give
            // workers the room a main thread has.
            let spawned = std::thread::Builder::new()
                .name("fuseflow-step".into())
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, move || {
                    for job in job_rx {
                        let step = job.step;
                        let started = start.elapsed();
                        let mut keys = Keys::default();
                        let result = run_job(nodes, &devices[step], ws, options, job, &mut keys);
                        let duration = start.elapsed() - started;
                        let done = Done {
                            step,
                            started,
                            duration,
                            keys,
                            result,
                        };
                        if done_tx.send(done).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                return Err(Error::Internal(format!(
                    "cannot start a worker thread: {e}"
                )));
            }
        }
        drop(done_tx);

        let mut produced: Vec<Produced> = (0..n).map(|_| Produced::default()).collect();
        let mut ready: BTreeSet<(usize, usize)> = (0..n)
            .filter(|&i| waiting[i] == 0)
            .map(|i| (position[i], i))
            .collect();
        let mut running = 0usize;
        let mut reports = Vec::with_capacity(n);
        let mut failure: Option<Error> = None;
        loop {
            while failure.is_none() && running < workers {
                let Some((_, i)) = ready.pop_first() else {
                    break;
                };
                if let Some(tail) = fused_into[i] {
                    let mut notes = std::mem::take(&mut notes[i]);
                    notes.push(format!(
                        "fused into '{}' (one kernel); its output is not materialized (keep the step, or cache every step, to store it)",
                        nodes[tail].name
                    ));
                    reports.push(StepReport {
                        name: nodes[i].name.clone(),
                        kind: nodes[i].step.kind().to_string(),
                        started: start.elapsed(),
                        duration: Duration::ZERO,
                        rows: Vec::new(),
                        bytes: Vec::new(),
                        cache: CacheUse::Off,
                        notes,
                        device: devices[i].to_string(),
                    });
                    if let (Some(o), Some(report)) = (observer, reports.last()) {
                        o.step_finished(report);
                    }
                    release(consumers[i].clone(), &mut waiting, &mut ready, &position);
                    continue;
                }
                let input = |(p, o): (usize, usize)| Input {
                    producer: p,
                    table: produced[p].tables.as_ref().map(|t| t[o].clone()),
                    hash: produced[p].hashes.as_ref().map(|h| h[o]),
                };
                let (inputs, fused): (Vec<Input>, Vec<(usize, Vec<Input>)>) = match group_at_tail[i]
                {
                    None => (
                        graph.edges[i].iter().copied().map(input).collect(),
                        Vec::new(),
                    ),
                    Some(members) => (
                        vec![input(graph.edges[members[0]][0])],
                        members
                            .iter()
                            .map(|&m| (m, graph.edges[m][1..].iter().copied().map(input).collect()))
                            .collect(),
                    ),
                };
                // Inputs whose schemas were unknown when planning are checked now.
                // A fused group is not: its job holds the head's data input, not
                // the tail's inputs, and the group type-checks every member
                // against the real schemas as it composes them.
                let check_schemas = group_at_tail[i].is_none()
                    && graph.edges[i]
                        .iter()
                        .any(|&(p, o)| graph.schemas[p][o].is_none());
                let reuse = !must_run[i] && fused.iter().all(|&(m, _)| !must_run[m]);
                let job = Job {
                    step: i,
                    inputs,
                    fused,
                    reuse,
                    check_schemas,
                };
                job_tx
                    .send(job)
                    .map_err(|_| Error::Internal("worker pool stopped".into()))?;
                if let Some(o) = observer {
                    o.step_started(&nodes[i].name, nodes[i].step.kind());
                }
                running += 1;
            }
            if running == 0 {
                break;
            }
            let done = done_rx
                .recv()
                .map_err(|_| Error::Internal("worker pool stopped".into()))?;
            running -= 1;
            let i = done.step;
            let node = &nodes[i];
            let outcome = match done.result {
                Ok(outcome) => outcome,
                Err(e) => {
                    if let (Some(ws), Some(run)) = (ws, run) {
                        reuse::record_failure(
                            ws,
                            run,
                            node,
                            &devices[i],
                            done.keys.own.as_ref(),
                            done.duration,
                            &e,
                        )?;
                    }
                    failure.get_or_insert(e);
                    continue;
                }
            };
            let cache = match &outcome {
                Outcome::Reused(row) => CacheUse::Hit {
                    from: reuse::producer(row),
                },
                _ if ws.is_none() || !node.reuse || runs_every_time(node) => CacheUse::Off,
                _ => CacheUse::Miss,
            };
            // The rows each member of a fused group passed on: the tail's
            // output, or what flowed into a sink.
            let mut member_rows: Option<Vec<usize>> = None;
            let (rows, bytes) = match outcome {
                Outcome::InputLost { producer, note } => {
                    // Run the producer again, then this step.
                    notes[producer].push(format!("recomputed: {note}"));
                    must_run[producer] = true;
                    produced[producer] = Produced::default();
                    blocked_on[producer].push(i);
                    waiting[i] += 1;
                    ready.insert((position[producer], producer));
                    continue;
                }
                Outcome::Ran {
                    tables,
                    hashes,
                    notes: ran_notes,
                    group,
                } => {
                    notes[i].extend(ran_notes);
                    if let (Some(ws), Some(run), Some(key), Some(h)) =
                        (ws, run, &done.keys.own, &hashes)
                    {
                        let provenance = reuse::Provenance::Ran {
                            tables: &tables,
                            hashes: h,
                        };
                        reuse::record_step(
                            ws,
                            run,
                            node,
                            key,
                            provenance,
                            done.duration,
                            notes[i].clone(),
                        )?;
                    }
                    let (rows, bytes) = tables.iter().map(Data::size).unzip();
                    produced[i] = Produced {
                        tables: Some(tables),
                        hashes,
                    };
                    if let (Some(group), Some(members)) = (group, group_at_tail[i]) {
                        member_rows = group.piped_rows.map(|r| vec![r]);
                        // Outputs never held stay fetchable, computed again.
                        for (m, stream) in group.unheld {
                            produced[members[m]].tables = Some(vec![Data::Stream(stream)]);
                        }
                    }
                    (rows, bytes)
                }
                Outcome::Reused(row) => {
                    let (Some(ws), Some(run), Some(key)) = (ws, run, &done.keys.own) else {
                        return Err(Error::Internal("a cache hit without a workspace".into()));
                    };
                    reuse::record_step(
                        ws,
                        run,
                        node,
                        key,
                        reuse::Provenance::Reused {
                            row: &row,
                            schemas: &graph.schemas[i],
                        },
                        done.duration,
                        notes[i].clone(),
                    )?;
                    produced[i] = Produced {
                        tables: None,
                        hashes: Some(reuse::output_hashes(&row)?),
                    };
                    if group_at_tail[i].is_some() && node.step.row_local().is_none() {
                        // A sink's record does not say what flowed into it.
                        member_rows = Some(Vec::new());
                    }
                    match row.record.sizes.as_slice() {
                        [] => (
                            vec![row.record.rows as usize],
                            vec![row.record.bytes as usize],
                        ),
                        sizes => sizes.iter().map(|&(r, b)| (r as usize, b as usize)).unzip(),
                    }
                }
            };
            record_members(
                ws.zip(run),
                nodes,
                group_at_tail[i].unwrap_or_default(),
                &done.keys.members,
                &cache,
                member_rows.as_deref().unwrap_or(&rows),
                &mut reports,
            )?;
            // A step run again after its cached outputs were lost replaces
            // its earlier report.
            reports.retain(|r: &StepReport| r.name != node.name);
            reports.push(StepReport {
                name: node.name.clone(),
                kind: node.step.kind().to_string(),
                started: done.started,
                duration: done.duration,
                rows,
                bytes,
                cache,
                notes: std::mem::take(&mut notes[i]),
                device: devices[i].to_string(),
            });
            if let (Some(o), Some(report)) = (observer, reports.last()) {
                o.step_finished(report);
            }
            // A step re-run because its output was lost releases only the
            // steps that were waiting for it; the others already have it.
            let released = if blocked_on[i].is_empty() {
                consumers[i].clone()
            } else {
                std::mem::take(&mut blocked_on[i])
            };
            release(released, &mut waiting, &mut ready, &position);
        }
        drop(job_tx);
        match failure {
            Some(e) => Err(e),
            None => Ok((produced, reports, start.elapsed())),
        }
    })
}

/// Update the reports of the members of a fused group before its tail
/// (`group`), now that the tail ran or was reused (with `cache` and `rows`),
/// and with a workspace record them (`members`: each with its key).
fn record_members(
    recording: Option<(&Workspace, &RunId)>,
    nodes: &[StepNode],
    group: &[usize],
    members: &[(usize, StepKey)],
    cache: &CacheUse,
    rows: &[usize],
    reports: &mut [StepReport],
) -> Result<()> {
    let reused_from = match cache {
        CacheUse::Hit { from } => Some(from.clone()),
        _ => None,
    };
    for &m in group.split_last().map_or(&[][..], |(_, before)| before) {
        let node = &nodes[m];
        let Some(report) = reports.iter_mut().find(|r| r.name == node.name) else {
            return Err(Error::Internal(format!(
                "fused step '{}' has no report",
                node.name
            )));
        };
        report.rows = rows.to_vec();
        let Some((ws, run)) = recording else {
            continue;
        };
        if let (Some(from), true) = (&reused_from, rows.is_empty()) {
            // Reused from a sink's group, whose record does not say what
            // flowed through: the member's own earlier record does.
            let earlier = ws.runs().step_run(from.as_str(), &node.name)?;
            report.rows = vec![earlier.record.rows as usize];
        }
        report.cache = match &reused_from {
            Some(from) => CacheUse::Hit { from: from.clone() },
            None if node.reuse => CacheUse::Miss,
            None => CacheUse::Off,
        };
        let key = members
            .iter()
            .find_map(|(k, key)| (*k == m).then_some(key))
            .ok_or_else(|| Error::Internal(format!("fused step '{}' has no key", node.name)))?;
        let provenance = reuse::Provenance::Fused {
            rows: report.rows.iter().sum::<usize>() as u64,
            reused_from: reused_from.clone(),
        };
        reuse::record_step(
            ws,
            run,
            node,
            key,
            provenance,
            Duration::ZERO,
            report.notes.clone(),
        )?;
    }
    Ok(())
}

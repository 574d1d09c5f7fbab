//! One job: a step (or a fused group, by its tail) as a worker runs it.
//!
//! With a workspace the worker keys the job and, where allowed, reuses an
//! earlier run's outputs; else it loads the job's inputs (in memory, or from
//! the workspace by content hash), computes its outputs on its device and
//! stores them. A panicking step becomes an error naming it; an input whose
//! stored object is gone becomes [`Outcome::InputLost`], for the scheduler to
//! run its producer again.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use crossbeam_channel::{Receiver, Sender};

use super::data::Data;
use super::fused::{Member, Ran, run_group};
use super::options::RunOptions;
use super::pushdown::pushed_down;
use super::reuse::{self, SourceHashes, StepKey};
use super::siblings;
use crate::backend::{Device, Notes};
use crate::data::ContentHash;
use crate::error::{Error, Result, ensure, panic_message};
use crate::pipeline::graph::StepNode;
use crate::pipeline::io::source_stream;
use crate::pipeline::step::StepContext;
use crate::track::StepRunRow;
use crate::workspace::Workspace;

/// An input handed to a step: its data when in memory, and with a workspace
/// its content hash (to key the step, and to load the data if the step runs).
pub(super) struct Input {
    /// The step that produced it.
    pub(super) producer: usize,
    pub(super) table: Option<Data>,
    pub(super) hash: Option<ContentHash>,
}

/// A step for a worker to run.
pub(super) struct Job {
    pub(super) step: usize,
    /// The device the plan placed the step on.
    pub(super) device: Device,
    /// The step's inputs; for the tail of a fused group, the head's data input.
    pub(super) inputs: Vec<Input>,
    /// For the tail of a fused group: each member, head first, with its side
    /// inputs (all but its data input).
    pub(super) fused: Vec<(usize, Vec<Input>)>,
    /// With a workspace: whether a cached result may stand in for running.
    pub(super) reuse: bool,
    /// The step's siblings that train with it in one pass over the same
    /// inputs (see [`super::siblings`]), each with whether a cached result
    /// may stand in for it.
    pub(super) together: Vec<(usize, bool)>,
    /// Whether the input schemas are checked only now (see
    /// [`Step::schema_depends_on_data`](crate::Step::schema_depends_on_data)).
    pub(super) check_schemas: bool,
}

/// A finished job, as a worker hands it back.
pub(super) struct Done {
    pub(super) step: usize,
    /// When the job started, from the start of the run.
    pub(super) started: Duration,
    pub(super) duration: Duration,
    pub(super) keys: Keys,
    pub(super) result: Result<Outcome>,
}

/// The cache keys a job computed (with a workspace).
#[derive(Default)]
pub(super) struct Keys {
    /// The step's own key; for the tail of a fused group, keyed through the
    /// chain.
    pub(super) own: Option<StepKey>,
    /// For the tail of a fused group: the members before it, with their keys.
    pub(super) members: Vec<(usize, StepKey)>,
}

/// How a job that did not fail ended.
pub(super) enum Outcome {
    /// The step ran.
    Ran(Computed),
    /// An earlier run's outputs stand in.
    Reused(Box<StepRunRow>),
    /// A cached input could not be loaded: its producer must run again.
    InputLost { producer: usize, note: String },
}

/// What a step that ran computed.
pub(super) struct Computed {
    pub(super) tables: Vec<Data>,
    /// With a workspace: the hashes its outputs were stored under.
    pub(super) hashes: Option<Vec<ContentHash>>,
    /// What the step noted while running (a fallback to the CPU).
    pub(super) notes: Vec<String>,
    /// For a fused group: the rows that flowed into a sink, and the
    /// members' outputs it never held.
    pub(super) group: Option<Ran>,
}

/// What the scheduler knows of a finished step's outputs.
#[derive(Default)]
pub(super) struct Produced {
    /// The outputs in memory (none for a cache hit, until loaded).
    pub(super) tables: Option<Vec<Data>>,
    /// With a workspace: the outputs' content hashes.
    pub(super) hashes: Option<Vec<ContentHash>>,
}

/// A worker: runs the jobs it is sent until the scheduler hangs up, timing
/// each from `start` (the start of the run). A job hands back one [`Done`]
/// per step it ran: its own, and its siblings'.
pub(super) fn work(
    nodes: &[StepNode],
    ws: Option<&Workspace>,
    options: &RunOptions,
    start: Instant,
    jobs: Receiver<Job>,
    done: Sender<Vec<Done>>,
) {
    for job in jobs {
        let started = start.elapsed();
        let finished = match job.together.is_empty() {
            true => {
                let (step, mut keys) = (job.step, Keys::default());
                let result = run_job(nodes, ws, options, job, &mut keys);
                vec![(step, keys, result, start.elapsed() - started)]
            }
            false => siblings::run(nodes, ws, options, job),
        };
        let finished = (finished.into_iter())
            .map(|(step, keys, result, duration)| Done {
                step,
                started,
                duration,
                keys,
                result,
            })
            .collect();
        if done.send(finished).is_err() {
            return;
        }
    }
}

/// Run one job: key it, reuse a cached result when allowed, else load its
/// inputs, run it and store its outputs.
fn run_job(
    nodes: &[StepNode],
    ws: Option<&Workspace>,
    options: &RunOptions,
    job: Job,
    keys: &mut Keys,
) -> Result<Outcome> {
    match reusable(nodes, ws, options, &job, (job.step, job.reuse), keys)? {
        Some(reused) => Ok(reused),
        None => run_keyed(nodes, ws, options, job, keys),
    }
}

/// With a workspace: key `step` of `job` (its own step, or a sibling that
/// trains with it) into `keys` and, where `reuse` allows, find an earlier
/// run's outputs to stand in for it.
pub(super) fn reusable(
    nodes: &[StepNode],
    ws: Option<&Workspace>,
    options: &RunOptions,
    job: &Job,
    (step, reuse): (usize, bool),
    keys: &mut Keys,
) -> Result<Option<Outcome>> {
    let Some(ws) = ws else {
        return Ok(None);
    };
    let sources = SourceHashes {
        ws,
        verify: options.verify_sources,
    };
    let own = (keys.own).insert(key_job(nodes, sources, job, step, &mut keys.members)?);
    Ok(match reuse {
        true => reuse::find_reusable(ws, &own.key)?.map(|row| Outcome::Reused(Box::new(row))),
        false => None,
    })
}

/// Load a keyed job's inputs, run it and store its outputs under `keys`.
pub(super) fn run_keyed(
    nodes: &[StepNode],
    ws: Option<&Workspace>,
    options: &RunOptions,
    job: Job,
    keys: &Keys,
) -> Result<Outcome> {
    let node = &nodes[job.step];
    let budget = options.memory_budget;
    let (inputs, members) = match load_inputs(nodes, ws, budget, job.inputs, job.fused)? {
        Ok(loaded) => loaded,
        Err(lost) => return Ok(lost),
    };
    let notes = Notes::default();
    let (tables, group) = caught(&node.name, || {
        let (check, device) = (job.check_schemas, &job.device);
        compute(node, &members, inputs, check, device, &notes, budget)
    })?;
    stored(ws, node, keys.own.as_ref(), tables, notes.take(), group)
}

/// Step `node` ran and computed `tables`: with a workspace, store them
/// under its `key`.
pub(super) fn stored(
    ws: Option<&Workspace>,
    node: &StepNode,
    key: Option<&StepKey>,
    tables: Vec<Data>,
    notes: Vec<String>,
    group: Option<Ran>,
) -> Result<Outcome> {
    let name = &node.name;
    ensure!(
        tables.len() == node.step.outputs().len(),
        Error::Internal(format!(
            "step '{name}' returned {} outputs, it declares {}",
            tables.len(),
            node.step.outputs().len()
        ))
    );
    let hashes = match ws {
        Some(ws) => Some(reuse::store_outputs(ws, node, key, &tables).map_err(|e| {
            Error::execution(name.clone(), format!("its output could not be cached: {e}"))
                .caused_by(e)
        })?),
        None => None,
    };
    Ok(Outcome::Ran(Computed {
        tables,
        hashes,
        notes,
        group,
    }))
}

/// `f`'s result, with a panic in it turned into an error naming `step`, and
/// any error placed in the step.
pub(super) fn caught<T>(step: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|panic| {
            Err(Error::execution(
                step.to_string(),
                format!("panicked: {}", panic_message(&panic)),
            ))
        })
        .map_err(|e| e.in_step(step))
}

/// A job's own inputs and its fused members, loaded.
type Loaded = (Vec<Data>, Vec<Member>);

/// A job's inputs, loaded: its own, and for a fused group each member with
/// its side inputs. `Ok(Err(_))` says an input's cached object is gone.
pub(super) fn load_inputs(
    nodes: &[StepNode],
    ws: Option<&Workspace>,
    budget: u64,
    inputs: Vec<Input>,
    fused: Vec<(usize, Vec<Input>)>,
) -> Result<std::result::Result<Loaded, Outcome>> {
    let mut loaded = Vec::with_capacity(inputs.len());
    for input in inputs {
        match load_input(input, ws, budget)? {
            Ok(t) => loaded.push(t),
            Err(lost) => return Ok(Err(lost)),
        }
    }
    let mut members = Vec::with_capacity(fused.len());
    for (m, side_inputs) in fused {
        let mut side = Vec::with_capacity(side_inputs.len());
        for input in side_inputs {
            match load_input(input, ws, budget)? {
                Ok(t) => side.push(t.table()?),
                Err(lost) => return Ok(Err(lost)),
            }
        }
        members.push(Member::of(&nodes[m], side));
    }
    Ok(Ok((loaded, members)))
}

/// An input's data: in memory, or loaded from the workspace; a reused read
/// of a file with a footer is scanned from the file again, as a stream, as
/// in the run that read it (see [`Workspace::source_file`]). `Ok(Err(_))`
/// says its cached object is gone, so its producer must run again.
fn load_input(
    input: Input,
    ws: Option<&Workspace>,
    budget: u64,
) -> Result<std::result::Result<Data, Outcome>> {
    let found = match (input.table, input.hash, ws) {
        (Some(t), _, _) => Ok(t),
        (None, Some(hash), Some(ws)) => match ws.source_file(&hash)? {
            // A file that no longer opens is loaded below, which reports it lost.
            Some(file) if let Ok(Some(stream)) = source_stream(&file, budget) => {
                Ok(Data::Stream(stream))
            }
            _ => ws.load(&hash)?.found().map(Data::Table),
        },
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
    // A stream read by a step that uses only some of its columns, or only
    // rows that satisfy a condition, skips the others where its source can.
    // (A fused group narrows its own input: see `run_group`.)
    let mut inputs = inputs;
    if let (true, Some(Data::Stream(stream))) = (members.is_empty(), inputs.first()) {
        inputs[0] = Data::Stream(pushed_down(node.step.as_ref(), stream, notes)?);
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

/// The cache key of `step` of a job (its own step, or a sibling reading the
/// same inputs). A fused group's members are keyed in turn, each
/// member's data input by the previous member's key; the keys of the members
/// before the tail go to `members`, the tail's is returned.
fn key_job(
    nodes: &[StepNode],
    sources: SourceHashes<'_>,
    job: &Job,
    step: usize,
    members: &mut Vec<(usize, StepKey)>,
) -> Result<StepKey> {
    let device = &job.device;
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
        None => StepKey::new(&nodes[step], &inputs, device, sources),
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

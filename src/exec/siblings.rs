//! Sibling fits as one job: training steps of one family that read the same
//! inputs on the same device (see the plan's sibling sets) train together.
//!
//! Each sibling is keyed on its own and, where allowed, reused from an
//! earlier run; the inputs are loaded once for those that remain, and one
//! [`TrainsTogether::run_together`] call trains them all. Every sibling
//! ends on its own: one that fails names itself and leaves the others
//! trained, and each is stored under its own key, so a later sweep with one
//! more setting trains only the new one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;

use super::data::Data;
use super::job::{Job, Keys, Outcome, caught, load_inputs, reusable, run_keyed, stored};
use super::options::RunOptions;
use super::pushdown::pushed_down;
use crate::backend::{Device, Notes};
use crate::data::Table;
use crate::error::{Error, Result};
use crate::pipeline::graph::StepNode;
use crate::pipeline::step::{StepContext, TrainsTogether};
use crate::workspace::Workspace;

/// How each of a job's siblings ended: the step, its keys, its outcome.
type Ended = Vec<(usize, Keys, Result<Outcome>)>;

/// How each of a job's siblings ended, and when from the job's start: the
/// siblings reused or failed while keying end before those that train.
pub(super) type Finished = Vec<(usize, Keys, Result<Outcome>, Duration)>;

/// Run the job of a step and the siblings it trains together with.
pub(super) fn run(
    nodes: &[StepNode],
    ws: Option<&Workspace>,
    options: &RunOptions,
    job: Job,
) -> Finished {
    let begun = Instant::now();
    let mut finished = Finished::new();
    let mut pending = Vec::new();
    let members = std::iter::once((job.step, job.reuse)).chain(job.together.iter().copied());
    for (step, reuse) in members {
        let mut keys = Keys::default();
        match reusable(nodes, ws, options, &job, (step, reuse), &mut keys) {
            Ok(None) => pending.push((step, keys)),
            Ok(Some(outcome)) => finished.push((step, keys, Ok(outcome), begun.elapsed())),
            Err(e) => finished.push((step, keys, Err(e), begun.elapsed())),
        }
    }
    if !pending.is_empty() {
        let trained = train(nodes, ws, options, job, pending);
        let ended = begun.elapsed();
        finished.extend(
            trained
                .into_iter()
                .map(|(step, keys, result)| (step, keys, result, ended)),
        );
    }
    finished
}

/// Train the `pending` siblings: alone if only one is left, else together
/// on the job's inputs, loaded once.
fn train(
    nodes: &[StepNode],
    ws: Option<&Workspace>,
    options: &RunOptions,
    job: Job,
    mut pending: Vec<(usize, Keys)>,
) -> Ended {
    if pending.len() == 1 {
        let Some((step, keys)) = pending.pop() else {
            return Ended::new();
        };
        let computed = run_keyed(nodes, ws, options, Job { step, ..job }, &keys);
        return vec![(step, keys, computed)];
    }
    let each_fails = |pending: Vec<(usize, Keys)>, e: Error| -> Ended {
        (pending.into_iter())
            .map(|(step, keys)| {
                let name = &nodes[step].name;
                let message = format!("its input could not be loaded: {e}");
                (step, keys, Err(Error::execution(name.clone(), message)))
            })
            .collect()
    };
    let budget = options.memory_budget;
    let inputs = match load_inputs(nodes, ws, budget, job.inputs, Vec::new()) {
        Ok(Ok((inputs, _))) => inputs,
        Ok(Err(lost)) => return each_lost(pending, &lost),
        Err(e) => return each_fails(pending, e),
    };
    let notes = Notes::default();
    let lead = &nodes[pending[0].0];
    let tables = match narrowed(lead, inputs, &notes) {
        Ok(tables) => tables,
        Err(e) => return each_fails(pending, e),
    };
    together(
        nodes,
        ws,
        &job.device,
        job.check_schemas,
        &tables,
        notes,
        pending,
    )
}

/// Each sibling's outcome when the job's input `lost` could not be loaded:
/// its producer runs again, then the siblings.
fn each_lost(pending: Vec<(usize, Keys)>, lost: &Outcome) -> Ended {
    let Outcome::InputLost { producer, note } = lost else {
        return Vec::new();
    };
    (pending.into_iter())
        .map(|(step, keys)| {
            let lost = Outcome::InputLost {
                producer: *producer,
                note: note.clone(),
            };
            (step, keys, Ok(lost))
        })
        .collect()
}

/// The inputs as tables; a stream read only for the columns and rows the
/// siblings use (they share them: they are of one family).
fn narrowed(lead: &StepNode, mut inputs: Vec<Data>, notes: &Notes) -> Result<Vec<Table>> {
    if let Some(Data::Stream(stream)) = inputs.first() {
        inputs[0] = Data::Stream(pushed_down(lead.step.as_ref(), stream, notes)?);
    }
    inputs.iter().map(Data::table).collect()
}

/// Train the `pending` siblings (two or more) together on `tables`, each
/// with its own notes (after the `shared` ones), and store each one's
/// outputs under its own key.
fn together(
    nodes: &[StepNode],
    ws: Option<&Workspace>,
    device: &Device,
    check_schemas: bool,
    tables: &[Table],
    shared: Notes,
    pending: Vec<(usize, Keys)>,
) -> Ended {
    let mut finished = Ended::new();
    let schemas: Vec<SchemaRef> = tables.iter().map(|t| Arc::clone(t.schema())).collect();
    let mut training = Vec::new();
    for (step, keys) in pending {
        let node = &nodes[step];
        let fit = match node.step.trains_together() {
            Some(fit) => fit,
            None => {
                let message = format!("step '{}' does not train together", node.name);
                finished.push((step, keys, Err(Error::Internal(message))));
                continue;
            }
        };
        match check_schemas.then(|| node.planned_schemas(&schemas)) {
            Some(Err(e)) => finished.push((step, keys, Err(e.in_step(&node.name)))),
            _ => training.push((step, keys, fit, Notes::default())),
        }
    }
    let Some(&(_, _, lead, _)) = training.first() else {
        return finished;
    };
    let names: Vec<&str> = (training.iter())
        .map(|(step, ..)| nodes[*step].name.as_str())
        .collect();
    let trained = caught(names[0], || {
        let steps: Vec<(StepContext<'_>, &dyn TrainsTogether)> = (training.iter())
            .map(|(step, _, fit, notes)| {
                (StepContext::new(&nodes[*step].name).on(device, notes), *fit)
            })
            .collect();
        Ok(lead.run_together(&steps, tables))
    });
    let results: Vec<Result<Vec<Table>>> = match trained {
        Ok(mut results) => {
            results.resize_with(training.len(), || {
                Err(Error::Internal("a sibling was not trained".into()))
            });
            results
        }
        Err(e) => (names.iter())
            .map(|name| {
                let message = format!("training together with its siblings failed: {e}");
                Err(Error::execution(name.to_string(), message))
            })
            .collect(),
    };
    let shared = shared.take();
    let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    let trained: Vec<bool> = results.iter().map(Result::is_ok).collect();
    for (i, ((step, keys, _, notes), result)) in training.into_iter().zip(results).enumerate() {
        let node = &nodes[step];
        let mut noted = shared.clone();
        noted.extend(notes.take());
        noted.extend(trained_with(&names, &trained, i));
        let outcome = result
            .map_err(|e| e.in_step(&node.name))
            .and_then(|tables| {
                let tables = tables.into_iter().map(Data::Table).collect();
                stored(ws, node, keys.own.as_ref(), tables, noted, None)
            });
        finished.push((step, keys, outcome));
    }
    finished
}

/// The note on sibling `i` of `names` that it trained with the others that
/// were `trained` (none if they all failed).
fn trained_with(names: &[String], trained: &[bool], i: usize) -> Option<String> {
    let others: Vec<String> = (names.iter().zip(trained).enumerate())
        .filter(|&(j, (_, &ok))| j != i && ok)
        .map(|(_, (name, _))| format!("'{name}'"))
        .collect();
    (!others.is_empty()).then(|| {
        format!(
            "trained together with {}, sharing each pass over the data",
            others.join(", ")
        )
    })
}

//! The scheduler: runs a validated [`Graph`] on a pool of worker threads.
//!
//! A step becomes ready when all its producers have finished; ready steps are
//! handed to idle workers in pipeline order, so independent steps run at the
//! same time while dependent ones wait. Inside a step, kernels use rayon. The
//! first failure stops new steps from starting; steps already running finish,
//! and the error names the step that failed.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;

use crate::error::{Error, Result};
use crate::pipeline::graph::{Graph, Pipeline};
use crate::pipeline::step::{Step, StepContext};
use crate::pipeline::table::Table;

/// Knobs for one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Most steps running at once (each may use all cores through rayon).
    pub max_concurrent_steps: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RunOptions {
            max_concurrent_steps: cores.max(4),
        }
    }
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
    /// How long the step ran.
    pub duration: Duration,
    /// Rows in each output.
    pub rows: Vec<usize>,
    /// Bytes held by all outputs.
    pub bytes: usize,
}

/// The result of running a pipeline: every output of every step, and a report per step.
#[derive(Debug)]
pub struct RunOutput {
    outputs: HashMap<String, Table>,
    /// One report per step, in the order the steps finished.
    pub steps: Vec<StepReport>,
    /// Wall time of the whole run.
    pub duration: Duration,
}

impl RunOutput {
    /// An output by reference: `"step.output"`, or `"step"` for a step with one output.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] listing the available outputs when there is no such output.
    pub fn output(&self, reference: &str) -> Result<&Table> {
        if let Some(t) = self.outputs.get(reference) {
            return Ok(t);
        }
        let matches: Vec<&String> = self
            .outputs
            .keys()
            .filter(|k| k.split_once('.').is_some_and(|(s, _)| s == reference))
            .collect();
        if let [only] = matches.as_slice() {
            return Ok(&self.outputs[*only]);
        }
        let mut names: Vec<&String> = self.outputs.keys().collect();
        names.sort();
        Err(Error::InvalidParameter {
            step: reference.to_string(),
            message: format!(
                "no output '{reference}' in this run; outputs are: {}",
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Every output, keyed by `"step.output"`.
    pub fn outputs(&self) -> &HashMap<String, Table> {
        &self.outputs
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
}

/// Stack size of step worker threads.
const WORKER_STACK: usize = 32 << 20;

struct Job {
    step: usize,
    inputs: Vec<Table>,
}

struct Done {
    step: usize,
    started: Duration,
    duration: Duration,
    result: Result<Vec<Table>>,
}

fn execute(pipeline: &Pipeline, graph: &Graph, options: &RunOptions) -> Result<RunOutput> {
    let nodes = &pipeline.nodes;
    let n = nodes.len();
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
    let start = Instant::now();
    let (job_tx, job_rx) = unbounded::<Job>();
    let (done_tx, done_rx) = unbounded::<Done>();
    let steps: Vec<(String, Arc<dyn Step>)> = nodes
        .iter()
        .map(|n| (n.name.clone(), Arc::clone(&n.step)))
        .collect();
    let workers = options.max_concurrent_steps.clamp(1, n.max(1));

    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (job_rx, done_tx, steps) = (job_rx.clone(), done_tx.clone(), &steps);
            // Deep expression trees recurse while being type-checked and planned; give
            // workers the room a main thread has.
            let spawned = std::thread::Builder::new()
                .name("fuseflow-step".into())
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, move || {
                    for job in job_rx {
                        let (name, step) = &steps[job.step];
                        let started = start.elapsed();
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            step.run(StepContext { name }, &job.inputs)
                        }))
                        .unwrap_or_else(|panic| {
                            Err(Error::Execution {
                                step: name.clone(),
                                message: format!("panicked: {}", panic_message(&panic)),
                            })
                        })
                        .map_err(|e| e.in_step(name));
                        let duration = start.elapsed() - started;
                        if done_tx
                            .send(Done {
                                step: job.step,
                                started,
                                duration,
                                result,
                            })
                            .is_err()
                        {
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

        let mut results: Vec<Option<Vec<Table>>> = vec![None; n];
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
                let inputs: Vec<Table> = graph.edges[i]
                    .iter()
                    .map(|&(p, o)| results[p].as_ref().expect("producer finished")[o].clone())
                    .collect();
                // Steps whose input schemas were unknown at planning are checked now.
                if graph.edges[i]
                    .iter()
                    .any(|&(p, o)| graph.schemas[p][o].is_none())
                {
                    let schemas: Vec<_> = inputs
                        .iter()
                        .map(|t| std::sync::Arc::clone(t.schema()))
                        .collect();
                    if let Err(e) = nodes[i].planned_schemas(&schemas) {
                        failure = Some(e);
                        break;
                    }
                }
                job_tx
                    .send(Job { step: i, inputs })
                    .map_err(|_| Error::Internal("worker pool stopped".into()))?;
                running += 1;
            }
            if running == 0 {
                break;
            }
            let done = done_rx
                .recv()
                .map_err(|_| Error::Internal("worker pool stopped".into()))?;
            running -= 1;
            match done.result {
                Ok(tables) => {
                    let node = &nodes[done.step];
                    if tables.len() != node.step.outputs().len() {
                        failure.get_or_insert(Error::Internal(format!(
                            "step '{}' returned {} outputs, it declares {}",
                            node.name,
                            tables.len(),
                            node.step.outputs().len()
                        )));
                        continue;
                    }
                    reports.push(StepReport {
                        name: node.name.clone(),
                        kind: node.step.kind().to_string(),
                        started: done.started,
                        duration: done.duration,
                        rows: tables.iter().map(Table::num_rows).collect(),
                        bytes: tables.iter().map(Table::memory_size).sum(),
                    });
                    results[done.step] = Some(tables);
                    for &c in &consumers[done.step] {
                        waiting[c] -= 1;
                        if waiting[c] == 0 {
                            ready.insert((position[c], c));
                        }
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        drop(job_tx);
        if let Some(e) = failure {
            return Err(e);
        }
        let mut outputs = HashMap::new();
        for (i, tables) in results.into_iter().enumerate() {
            let Some(tables) = tables else { continue };
            for (port, table) in nodes[i].step.outputs().iter().zip(tables) {
                outputs.insert(format!("{}.{port}", nodes[i].name), table);
            }
        }
        Ok(RunOutput {
            outputs,
            steps: reports,
            duration: start.elapsed(),
        })
    })
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

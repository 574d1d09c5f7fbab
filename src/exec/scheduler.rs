//! The scheduler: runs a validated [`Graph`] on a pool of worker threads.
//!
//! A step becomes ready when all its producers have finished; ready steps are
//! handed to idle workers in pipeline order ([`ReadyQueue`]), so independent
//! steps run at the same time while dependent ones wait. Inside a step,
//! kernels use rayon. The first failure stops new steps from starting; steps
//! already running finish, and the error names the step that failed. A
//! sweep's run keeps going instead: a failure stops only the steps that
//! read what the failed step would have produced, so the variants that do
//! not depend on it complete.
//!
//! - [`StepState`] (`state.rs`): what the scheduler knows of one step (its
//!   device, notes, fused group, sibling set, outputs).
//! - [`Scheduler`]: the coordinator. It starts ready steps as jobs
//!   ([`super::job`]; sibling training steps that are ready together go as
//!   one job, [`super::siblings`]), and as each job comes back, records it
//!   ([`RunRecorder`]), reports it and releases the steps waiting on it; a
//!   job whose cached input was lost sends that input's producer back to run.

use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, unbounded};

use super::data::Data;
use super::job::{Computed, Done, Input, Job, Keys, Outcome, Produced, work};
use super::options::RunOptions;
use super::progress::RunObserver;
use super::ready::ReadyQueue;
use super::recorder::RunRecorder;
use super::report::{CacheUse, StepReport};
use super::reuse;
use super::state::{StepState, runs_every_time, step_states};
use crate::backend::DeviceSet;
use crate::error::{Error, Result};
use crate::pipeline::graph::{Graph, Pipeline, StepNode};
use crate::plan::PhysicalPlan;
use crate::track::StepRunRow;

/// Stack size of step worker threads.
const WORKER_STACK: usize = 32 << 20;

/// What a finished schedule hands back.
pub(super) struct Scheduled {
    /// Each step's outputs, in the pipeline's order.
    pub(super) produced: Vec<Produced>,
    /// One report per step, in the order the steps finished.
    pub(super) reports: Vec<StepReport>,
    /// Wall time of the whole schedule.
    pub(super) duration: Duration,
    /// The failures of a run that kept going, in the order they happened.
    pub(super) failed: Vec<Error>,
}

/// Run `pipeline`'s steps as `plan` places and fuses them, on
/// `options.max_concurrent_steps` workers, recording to `recorder`.
///
/// # Errors
/// The first step failure, or a failure to record a step.
pub(super) fn schedule(
    pipeline: &Pipeline,
    graph: &Graph,
    options: &RunOptions,
    plan: &PhysicalPlan,
    set: &DeviceSet,
    recorder: &RunRecorder<'_>,
) -> Result<Scheduled> {
    let nodes = &pipeline.nodes;
    let ws = options.workspace.as_deref();
    let mut scheduler = Scheduler {
        nodes,
        graph,
        steps: step_states(nodes, options, plan, set),
        queue: ReadyQueue::new(&graph.order, &graph.edges),
        recorder,
        observer: options.observer.as_deref(),
        reports: Vec::with_capacity(nodes.len()),
        keep_going: !pipeline.variants().is_empty(),
        failures: Vec::new(),
        cancelled: false,
        start: Instant::now(),
    };
    let start = scheduler.start;
    let (job_tx, job_rx) = unbounded::<Job>();
    let (done_tx, done_rx) = unbounded::<Vec<Done>>();
    let workers = options.max_concurrent_steps.clamp(1, nodes.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (jobs, done) = (job_rx.clone(), done_tx.clone());
            // Deep expression trees recurse while being type-checked and planned; give
            // workers the room a main thread has.
            std::thread::Builder::new()
                .name("fuseflow-step".into())
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, move || work(nodes, ws, options, start, jobs, done))
                .map_err(|e| Error::Internal(format!("cannot start a worker thread: {e}")))?;
        }
        drop(done_tx);
        let mut running = 0usize;
        let cancelled = || options.cancel.as_ref().is_some_and(|c| c.is_cancelled());
        loop {
            if cancelled() {
                scheduler.cancel();
            }
            while running < workers
                && let Some(i) = scheduler.queue.pop()
            {
                if scheduler.start(i, &job_tx)? {
                    running += 1;
                }
            }
            if running == 0 {
                break;
            }
            let dones = done_rx
                .recv()
                .map_err(|_| Error::Internal("worker pool stopped".into()))?;
            running -= 1;
            for done in dones {
                scheduler.finish(done)?;
            }
        }
        drop(job_tx);
        scheduler.end()
    })
}

/// The coordinator of one run: starts ready steps and takes in finished ones.
struct Scheduler<'a> {
    nodes: &'a [StepNode],
    graph: &'a Graph,
    steps: Vec<StepState<'a>>,
    queue: ReadyQueue,
    recorder: &'a RunRecorder<'a>,
    observer: Option<&'a dyn RunObserver>,
    /// One report per finished step, in the order they finished.
    reports: Vec<StepReport>,
    /// Whether a failure leaves the steps that do not depend on it running
    /// (a sweep), rather than stopping the queue.
    keep_going: bool,
    /// The failures so far.
    failures: Vec<Error>,
    /// Whether the run was cancelled with steps still to start.
    cancelled: bool,
    start: Instant,
}

/// The sizes a finished step reports.
struct Sizes {
    /// Rows in each output.
    rows: Vec<usize>,
    /// Bytes of each output.
    bytes: Vec<usize>,
    /// For a fused group, the rows each member passed on where they are not
    /// the tail's `rows`: what flowed into a sink (empty: not recorded).
    member_rows: Option<Vec<usize>>,
}

impl Sizes {
    /// The sizes of a job's computed outputs.
    fn computed(computed: &Computed) -> Sizes {
        let (rows, bytes) = computed.tables.iter().map(Data::size).unzip();
        Sizes {
            rows,
            bytes,
            member_rows: computed
                .group
                .as_ref()
                .and_then(|g| g.piped_rows)
                .map(|r| vec![r]),
        }
    }

    /// The rows a fused group's members passed on.
    fn passed_on(&self) -> &[usize] {
        self.member_rows.as_deref().unwrap_or(&self.rows)
    }
}

impl Scheduler<'_> {
    /// Start step `i`: a member of a fused group completes at once (its
    /// group's tail computes it); any other step is sent to the workers as a
    /// job, with its siblings that are ready too. Returns whether a job was
    /// sent.
    fn start(&mut self, i: usize, jobs: &Sender<Job>) -> Result<bool> {
        let nodes = self.nodes;
        if let Some(tail) = self.steps[i].fused_into {
            let mut notes = std::mem::take(&mut self.steps[i].notes);
            notes.push(format!(
                "fused into '{}' (one kernel); its output is not materialized (keep the step, or cache every step, to store it)",
                self.nodes[tail].name
            ));
            let report = self.report(
                i,
                self.start.elapsed(),
                Duration::ZERO,
                CacheUse::Off,
                notes,
            );
            self.publish(report);
            self.queue.finished(i);
            return Ok(false);
        }
        let together = self.together(i);
        let started: Vec<usize> = std::iter::once(i)
            .chain(together.iter().map(|&(m, _)| m))
            .collect();
        jobs.send(Job {
            together,
            ..self.job(i)
        })
        .map_err(|_| Error::Internal("worker pool stopped".into()))?;
        if let Some(o) = self.observer {
            for node in started.iter().map(|&m| &nodes[m]) {
                o.step_started(&node.name, node.step.kind());
            }
        }
        Ok(true)
    }

    /// The siblings of step `i` that are ready too, taken from the queue to
    /// train with it, each with whether a cached result may stand in.
    fn together(&mut self, i: usize) -> Vec<(usize, bool)> {
        let siblings = self.steps[i].siblings.unwrap_or_default();
        (siblings.iter().copied())
            .filter(|&m| m != i && self.queue.take(m))
            .map(|m| (m, !self.steps[m].must_run))
            .collect()
    }

    /// Step `i`'s job: its inputs from what their producers produced; for
    /// the tail of a fused group, the head's data input and each member's
    /// side inputs.
    fn job(&self, i: usize) -> Job {
        let edges = &self.graph.edges;
        let input = |(p, o): (usize, usize)| Input {
            producer: p,
            table: self.steps[p].produced.tables.as_ref().map(|t| t[o].clone()),
            hash: self.steps[p].produced.hashes.as_ref().map(|h| h[o]),
        };
        let group = self.steps[i].group;
        let (inputs, fused) = match group {
            None => (edges[i].iter().copied().map(input).collect(), Vec::new()),
            Some(members) => (
                vec![input(edges[members[0]][0])],
                members
                    .iter()
                    .map(|&m| (m, edges[m][1..].iter().copied().map(input).collect()))
                    .collect(),
            ),
        };
        // Inputs whose schemas were unknown when planning are checked now.
        // A fused group is not: its job holds the head's data input, not
        // the tail's inputs, and the group type-checks every member
        // against the real schemas as it composes them.
        let check_schemas = group.is_none()
            && edges[i]
                .iter()
                .any(|&(p, o)| self.graph.schemas[p][o].is_none());
        let must_run = |m: usize| self.steps[m].must_run;
        Job {
            step: i,
            device: self.steps[i].device.clone(),
            reuse: !must_run(i) && group.unwrap_or_default().iter().all(|&m| !must_run(m)),
            inputs,
            fused,
            together: Vec::new(),
            check_schemas,
        }
    }

    /// Take in a finished job: record and report it and release the steps
    /// waiting on it; a failure stops the queue, a lost input sends its
    /// producer back to run.
    fn finish(&mut self, done: Done) -> Result<()> {
        let Done {
            step: i,
            started,
            duration,
            keys,
            result,
        } = done;
        let nodes = self.nodes;
        let node = &nodes[i];
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                let device = &self.steps[i].device;
                self.recorder
                    .failed(node, device, keys.own.as_ref(), duration, &e)?;
                self.failures.push(e);
                if !self.keep_going {
                    self.queue.stop();
                }
                return Ok(());
            }
        };
        let cache = match &outcome {
            Outcome::Reused(row) => CacheUse::Hit {
                from: reuse::producer(row),
            },
            _ if !self.recorder.is_recording() || !node.reuse || runs_every_time(node) => {
                CacheUse::Off
            }
            _ => CacheUse::Miss,
        };
        // A chain's members are recorded before its tail: another process
        // that reuses the tail from this run's record then finds theirs.
        let sizes = match outcome {
            Outcome::InputLost { producer, note } => {
                self.input_lost(i, producer, note);
                return Ok(());
            }
            Outcome::Ran(computed) => {
                let sizes = Sizes::computed(&computed);
                self.members_done(i, &keys, &cache, sizes.passed_on())?;
                self.ran(i, &keys, duration, computed)?;
                sizes
            }
            Outcome::Reused(row) => {
                let sizes = self.reused_sizes(i, &row);
                self.members_done(i, &keys, &cache, sizes.passed_on())?;
                self.reused(i, &keys, duration, &row)?;
                sizes
            }
        };
        // A step run again after its cached outputs were lost replaces
        // its earlier report.
        self.reports.retain(|r| r.name != node.name);
        let notes = std::mem::take(&mut self.steps[i].notes);
        let report = StepReport {
            rows: sizes.rows,
            bytes: sizes.bytes,
            ..self.report(i, started, duration, cache, notes)
        };
        self.publish(report);
        self.queue.finished(i);
        Ok(())
    }

    /// Step `i` ran: record it and hold its outputs (and, for a fused
    /// group, the members' outputs it never held, to compute again).
    fn ran(&mut self, i: usize, keys: &Keys, duration: Duration, computed: Computed) -> Result<()> {
        let nodes = self.nodes;
        let node = &nodes[i];
        self.steps[i].notes.extend(computed.notes);
        let (key, notes) = (keys.own.as_ref(), &self.steps[i].notes);
        let (tables, stored) = (&computed.tables, computed.hashes.as_deref());
        self.recorder
            .ran(node, key, tables, stored, duration, notes)?;
        self.steps[i].produced = Produced {
            tables: Some(computed.tables),
            hashes: computed.hashes,
        };
        if let (Some(group), Some(members)) = (computed.group, self.steps[i].group) {
            // Outputs never held stay fetchable, computed again.
            for (m, stream) in group.unheld {
                self.steps[members[m]].produced.tables = Some(vec![Data::Stream(stream)]);
            }
        }
        Ok(())
    }

    /// An earlier run's outputs (`row`) stood in for step `i`: record it
    /// and hold their hashes.
    fn reused(
        &mut self,
        i: usize,
        keys: &Keys,
        duration: Duration,
        row: &StepRunRow,
    ) -> Result<()> {
        let nodes = self.nodes;
        let node = &nodes[i];
        let (key, notes) = (keys.own.as_ref(), &self.steps[i].notes);
        let schemas = &self.graph.schemas[i];
        self.recorder
            .reused(node, key, row, schemas, duration, notes)?;
        self.steps[i].produced = Produced {
            tables: None,
            hashes: Some(reuse::output_hashes(row)?),
        };
        Ok(())
    }

    /// The sizes an earlier run recorded for step `i`'s outputs (`row`).
    fn reused_sizes(&self, i: usize, row: &StepRunRow) -> Sizes {
        // A sink's record does not say what flowed into it.
        let sink = self.steps[i].group.is_some() && self.nodes[i].step.row_local().is_none();
        let (rows, bytes) = match row.record.sizes.as_slice() {
            [] => (
                vec![row.record.rows as usize],
                vec![row.record.bytes as usize],
            ),
            sizes => sizes.iter().map(|&(r, b)| (r as usize, b as usize)).unzip(),
        };
        Sizes {
            rows,
            bytes,
            member_rows: sink.then(Vec::new),
        }
    }

    /// Step `i` could not load its input from `producer`: run the producer
    /// again (noted on it), then step `i`.
    fn input_lost(&mut self, i: usize, producer: usize, note: String) {
        let lost = &mut self.steps[producer];
        lost.notes.push(format!("recomputed: {note}"));
        lost.must_run = true;
        lost.produced = Produced::default();
        self.queue.input_lost(i, producer);
    }

    /// Update the reports of the members of step `i`'s fused group before
    /// its tail, now that the tail ran or was reused (with `cache`, and
    /// `rows` passed on by each member), and record them.
    fn members_done(
        &mut self,
        i: usize,
        keys: &Keys,
        cache: &CacheUse,
        rows: &[usize],
    ) -> Result<()> {
        let Some(group) = self.steps[i].group else {
            return Ok(());
        };
        let reused_from = match cache {
            CacheUse::Hit { from } => Some(from),
            _ => None,
        };
        for &m in group.split_last().map_or(&[][..], |(_, before)| before) {
            let node = &self.nodes[m];
            let Some(report) = self.reports.iter_mut().find(|r| r.name == node.name) else {
                return Err(Error::Internal(format!(
                    "fused step '{}' has no report",
                    node.name
                )));
            };
            report.rows = self.recorder.fused_member(
                node,
                &keys.members,
                m,
                rows,
                reused_from,
                &report.notes,
            )?;
            report.cache = match reused_from {
                Some(from) => CacheUse::Hit { from: from.clone() },
                None if self.recorder.is_recording() && node.reuse => CacheUse::Miss,
                None => CacheUse::Off,
            };
        }
        Ok(())
    }

    /// Step `i`'s report, with no rows or bytes yet.
    fn report(
        &self,
        i: usize,
        started: Duration,
        duration: Duration,
        cache: CacheUse,
        notes: Vec<String>,
    ) -> StepReport {
        let nodes = self.nodes;
        let node = &nodes[i];
        StepReport {
            name: node.name.clone(),
            kind: node.step.kind().to_string(),
            started,
            duration,
            rows: Vec::new(),
            bytes: Vec::new(),
            cache,
            notes,
            device: self.steps[i].device.to_string(),
        }
    }

    /// Add a finished step's report, and tell the observer.
    fn publish(&mut self, report: StepReport) {
        if let Some(o) = self.observer {
            o.step_finished(&report);
        }
        self.reports.push(report);
    }

    /// The run's outputs and reports, or its first failure (for a run that
    /// kept going, the failures are handed back with what else was done).
    /// Start no further step; the run ends as cancelled unless every step
    /// had already started.
    fn cancel(&mut self) {
        if !self.cancelled && self.reports.len() < self.nodes.len() {
            self.cancelled = true;
            self.queue.stop();
        }
    }

    fn end(mut self) -> Result<Scheduled> {
        if self.cancelled {
            return Err(Error::Cancelled);
        }
        if !self.keep_going && !self.failures.is_empty() {
            return Err(self.failures.swap_remove(0));
        }
        Ok(Scheduled {
            produced: self.steps.into_iter().map(|s| s.produced).collect(),
            reports: self.reports,
            duration: self.start.elapsed(),
            failed: self.failures,
        })
    }
}

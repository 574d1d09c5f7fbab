//! What a run hands back: a [`StepReport`] per step, and [`RunOutput`], every
//! output of every step (in memory, a stream, or loaded from the workspace
//! when first asked for).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::data::Data;
use super::job::Produced;
use crate::data::{ContentHash, Stream, Table};
use crate::error::{Error, Result};
use crate::pipeline::graph::StepNode;
use crate::plan::PhysicalPlan;
use crate::track::RunId;
use crate::workspace::Workspace;

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
    /// The steps that failed in a run that kept going past them (a sweep's:
    /// see [`Pipeline::variants`](crate::pipeline::Pipeline::variants)),
    /// each error naming its step; the steps that read them did not run.
    /// Empty otherwise: a failure is the run's error.
    pub failed: Vec<Error>,
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
    /// The output of a finished run: each step's outputs as `produced` holds
    /// them (one entry per step, in the pipeline's order), named
    /// `"step.output"`.
    pub(super) fn new(
        nodes: &[StepNode],
        produced: Vec<Produced>,
        plan: PhysicalPlan,
        steps: Vec<StepReport>,
        duration: Duration,
        workspace: Option<Arc<Workspace>>,
        run_id: Option<RunId>,
    ) -> Self {
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
        RunOutput {
            outputs,
            workspace,
            run_id,
            steps,
            plan,
            duration,
            failed: Vec::new(),
        }
    }

    /// The output with the failures of a run that kept going.
    pub(super) fn with_failures(mut self, failed: Vec<Error>) -> Self {
        self.failed = failed;
        self
    }

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

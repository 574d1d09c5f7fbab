//! Running a pipeline: [`Pipeline::run`], [`Pipeline::run_with`] and
//! [`Pipeline::plan`]. A run is planned, begun in the workspace's run store,
//! scheduled (see [`super::scheduler`]), finished in the store, and its
//! outputs collected into a [`RunOutput`].

use super::options::{CachePolicy, RunOptions};
use super::recorder::RunRecorder;
use super::report::RunOutput;
use super::scheduler::schedule;
use crate::backend::DeviceSet;
use crate::error::Result;
use crate::pipeline::graph::{Graph, Pipeline};
use crate::plan::{Calibration, MaterializePolicy, PhysicalPlan, PlanOptions};

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

fn execute(pipeline: &Pipeline, graph: &Graph, options: &RunOptions) -> Result<RunOutput> {
    let nodes = &pipeline.nodes;
    // Planned first: a run that cannot be planned never starts, so no record
    // of it is left behind as running.
    let (plan, devices) = plan_run(pipeline, graph, options)?;
    let recorder = RunRecorder::begin(pipeline, options.workspace.as_deref(), options)?;
    if let Some(o) = &options.observer {
        o.run_started(nodes.len());
    }
    let result = schedule(pipeline, graph, options, &plan, &devices, &recorder);
    if let Some(o) = &options.observer {
        o.run_finished();
    }
    let scheduled = recorder.finish(result)?;
    Ok(RunOutput::new(
        nodes,
        scheduled.produced,
        plan,
        scheduled.reports,
        scheduled.duration,
        options.workspace.clone(),
        recorder.run_id().cloned(),
    )
    .with_failures(scheduled.failed))
}

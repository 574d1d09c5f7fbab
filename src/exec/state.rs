//! What the scheduler knows of each step during a run, and how each starts:
//! its device, whether it must run rather than reuse a cached result, its
//! fused group or sibling set, and the notes its report carries.

use super::job::Produced;
use super::options::{Rerun, RunOptions};
use crate::backend::{Device, DeviceKind, DeviceSet};
use crate::pipeline::graph::StepNode;
use crate::plan::PhysicalPlan;

/// What the scheduler knows of one step during a run.
pub(super) struct StepState<'a> {
    /// The device the plan placed the step on.
    pub(super) device: Device,
    /// The step runs rather than reuse a cached result: asked for, or its
    /// cached outputs turned out to be lost.
    pub(super) must_run: bool,
    /// Notes for the step's report.
    pub(super) notes: Vec<String>,
    /// For a member of a fused group before its tail: the tail, whose job
    /// computes the member.
    pub(super) fused_into: Option<usize>,
    /// For the tail of a fused group: the group's members, head first.
    pub(super) group: Option<&'a [usize]>,
    /// For a training step with siblings: the set it trains together with
    /// (itself included).
    pub(super) siblings: Option<&'a [usize]>,
    /// The step's outputs, once it has finished.
    pub(super) produced: Produced,
}

/// Each step's state at the start of a run: its device, whether it must run
/// (with a workspace), and its fused group, each with a note where the user
/// should know.
pub(super) fn step_states<'p>(
    nodes: &[StepNode],
    options: &RunOptions,
    plan: &'p PhysicalPlan,
    set: &DeviceSet,
) -> Vec<StepState<'p>> {
    let ws = options.workspace.is_some();
    let mut steps: Vec<StepState> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let reason = reason_to_run(node, &options.rerun).filter(|_| ws);
            let mut notes: Vec<String> = reason.iter().map(|s| s.to_string()).collect();
            StepState {
                device: device_of(i, plan, set, &mut notes),
                must_run: reason.is_some(),
                notes,
                fused_into: None,
                group: None,
                siblings: None,
                produced: Produced::default(),
            }
        })
        .collect();
    // Fused groups: members before the tail complete without running (the
    // tail's job computes them), the tail runs the whole chain.
    for group in &plan.groups {
        let tail = group.tail();
        let before = &group.members[..group.members.len() - 1];
        for &m in before {
            steps[m].fused_into = Some(tail);
        }
        steps[tail].group = Some(&group.members);
        let others: Vec<String> = before
            .iter()
            .map(|&m| format!("'{}'", nodes[m].name))
            .collect();
        steps[tail].notes.push(if group.sink {
            format!(
                "took its input batch by batch from the kernel of {}",
                others.join(", ")
            )
        } else {
            format!("ran fused with {} as one kernel", others.join(", "))
        });
    }
    for set in &plan.siblings {
        for &m in set {
            steps[m].siblings = Some(set);
        }
    }
    steps
}

/// The device of step `i` as the plan places it, and the placement's note
/// (where `auto` chose, or that the asked-for device was missing).
fn device_of(i: usize, plan: &PhysicalPlan, set: &DeviceSet, notes: &mut Vec<String>) -> Device {
    let cpu = || {
        set.get(DeviceKind::Cpu)
            .cloned()
            .unwrap_or_else(Device::cpu)
    };
    let Some(placed) = plan.node(i).map(|n| &n.placement) else {
        return cpu();
    };
    notes.extend(placed.note.clone());
    set.get(placed.device).cloned().unwrap_or_else(cpu)
}

/// Whether a step's effects cannot be checked, so that it runs every time
/// (a step that only writes files is skipped while they hold what it wrote).
pub(super) fn runs_every_time(node: &StepNode) -> bool {
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

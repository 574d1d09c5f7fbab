//! Sibling fits: training steps that train together.
//!
//! Steps of one type that [train together](crate::pipeline::TrainsTogether)
//! and share a family (a logistic regression's label and features), read
//! the same inputs and are placed on the same device are siblings: the
//! scheduler runs them as one job, which on the CPU evaluates every
//! sibling's Newton step in one pass over their shared design matrix. A
//! sweep over a model's settings is the common case.

use std::any::{Any, TypeId};

use super::physical::PlanNode;
use crate::backend::DeviceKind;
use crate::pipeline::graph::{Graph, Pipeline};

/// What siblings share: the step type, its family, its inputs, its device.
type Kin<'g> = (TypeId, String, &'g [(usize, usize)], DeviceKind);

/// The sets of two or more sibling steps, each in pipeline order, among
/// `nodes` (in execution order) that are in no fused group.
pub(super) fn siblings(pipeline: &Pipeline, graph: &Graph, nodes: &[PlanNode]) -> Vec<Vec<usize>> {
    let mut sets: Vec<(Kin<'_>, Vec<usize>)> = Vec::new();
    for node in nodes.iter().filter(|n| n.group.is_none()) {
        let Some(step) = pipeline.nodes[node.step].step.trains_together() else {
            continue;
        };
        let any: &dyn Any = step;
        let kin = (
            any.type_id(),
            step.family(),
            graph.edges[node.step].as_slice(),
            node.placement.device,
        );
        match sets.iter_mut().find(|(k, _)| *k == kin) {
            Some((_, members)) => members.push(node.step),
            None => sets.push((kin, vec![node.step])),
        }
    }
    (sets.into_iter())
        .map(|(_, members)| members)
        .filter(|members| members.len() > 1)
        .collect()
}

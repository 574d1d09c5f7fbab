//! The fuser: which row-local ops merge into one kernel.

use std::fmt;

use super::logical::LogicalOp;

/// Which intermediate tables a run must keep, whether or not a consumer
/// could take them straight from registers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaterializePolicy {
    /// Every step output is cached (a run with a workspace under
    /// [`CachePolicy::EveryStep`](crate::CachePolicy::EveryStep) stores each
    /// one, so that it can be reused and fetched later).
    pub cache_all: bool,
    /// Steps whose outputs were asked for by name.
    pub keep: Vec<String>,
}

/// Whether a step's outputs exist as tables after the run, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Materialized {
    /// Not materialized: its only consumer, `into`, computes it in the same kernel.
    Fused {
        /// The consumer.
        into: String,
    },
    /// Cached by policy (the workspace stores every step's output).
    Cached,
    /// Asked for by name.
    Requested,
    /// Read by several consumers.
    Shared(usize),
    /// Read by a step it does not fuse with, or by nothing (a result).
    Boundary,
}

impl fmt::Display for Materialized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Materialized::Fused { into } => write!(f, "not materialized (fused into {into})"),
            Materialized::Cached => f.write_str("materialized: cached by policy"),
            Materialized::Requested => f.write_str("materialized: requested"),
            Materialized::Shared(n) => write!(f, "materialized: {n} consumers"),
            Materialized::Boundary => f.write_str("materialized"),
        }
    }
}

/// A chain of row-local steps that runs as one kernel: one read of the
/// head's input, one write of the tail's output. The chain may end in a
/// step that takes its input as a stream (a fit, a writer): then the kernel
/// runs batch by batch into it and the chain's output never exists whole.
/// Each member keeps its own step identity (name, kind, run record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedGroup {
    /// Step indices, head first; each member's data input is the previous
    /// member's output.
    pub members: Vec<usize>,
    /// Whether the tail is such a streaming step rather than row-local.
    pub sink: bool,
}

impl FusedGroup {
    /// The last member, whose output leaves the group.
    pub fn tail(&self) -> usize {
        *self.members.last().expect("a group has members")
    }

    /// The row-local members, head first (all but a sink).
    pub fn row_local(&self) -> &[usize] {
        &self.members[..self.members.len() - usize::from(self.sink)]
    }
}

/// Fuse maximal chains of row-local ops. A producer fuses into its consumer
/// when both are row-local (or the consumer streams its input, which then
/// ends the chain), the consumer reads it as its data input, nothing else
/// reads it, the policy does not keep it, and both ask for the same device
/// (the same pin, or both the run's device). `ops` are in execution order.
/// Returns the groups (two members or more) and, per step
/// index, why its outputs are or are not materialized.
pub fn fuse(ops: &[LogicalOp], policy: &MaterializePolicy) -> (Vec<FusedGroup>, Vec<Materialized>) {
    let n = ops.iter().map(|o| o.step + 1).max().unwrap_or(0);
    let mut by_step: Vec<Option<&LogicalOp>> = vec![None; n];
    for op in ops {
        by_step[op.step] = Some(op);
    }
    let mut materialized: Vec<Materialized> = vec![Materialized::Boundary; n];
    for op in ops {
        materialized[op.step] = if policy.cache_all {
            Materialized::Cached
        } else if policy.keep.contains(&op.name) {
            Materialized::Requested
        } else if op.consumers > 1 {
            Materialized::Shared(op.consumers)
        } else {
            Materialized::Boundary
        };
    }
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    let mut groups: Vec<FusedGroup> = Vec::new();
    for op in ops {
        let Some(&(p, _)) = op.inputs.first() else {
            continue;
        };
        let Some(producer) = by_step[p] else {
            continue;
        };
        let fuses = (op.row_local || op.streams)
            && producer.row_local
            && materialized[p] == Materialized::Boundary
            && producer.consumers == 1
            && op.inputs.iter().filter(|(q, _)| *q == p).count() == 1
            && producer.device == op.device;
        if !fuses {
            continue;
        }
        materialized[p] = Materialized::Fused {
            into: op.name.clone(),
        };
        let g = match group_of[p] {
            Some(g) => g,
            None => {
                groups.push(FusedGroup {
                    members: vec![p],
                    sink: false,
                });
                group_of[p] = Some(groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[g].members.push(op.step);
        groups[g].sink = !op.row_local;
        group_of[op.step] = Some(g);
    }
    (groups, materialized)
}

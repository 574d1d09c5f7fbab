//! The planner: what fuses, and where each part of a pipeline runs.
//!
//! A tour of the core types, in the order a run uses them:
//!
//! - `lower` turns a validated pipeline into `LogicalOp`s: one per step,
//!   classified as io, fit, map, model or metric ([`OpKind`](crate::pipeline::OpKind)), with the bytes
//!   it is estimated to read and write.
//! - `fuse` merges maximal chains of row-local ops (derive, scale,
//!   fill_null, and any user step that is [`RowLocal`](crate::pipeline::RowLocal))
//!   into [`FusedGroup`]s, across step boundaries, wherever the table between
//!   two steps is needed by nothing else ([`Materialized`] says why a table
//!   is kept).
//! - [`Calibration`] is the cost model's constants (bandwidths, launch costs),
//!   measured by `fuseflow calibrate` and stored in the workspace, or the
//!   documented defaults.
//! - `place` puts each op or fused group on a device: pinned where the user
//!   pinned it, and under `auto` on the device the cost model finds fastest
//!   among the CPU and hardware GPUs (software adapters are never chosen).
//! - `siblings` sets apart the training steps that train together (a
//!   sweep's logistic fits on one design matrix, differing in L2): the
//!   scheduler runs each set as one job.
//! - [`PhysicalPlan`] is the result; its `Display` is what `fuseflow explain`
//!   prints and [`PhysicalPlan::to_dot`] draws it for Graphviz. The scheduler
//!   follows it: devices per step, and fused groups run as one kernel.

mod calibrate;
mod cost;
mod fuse;
mod logical;
mod physical;
mod place;
mod siblings;

pub use calibrate::calibrate;
pub use cost::{CALIBRATION_FILE, Calibration, Estimate, GpuProfile, Work};
pub use fuse::{FusedGroup, MaterializePolicy, Materialized};
pub use physical::{PhysicalPlan, PlanNode, PlanOptions};
pub use place::Placement;

//! fuseflow: a GPU-native, in-process dataflow engine for machine-learning
//! pipelines over Apache Arrow.
#![warn(missing_docs)]

pub mod backend;
pub mod cache;
pub mod data;
pub mod datasets;
pub mod error;
pub mod exec;
pub mod ir;
pub mod ml;
pub mod pipeline;
pub mod plan;
pub mod track;
pub mod workspace;

pub use error::{DeviceFailure, Error, Result};
pub use exec::{CachePolicy, CacheUse, Rerun, RunOptions, RunOutput, StepReport};
pub use pipeline::{Pipeline, Step, StepContext, Table};
pub use workspace::Workspace;

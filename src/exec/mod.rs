//! Execution: the scheduler that runs a validated pipeline.

pub mod scheduler;

pub use scheduler::{RunOptions, RunOutput, StepReport};

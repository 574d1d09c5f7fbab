//! Execution: the scheduler that runs a validated pipeline, batch scoring of
//! large files, and progress reporting.

pub mod batch_score;
pub mod progress;
pub mod scheduler;

pub use batch_score::{ScoreOptions, ScoreSummary, score_file};
pub use progress::{Progress, ProgressMode};
pub use scheduler::{RunOptions, RunOutput, StepReport};

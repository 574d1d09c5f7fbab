//! Execution: the scheduler that runs a validated pipeline (reusing cached
//! step outputs from a workspace), batch scoring of large files, and progress
//! reporting.

pub mod batch_score;
mod data;
mod fused;
pub mod progress;
mod replay;
mod reuse;
pub mod scheduler;

pub use batch_score::{ScoreOptions, ScoreSummary, peak_rss_bytes, score_file};
pub use progress::{Progress, ProgressMode, RunObserver, StepProgress};
pub use replay::fetch_output;
pub use scheduler::{CachePolicy, CacheUse, Rerun, RunOptions, RunOutput, StepReport};

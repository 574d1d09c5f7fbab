//! Execution: the scheduler that runs a validated pipeline (reusing cached
//! step outputs from a workspace), batch scoring of large files, and progress
//! reporting.
//!
//! - [`RunOptions`] (`options.rs`): the knobs of one run; [`RunOutput`] and
//!   [`StepReport`] (`report.rs`): what it hands back.
//! - `run.rs`: `Pipeline::run`, `run_with` and `plan`: plan, record, schedule.
//! - `scheduler.rs`: the loop, over one state per step (`state.rs`); `ready.rs`: the
//!   ready queue; `job.rs`: one job on a worker; `recorder.rs`: what a run
//!   writes to the run store; `reuse.rs`: cache keys, lookup, storing;
//!   `pushdown.rs`: the columns and row groups a step lets its stream input
//!   skip; `siblings.rs`: sibling training steps run as one job.

pub mod batch_score;
mod data;
mod fused;
mod job;
mod options;
pub mod progress;
mod pushdown;
mod ready;
mod recorder;
mod replay;
mod report;
mod reuse;
mod run;
mod scheduler;
mod siblings;
mod state;

pub use batch_score::{ScoreOptions, ScoreSummary, peak_rss_bytes, score_file};
pub use options::{CachePolicy, Cancel, Rerun, RunOptions};
pub use progress::{Progress, ProgressMode, RunObserver, StepProgress};
pub use replay::fetch_output;
pub(crate) use replay::recorded_pipeline;
pub use report::{CacheUse, RunOutput, StepReport};

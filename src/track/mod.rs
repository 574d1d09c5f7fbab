//! The run store: what ran, when, where, and what it produced.
//!
//! Every run of a pipeline is recorded in the workspace's SQLite database
//! (`.fuseflow/runs.db` by default), so that the command line can list runs
//! (`fuseflow runs`), show one (`fuseflow show`), fetch an intermediate output
//! by its content hash (`fuseflow output`) and explain a cache miss by
//! comparing a step's key fields with its previous run (`fuseflow why`).
//!
//! # Core types
//! - [`RunStore`]: the open database. [`RunStore::begin_run`],
//!   [`RunStore::record_step`], [`RunStore::record_metric`] and
//!   [`RunStore::finish_run`] record a run as it goes; [`RunStore::runs`],
//!   [`RunStore::run`], [`RunStore::step_run`], [`RunStore::previous_step_run`]
//!   and [`RunStore::find_output`] read it back. Queries take a run reference:
//!   a full [`RunId`], a unique prefix of one, or `latest`.
//! - [`PipelineRecord`] and [`StepRecord`]: what the executor hands in.
//! - [`RunSummary`], [`RunDetail`], [`StepRunRow`], [`MetricRow`]: what
//!   queries hand back; [`render_runs`] and [`render_run`] turn them into text.
//! - [`SweepResults`]: a sweep's variants compared; [`Chart`] draws one of
//!   its metrics as SVG or PNG.
//! - [`PublishedVersion`], [`PublishedSpec`], [`Publication`]: pipelines
//!   published to `fuseflow serve` ([`RunStore::publish`]), numbered
//!   versions with one default.
//!
//! # Schema
//! `pipelines` (name, spec hash, spec), `runs` (id, pipeline, parameters,
//! status, start and end, error, host and pid), `step_runs` (cache key and its
//! fields, device, hit and the run reused from, duration, rows, bytes, error,
//! notes), `step_outputs` (port and content hash per step run) and `metrics`
//! (step, name, value), `sweep_variants`, `published` (name, version, spec,
//! anchor, enabled) and `published_defaults`. `PRAGMA user_version` numbers the schema; opening a
//! store applies missing migrations, and refuses a database from a newer
//! fuseflow.
//!
//! # Crashes and concurrency
//! The database is in WAL mode and every recording call is one short
//! transaction, so a process killed at any moment leaves the database as of
//! its last call: the steps recorded so far are intact. A run left `running`
//! by a process of this host that no longer exists reads as
//! [`RunStatus::Interrupted`]. Several processes may record into one store at
//! once; writers queue on a busy timeout rather than fail.

mod chart;
mod clock;
mod process;
mod record;
mod report;
mod results;
mod schema;
mod store;

pub use chart::Chart;
pub use record::{
    MetricRow, PipelineRecord, RunDetail, RunId, RunStatus, RunSummary, StepRecord, StepRunRow,
    Variant, run_params_text, spec_param_values,
};
pub use report::{render_gc, render_objects, render_run, render_runs};
pub use results::{SweepResults, VariantResult, VariantStatus};
pub use store::{
    BUSY_TIMEOUT, FileStat, Publication, PublishedSpec, PublishedVersion, RunFilter, RunStore,
};

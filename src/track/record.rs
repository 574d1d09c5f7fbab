//! The values that go into the run store and come out of its queries.

use std::fmt;
use std::time::{Duration, SystemTime};

/// A run's id: `YYYYMMDD-HHMMSS-xxxx`, the UTC start time to the second and
/// four hex digits drawn at random per run.
///
/// Time first makes ids sort by start time and tells the reader when a run
/// happened; the suffix separates runs begun in the same second. Ids stay
/// unique across processes because the store inserts them under a `UNIQUE`
/// constraint and draws a new suffix when one is taken, and they stay
/// meaningful when run stores are compared or merged, which an autoincrement
/// integer would not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(String);

impl RunId {
    /// An id given as text. Whether a run has it is checked where it is used:
    /// recording into an unknown run fails with an error naming it.
    pub fn new(id: impl Into<String>) -> RunId {
        RunId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pipeline as run: its name, the hash of its spec, and the spec text.
///
/// A pipeline keeps one row per distinct spec hash, so the exact spec of any
/// past run can be shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineRecord {
    /// The pipeline's name.
    pub name: String,
    /// A hash of the spec (hex), identifying this version of the pipeline.
    pub spec_hash: String,
    /// The spec text.
    pub spec: String,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Triggered over REST (`fuseflow serve`) and waiting in the server's
    /// queue; its process is (as far as can be told) alive.
    Queued,
    /// Begun and not finished, and its process is (as far as can be told) alive.
    Running,
    /// Every step finished.
    Succeeded,
    /// A step, or the run around it, failed.
    Failed,
    /// Cancelled while queued, or while running (before its next step; the
    /// steps that had finished are recorded).
    Cancelled,
    /// The process stopped (killed, crashed) before finishing the run.
    Interrupted,
}

impl RunStatus {
    /// The lowercase name stored in the database and shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the run has ended (it is neither queued nor running).
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// The status named by [`RunStatus::as_str`], if any.
    pub fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Interrupted,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one step in a run, as recorded by the executor.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRecord {
    /// The step's name.
    pub step: String,
    /// The step's kind.
    pub kind: String,
    /// The step's cache key (hex).
    pub cache_key: String,
    /// A stable text form of the fields the cache key was computed from, one
    /// field per line, so that `fuseflow why` can compare two runs field by
    /// field. The store keeps it as given.
    pub key_fields: String,
    /// Each output port and the content hash (hex) of what it produced, in port order.
    pub outputs: Vec<(String, String)>,
    /// The device the step ran on (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// Whether the outputs came from the cache instead of running the step.
    pub cache_hit: bool,
    /// On a cache hit, the run that produced the cached outputs, when known.
    pub reused_from: Option<RunId>,
    /// How long the step took (for a hit: how long loading took).
    pub duration: Duration,
    /// Rows across the step's outputs.
    pub rows: u64,
    /// Bytes of the rows of the step's outputs.
    pub bytes: u64,
    /// Rows and bytes of each output, in port order (empty where no output
    /// was materialized, and for steps recorded before fuseflow kept them).
    pub sizes: Vec<(u64, u64)>,
    /// The step's error, if it failed.
    pub error: Option<String>,
    /// Free-form notes, such as why the step fell back to another device.
    pub notes: Option<String>,
}

/// One line of `fuseflow runs`: a run and counts over its steps.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The run's id.
    pub id: RunId,
    /// The pipeline's name.
    pub pipeline: String,
    /// The hash of the spec that ran.
    pub spec_hash: String,
    /// The run's parameters, as given to `begin_run`.
    pub params: String,
    /// The run's status; a `queued` or `running` run whose process is gone
    /// reads as [`RunStatus::Interrupted`].
    pub status: RunStatus,
    /// When the run began.
    pub started: SystemTime,
    /// When the run finished, if it did.
    pub ended: Option<SystemTime>,
    /// `ended - started`, if the run finished.
    pub duration: Option<Duration>,
    /// Step runs recorded.
    pub steps: u64,
    /// Of those, cache hits.
    pub hits: u64,
    /// Of those, failures.
    pub failed_steps: u64,
    /// The run's error, if it failed.
    pub error: Option<String>,
    /// The host the run was begun on.
    pub host: String,
    /// The pid of the process that ran it.
    pub pid: u32,
}

/// One recorded step run, as read back from the store.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRunRow {
    /// The run it belongs to.
    pub run: RunId,
    /// The step and everything recorded for it.
    pub record: StepRecord,
    /// When it was recorded (when the step finished).
    pub recorded: SystemTime,
}

/// A metric recorded by a step of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    /// The step that computed it.
    pub step: String,
    /// The metric's name.
    pub name: String,
    /// Its value (NaN round-trips as NaN).
    pub value: f64,
}

/// Everything about one run: `fuseflow show`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunDetail {
    /// The run and its counts.
    pub summary: RunSummary,
    /// Step runs in the order they were recorded.
    pub steps: Vec<StepRunRow>,
    /// Metrics in the order they were first recorded.
    pub metrics: Vec<MetricRow>,
}

/// A run's parameters as the store records them (`RunSummary::params`):
/// the re-runs asked for (a `rerun = ...` line, when given), then the
/// spec's parameter values, `(name, value as TOML writes it)`, as a
/// `[params]` table.
pub fn run_params_text(rerun: Option<String>, params: &[(String, String)]) -> String {
    let mut lines: Vec<String> = rerun.into_iter().collect();
    if !params.is_empty() {
        lines.push("[params]".into());
        lines.extend(
            params
                .iter()
                .map(|(name, value)| format!("{name} = {value}")),
        );
    }
    lines.join("\n")
}

/// The spec's parameter values in a run's parameters' text (written by
/// [`run_params_text`]), when it gave any.
pub fn spec_param_values(text: &str) -> Option<toml::Table> {
    let recorded: toml::Table = toml::from_str(text).ok()?;
    match recorded.get("params")? {
        toml::Value::Table(params) => Some(params.clone()),
        _ => None,
    }
}

/// One variant of a sweep: a value for each dimension, and the step
/// instances that compute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Its name, the assignment written out (`scaled=minmax,l2=10`).
    pub name: String,
    /// `(dimension, value)` in dimension order: a parameter's value as TOML
    /// writes it (strings bare), or the name of a step's alternative.
    pub assignment: Vec<(String, String)>,
    /// `(step, instance)`: for each step of the spec, the name of the step
    /// of the compiled pipeline that computes it for this variant.
    pub steps: Vec<(String, String)>,
}

impl Variant {
    /// The compiled pipeline's step that computes spec step `step` for this
    /// variant.
    pub fn instance(&self, step: &str) -> Option<&str> {
        self.steps
            .iter()
            .find(|(s, _)| s == step)
            .map(|(_, i)| i.as_str())
    }

    /// The value this variant gives `dimension`.
    pub fn value(&self, dimension: &str) -> Option<&str> {
        self.assignment
            .iter()
            .find(|(d, _)| d == dimension)
            .map(|(_, v)| v.as_str())
    }
}

//! The run recorder: everything a run writes to its workspace's run store.
//!
//! A run with a workspace is begun in the store before its first step
//! starts, records each step run as it finishes (ran, reused, a member of a
//! fused group, or failed) and is finished, succeeded or failed, once its
//! objects are durable. Without a workspace the recorder records nothing, so
//! the scheduler calls it the same way in both cases. A step run's record
//! carries the metrics among its outputs (any table with columns `metric`
//! and `value`).

use std::time::Duration;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_schema::{DataType, Schema, SchemaRef};

use super::data::Data;
use super::options::{Rerun, RunOptions};
use super::reuse::{FILE_PREFIX, StepKey, output_hashes, producer};
use super::scheduler::Scheduled;
use crate::backend::Device;
use crate::data::{ContentHash, Table};
use crate::error::{Error, Result};
use crate::pipeline::graph::{Pipeline, StepNode};
use crate::track::{PipelineRecord, RunId, RunStatus, StepRecord, StepRunRow, run_params_text};
use crate::workspace::Workspace;

/// Writes one run to the run store of its workspace, if it has one.
pub(super) struct RunRecorder<'a> {
    /// The workspace and the run's id in its store.
    recording: Option<(&'a Workspace, RunId)>,
}

impl<'a> RunRecorder<'a> {
    /// Begin the run in `ws`'s store (none: a recorder that records
    /// nothing), with the pipeline's definition and the re-runs asked for.
    pub(super) fn begin(
        pipeline: &Pipeline,
        ws: Option<&'a Workspace>,
        options: &RunOptions,
    ) -> Result<Self> {
        let Some(ws) = ws else {
            return Ok(RunRecorder { recording: None });
        };
        let spec = match &options.spec {
            Some(spec) => spec.clone(),
            None => pipeline.explain()?,
        };
        let rerun = match &options.rerun {
            Rerun::Nothing => None,
            Rerun::All => Some("rerun = \"all\"".to_string()),
            Rerun::Steps(steps) => Some(format!("rerun = {steps:?}")),
        };
        let params = run_params_text(rerun, &options.params);
        let variants = pipeline.variants();
        let pipeline = PipelineRecord {
            name: pipeline.name().to_string(),
            spec_hash: blake3::hash(spec.as_bytes()).to_hex().to_string(),
            spec,
        };
        let run = match &options.queued_run {
            None => ws.runs().begin_run(&pipeline, &params)?,
            Some(run) if ws.runs().start_queued(run, &pipeline, &params)? => run.clone(),
            Some(_) => return Err(Error::Cancelled),
        };
        ws.runs().record_variants(&run, variants)?;
        Ok(RunRecorder {
            recording: Some((ws, run)),
        })
    }

    /// Whether the run is recorded (it has a workspace).
    pub(super) fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// The run's id in the store.
    pub(super) fn run_id(&self) -> Option<&RunId> {
        self.recording.as_ref().map(|(_, run)| run)
    }

    /// Record a step that ran, with the hashes its outputs were stored
    /// under. A step without a key or hashes was not cached: nothing to record.
    pub(super) fn ran(
        &self,
        node: &StepNode,
        key: Option<&StepKey>,
        tables: &[Data],
        hashes: Option<&[ContentHash]>,
        duration: Duration,
        notes: &[String],
    ) -> Result<()> {
        let (Some((ws, run)), Some(key), Some(hashes)) = (&self.recording, key, hashes) else {
            return Ok(());
        };
        let provenance = Provenance::Ran { tables, hashes };
        record_step(ws, run, node, key, provenance, duration, notes.to_vec())
    }

    /// Record a step whose outputs an earlier run's `row` stood in for
    /// (`schemas`: its outputs' planned schemas).
    ///
    /// # Errors
    /// [`Error::Internal`] without a workspace or a key: a hit cannot happen then.
    pub(super) fn reused(
        &self,
        node: &StepNode,
        key: Option<&StepKey>,
        row: &StepRunRow,
        schemas: &[Option<SchemaRef>],
        duration: Duration,
        notes: &[String],
    ) -> Result<()> {
        let (Some((ws, run)), Some(key)) = (&self.recording, key) else {
            return Err(Error::Internal("a cache hit without a workspace".into()));
        };
        let provenance = Provenance::Reused { row, schemas };
        record_step(ws, run, node, key, provenance, duration, notes.to_vec())
    }

    /// Record a member of a fused group before its tail, now that the tail
    /// ran or was reused (`reused_from`), with `rows` the rows the member
    /// passed on; returns the rows to report. A group reused from a sink's
    /// record does not say what flowed through it (`rows` is empty): the
    /// member's own earlier record does.
    ///
    /// # Errors
    /// [`Error::Internal`] when the member has no key among `keys`.
    pub(super) fn fused_member(
        &self,
        node: &StepNode,
        keys: &[(usize, StepKey)],
        member: usize,
        rows: &[usize],
        reused_from: Option<&RunId>,
        notes: &[String],
    ) -> Result<Vec<usize>> {
        let Some((ws, run)) = &self.recording else {
            return Ok(rows.to_vec());
        };
        let rows = match reused_from {
            Some(from) if rows.is_empty() => {
                let earlier = ws.runs().step_run(from.as_str(), &node.name)?;
                vec![earlier.record.rows as usize]
            }
            _ => rows.to_vec(),
        };
        let key = keys
            .iter()
            .find_map(|(m, key)| (*m == member).then_some(key))
            .ok_or_else(|| Error::Internal(format!("fused step '{}' has no key", node.name)))?;
        let provenance = Provenance::Fused {
            rows: rows.iter().sum::<usize>() as u64,
            reused_from: reused_from.cloned(),
        };
        record_step(
            ws,
            run,
            node,
            key,
            provenance,
            Duration::ZERO,
            notes.to_vec(),
        )?;
        Ok(rows)
    }

    /// Record a step that failed with `error`.
    pub(super) fn failed(
        &self,
        node: &StepNode,
        device: &Device,
        key: Option<&StepKey>,
        duration: Duration,
        error: &Error,
    ) -> Result<()> {
        let Some((ws, run)) = &self.recording else {
            return Ok(());
        };
        let record = StepRecord {
            error: Some(error.to_string()),
            ..record_of(node, &device.to_string(), key, duration)?
        };
        ws.runs().replace_step(run, &record)
    }

    /// Finish the run: succeeded only once its objects are durable (one
    /// batched sync), else failed with the error, which is handed back. A
    /// run that kept going past failed steps is recorded as failed too,
    /// naming them, and its result handed back.
    ///
    /// # Errors
    /// The run's own error, a failed sync, or a failure to record the end.
    pub(super) fn finish(&self, result: Result<Scheduled>) -> Result<Scheduled> {
        let Some((ws, run)) = &self.recording else {
            return result;
        };
        let result = result.and_then(|done| ws.sync().map(|()| done));
        let (status, error) = match &result {
            Ok(done) if done.failed.is_empty() => (RunStatus::Succeeded, None),
            Ok(done) => (RunStatus::Failed, Some(failures_text(&done.failed))),
            Err(e @ Error::Cancelled) => (RunStatus::Cancelled, Some(e.to_string())),
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        ws.runs().finish_run(run, status, error.as_deref())?;
        result
    }
}

/// The error recorded for a run that kept going past failed steps.
fn failures_text(failed: &[Error]) -> String {
    match failed {
        [one] => one.to_string(),
        [first, ..] => format!("{} steps failed; the first: {first}", failed.len()),
        [] => String::new(),
    }
}

/// How a step's outputs came to be, for the run store.
enum Provenance<'a> {
    /// The step ran.
    Ran {
        tables: &'a [Data],
        hashes: &'a [ContentHash],
    },
    /// The outputs of an earlier step run were reused; `schemas` are the
    /// outputs' planned schemas, where known.
    Reused {
        row: &'a StepRunRow,
        schemas: &'a [Option<SchemaRef>],
    },
    /// The step ran inside a fused group whose tail computed (or reused,
    /// from `reused_from`) `rows` rows; its own output was never stored.
    Fused {
        rows: u64,
        reused_from: Option<RunId>,
    },
}

/// Record a finished step in the run store, with the metrics among its
/// outputs. A step recorded earlier in the same run (a hit whose outputs were
/// then lost, so it ran again) has its record replaced.
fn record_step(
    ws: &Workspace,
    run: &RunId,
    node: &StepNode,
    key: &StepKey,
    provenance: Provenance,
    duration: Duration,
    mut notes: Vec<String>,
) -> Result<()> {
    notes.extend(key.notes());
    let sizes: Vec<(u64, u64)> = match &provenance {
        Provenance::Ran { tables, .. } => tables
            .iter()
            .map(|t| {
                let (rows, bytes) = t.size();
                (rows as u64, bytes as u64)
            })
            .collect(),
        Provenance::Reused { row, .. } => row.record.sizes.clone(),
        Provenance::Fused { .. } => Vec::new(),
    };
    let (outputs, cache_hit, reused_from, rows, bytes, metrics) = match provenance {
        Provenance::Ran { tables, hashes } => (
            output_ports(node, hashes),
            false,
            None,
            tables.iter().map(|t| t.size().0 as u64).sum(),
            tables.iter().map(|t| t.size().1 as u64).sum(),
            tables
                .iter()
                .filter_map(Data::as_table)
                .flat_map(metric_rows)
                .collect::<Vec<_>>(),
        ),
        Provenance::Reused { row, schemas } => (
            row.record.outputs.clone(),
            true,
            Some(producer(row)),
            row.record.rows,
            row.record.bytes,
            reused_metrics(ws, row, schemas)?,
        ),
        Provenance::Fused { rows, reused_from } => (
            Vec::new(),
            reused_from.is_some(),
            reused_from,
            rows,
            0,
            Vec::new(),
        ),
    };
    let runs = ws.runs();
    let record = StepRecord {
        outputs,
        cache_hit,
        reused_from,
        rows,
        bytes,
        sizes,
        notes: (!notes.is_empty()).then(|| notes.join("; ")),
        ..record_of(node, &key.device, Some(key), duration)?
    };
    runs.replace_step(run, &record)?;
    for (name, value) in metrics {
        runs.record_metric(run, &node.name, &name, value)?;
    }
    Ok(())
}

/// The outputs a step that ran records: each output port, then each file
/// it wrote (on a port `file:<path>`), with the content hash stored for it.
fn output_ports(node: &StepNode, hashes: &[ContentHash]) -> Vec<(String, String)> {
    node.step
        .outputs()
        .iter()
        .map(|p| p.to_string())
        .chain(
            node.step
                .written_files()
                .iter()
                .map(|f| format!("{FILE_PREFIX}{}", f.display())),
        )
        .zip(hashes)
        .map(|(p, h)| (p, h.to_string()))
        .collect()
}

/// The metrics of an earlier step run whose outputs are reused: those it
/// recorded, else those among its outputs (only the small metrics tables,
/// known by their planned schemas, are loaded).
fn reused_metrics(
    ws: &Workspace,
    row: &StepRunRow,
    schemas: &[Option<SchemaRef>],
) -> Result<Vec<(String, f64)>> {
    let mut metrics = ws.runs().step_metrics(&row.run, &row.record.step)?;
    if !metrics.is_empty() {
        return Ok(metrics);
    }
    for (hash, schema) in output_hashes(row)?.iter().zip(schemas) {
        if schema.as_deref().is_some_and(is_metrics_schema)
            && let Ok(t) = ws.load(hash)?.found()
        {
            metrics.extend(metric_rows(&t));
        }
    }
    Ok(metrics)
}

/// A step run's record with no outputs, no error and no notes yet.
fn record_of(
    node: &StepNode,
    device: &str,
    key: Option<&StepKey>,
    duration: Duration,
) -> Result<StepRecord> {
    Ok(StepRecord {
        step: node.name.clone(),
        kind: node.step.kind().to_string(),
        cache_key: key.map(|k| k.key.to_string()).unwrap_or_default(),
        key_fields: key
            .map(|k| k.fields.to_text())
            .transpose()?
            .unwrap_or_default(),
        outputs: Vec::new(),
        device: device.to_string(),
        cache_hit: false,
        reused_from: None,
        duration,
        rows: 0,
        bytes: 0,
        sizes: Vec::new(),
        error: None,
        notes: None,
    })
}

/// `(name, value)` pairs of a metrics table: one with exactly the columns
/// `metric` (utf8) and `value` (f64), as evaluation steps produce.
fn metric_rows(table: &Table) -> Vec<(String, f64)> {
    if !is_metrics_schema(table.schema()) {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for batch in table.batches() {
        let names = batch.column(0).as_string::<i32>();
        let values = batch.column(1).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            if names.is_valid(i) {
                let value = if values.is_valid(i) {
                    values.value(i)
                } else {
                    f64::NAN
                };
                rows.push((names.value(i).to_string(), value));
            }
        }
    }
    rows
}

fn is_metrics_schema(schema: &Schema) -> bool {
    let fields = schema.fields();
    fields.len() == 2
        && fields[0].name() == "metric"
        && fields[0].data_type() == &DataType::Utf8
        && fields[1].name() == "value"
        && fields[1].data_type() == &DataType::Float64
}

//! Reading runs back: by id, prefix or `latest`, their steps, the reusable
//! output of a cache key.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{CANDIDATES_SHOWN, FileStat, RunStore};
use crate::error::{Error, Result};
use crate::track::clock::from_ms;
use crate::track::process::Owner;
use crate::track::record::{
    MetricRow, RunDetail, RunId, RunStatus, RunSummary, StepRecord, StepRunRow,
};

impl RunStore {
    /// The run named by `reference`: a full id, a prefix of exactly one id, or
    /// `latest` (the most recently begun run).
    ///
    /// # Errors
    /// [`Error::NotFound`] when no run matches (suggesting `fuseflow runs`),
    /// [`Error::RunStore`] when a prefix matches several (listing them).
    pub fn resolve(&self, reference: &str) -> Result<RunId> {
        let conn = self.conn();
        self.resolve_in(&conn, reference)
    }

    /// All runs, or those of one pipeline, newest first.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be read.
    pub fn runs(&self, pipeline: Option<&str>) -> Result<Vec<RunSummary>> {
        let conn = self.conn();
        let sql = format!(
            "{SUMMARY_SELECT} WHERE (?1 IS NULL OR r.pipeline = ?1) ORDER BY r.started_ms DESC, r.seq DESC"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.sql(e))?;
        stmt.query_map([pipeline], |row| summary_of(row, &self.owner))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.sql(e))
    }

    /// A page of the runs `filter` selects, newest first, and how many it
    /// selects in all.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be read.
    pub fn runs_page(&self, filter: &RunFilter) -> Result<(Vec<RunSummary>, usize)> {
        let conn = self.conn();
        let sql = format!(
            "{SUMMARY_SELECT} WHERE (?1 IS NULL OR r.pipeline = ?1)
               AND (?2 IS NULL OR r.started_ms >= ?2) AND (?3 IS NULL OR r.started_ms < ?3)
             ORDER BY r.started_ms DESC, r.seq DESC"
        );
        let ms = |t: Option<std::time::SystemTime>| t.map(crate::track::clock::to_ms);
        let mut stmt = conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let runs: Vec<RunSummary> = stmt
            .query_map(
                params![filter.pipeline, ms(filter.since), ms(filter.until)],
                |row| summary_of(row, &self.owner),
            )
            .and_then(|rows| rows.collect())
            .map_err(|e| self.sql(e))?;
        // Status is filtered here: a run's stored status is not the one it
        // reads as once its process is gone.
        let selected: Vec<RunSummary> = (runs.into_iter())
            .filter(|r| filter.status.is_none_or(|s| r.status == s))
            .collect();
        let total = selected.len();
        let page = (selected.into_iter().skip(filter.offset))
            .take(filter.limit)
            .collect();
        Ok((page, total))
    }

    /// One run with its step runs (in recorded order) and metrics.
    ///
    /// # Errors
    /// As [`RunStore::resolve`], and [`Error::RunStore`] when the database
    /// cannot be read.
    pub fn run(&self, reference: &str) -> Result<RunDetail> {
        let conn = self.conn();
        let id = self.resolve_in(&conn, reference)?;
        let read = || -> rusqlite::Result<RunDetail> {
            let summary = conn.query_row(
                &format!("{SUMMARY_SELECT} WHERE r.id = ?1"),
                [id.as_str()],
                |row| summary_of(row, &self.owner),
            )?;
            let steps = {
                let mut stmt =
                    conn.prepare(&format!("{STEP_SELECT} WHERE s.run = ?1 ORDER BY s.seq"))?;
                stmt.query_map([id.as_str()], step_of)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let steps = steps
                .into_iter()
                .map(|row| with_outputs(&conn, row))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let metrics = {
                let mut stmt = conn
                    .prepare("SELECT step, name, value FROM metrics WHERE run = ?1 ORDER BY seq")?;
                stmt.query_map([id.as_str()], |row| {
                    Ok(MetricRow {
                        step: row.get(0)?,
                        name: row.get(1)?,
                        value: row.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            Ok(RunDetail {
                summary,
                steps,
                metrics,
            })
        };
        read().map_err(|e| self.sql(e))
    }

    /// The pipeline definition recorded for a run: the spec file's text for
    /// runs of spec files, else the pipeline's `explain` output.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the run is unknown or the database cannot be
    /// read.
    pub fn spec_of(&self, run: &RunId) -> Result<String> {
        let conn = self.conn();
        conn.query_row(
            "SELECT p.spec FROM runs r JOIN pipelines p \
             ON p.name = r.pipeline AND p.spec_hash = r.spec_hash WHERE r.id = ?1",
            [run.as_str()],
            |row| row.get(0),
        )
        .map_err(|e| self.sql(e))
    }

    /// The parameters recorded for a run ([`RunSummary::params`]).
    ///
    /// # Errors
    /// [`Error::RunStore`] when the run is unknown or the database cannot be
    /// read.
    pub fn params_of(&self, run: &RunId) -> Result<String> {
        let conn = self.conn();
        conn.query_row(
            "SELECT params FROM runs WHERE id = ?1",
            [run.as_str()],
            |row| row.get(0),
        )
        .map_err(|e| self.sql(e))
    }

    /// The record of `step` in the run named by `run` (see [`RunStore::resolve`]).
    ///
    /// # Errors
    /// As [`RunStore::resolve`], and [`Error::NotFound`] listing the run's
    /// steps when it has no step of that name.
    pub fn step_run(&self, run: &str, step: &str) -> Result<StepRunRow> {
        let conn = self.conn();
        let id = self.resolve_in(&conn, run)?;
        self.step_run_in(&conn, &id, step)
    }

    /// The most recent successful step run with this cache key that stored
    /// outputs, in any run of any pipeline: its outputs can stand in for
    /// running the step again. (A step that ran inside a fused group without
    /// its output being kept stored none.)
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be read.
    pub fn reusable(&self, cache_key: &str) -> Result<Option<StepRunRow>> {
        let conn = self.conn();
        let read = || -> rusqlite::Result<Option<StepRunRow>> {
            let row = conn
                .query_row(
                    &format!(
                        "{STEP_SELECT} WHERE s.cache_key = ?1 AND s.error IS NULL
                           AND EXISTS (SELECT 1 FROM step_outputs o
                                       WHERE o.run = s.run AND o.step = s.step)
                         ORDER BY s.recorded_ms DESC LIMIT 1"
                    ),
                    [cache_key],
                    step_of,
                )
                .optional()?;
            row.map(|row| with_outputs(&conn, row)).transpose()
        };
        read().map_err(|e| self.sql(e))
    }

    /// The most recent earlier record of `step` in the same pipeline: from the
    /// latest run begun before the run named by `run` (by start time, then by
    /// the order runs were begun) that recorded a step of that name. `None`
    /// when there is none. This is what `fuseflow why` compares against.
    ///
    /// # Errors
    /// As [`RunStore::resolve`], and [`Error::RunStore`] when the database
    /// cannot be read.
    pub fn previous_step_run(&self, run: &str, step: &str) -> Result<Option<StepRunRow>> {
        let conn = self.conn();
        let id = self.resolve_in(&conn, run)?;
        let read = || -> rusqlite::Result<Option<StepRunRow>> {
            let row = conn
                .query_row(
                    &format!(
                        "{STEP_SELECT} JOIN runs r ON r.id = s.run
                         JOIN runs this ON this.id = ?1
                         WHERE s.step = ?2 AND r.pipeline = this.pipeline
                           AND (r.started_ms < this.started_ms
                                OR (r.started_ms = this.started_ms AND r.seq < this.seq))
                         ORDER BY r.started_ms DESC, r.seq DESC
                         LIMIT 1"
                    ),
                    params![id.as_str(), step],
                    step_of,
                )
                .optional()?;
            row.map(|row| with_outputs(&conn, row)).transpose()
        };
        read().map_err(|e| self.sql(e))
    }

    /// The content hash of an output of `step` in the run named by `run`:
    /// `(port, hash)`. `port` may be left out when the step has one output.
    ///
    /// # Errors
    /// As [`RunStore::step_run`], and [`Error::NotFound`] listing the step's
    /// outputs when `port` names none of them, or is left out and there are
    /// several.
    pub fn find_output(
        &self,
        run: &str,
        step: &str,
        port: Option<&str>,
    ) -> Result<(String, String)> {
        let conn = self.conn();
        let id = self.resolve_in(&conn, run)?;
        let row = self.step_run_in(&conn, &id, step)?;
        let (outputs, notes) = (row.record.outputs, row.record.notes);
        let ports = || {
            outputs
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let found = match port {
            Some(port) => outputs.iter().find(|(p, _)| p == port),
            None if outputs.len() == 1 => outputs.first(),
            None => None,
        };
        if let Some(out) = found {
            return Ok(out.clone());
        }
        let message = match (port, outputs.is_empty()) {
            (_, true) => format!(
                "step '{step}' of run {id} recorded no outputs{}",
                notes.map(|n| format!(" ({n})")).unwrap_or_default()
            ),
            (Some(port), false) => format!(
                "step '{step}' of run {id} has no output '{port}'; its outputs are: {}",
                ports()
            ),
            (None, false) => format!(
                "step '{step}' of run {id} has several outputs; name one of: {}",
                ports()
            ),
        };
        Err(Error::not_found(message))
    }

    /// The content hash (hex) recorded for the file at `path` when it had
    /// exactly the `stat` it has now, if any.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be read.
    pub fn source_hash(&self, path: &str, stat: &FileStat) -> Result<Option<String>> {
        self.conn()
            .query_row(
                "SELECT hash FROM source_hashes
                 WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND inode = ?4",
                params![path, stat.size, stat.mtime_ns, stat.inode],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    pub(super) fn resolve_in(&self, conn: &Connection, reference: &str) -> Result<RunId> {
        let read = || -> rusqlite::Result<Vec<String>> {
            if reference == "latest" {
                return conn
                    .query_row(
                        "SELECT id FROM runs ORDER BY started_ms DESC, seq DESC LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()
                    .map(|id| id.into_iter().collect());
            }
            let exact: Option<String> = conn
                .query_row("SELECT id FROM runs WHERE id = ?1", [reference], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(id) = exact {
                return Ok(vec![id]);
            }
            let mut stmt = conn.prepare(
                "SELECT id FROM runs WHERE substr(id, 1, length(?1)) = ?1
                 ORDER BY started_ms DESC, seq DESC LIMIT ?2",
            )?;
            stmt.query_map(params![reference, CANDIDATES_SHOWN as i64 + 1], |r| {
                r.get(0)
            })?
            .collect()
        };
        if reference.is_empty() {
            return Err(Error::run_store(
                &self.path,
                "empty run id; give a run id, a unique prefix of one, or `latest`",
            ));
        }
        let mut found = read().map_err(|e| self.sql(e))?;
        match found.len() {
            0 if reference == "latest" => Err(Error::not_found(
                "no runs in this workspace yet, so there is no latest run",
            )),
            0 => Err(self.unknown_run(reference)),
            1 => Ok(RunId::new(found.remove(0))),
            n => {
                let more = if n > CANDIDATES_SHOWN { ", ..." } else { "" };
                found.truncate(CANDIDATES_SHOWN);
                Err(Error::run_store(
                    &self.path,
                    format!(
                        "run id prefix '{reference}' is ambiguous: it matches {}{more}; give more characters",
                        found.join(", ")
                    ),
                ))
            }
        }
    }

    pub(super) fn step_run_in(
        &self,
        conn: &Connection,
        run: &RunId,
        step: &str,
    ) -> Result<StepRunRow> {
        let read = || -> rusqlite::Result<std::result::Result<StepRunRow, Vec<String>>> {
            let row = conn
                .query_row(
                    &format!("{STEP_SELECT} WHERE s.run = ?1 AND s.step = ?2"),
                    params![run.as_str(), step],
                    step_of,
                )
                .optional()?;
            if let Some(row) = row {
                return with_outputs(conn, row).map(Ok);
            }
            let mut stmt =
                conn.prepare("SELECT step FROM step_runs WHERE run = ?1 ORDER BY seq")?;
            let steps = stmt
                .query_map([run.as_str()], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(Err(steps))
        };
        match read().map_err(|e| self.sql(e))? {
            Ok(row) => Ok(row),
            Err(steps) if steps.is_empty() => Err(Error::not_found(format!(
                "run {run} has no step '{step}'; it recorded no steps"
            ))),
            Err(steps) => Err(Error::not_found(format!(
                "run {run} has no step '{step}'; its steps are: {}",
                steps.join(", ")
            ))),
        }
    }
}

/// Which runs [`RunStore::runs_page`] lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this pipeline's.
    pub pipeline: Option<String>,
    /// Only runs with this status (as they read now).
    pub status: Option<RunStatus>,
    /// Only runs begun at or after this time.
    pub since: Option<std::time::SystemTime>,
    /// Only runs begun before this time.
    pub until: Option<std::time::SystemTime>,
    /// Runs in the page, at most.
    pub limit: usize,
    /// Runs skipped before the page.
    pub offset: usize,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            pipeline: None,
            status: None,
            since: None,
            until: None,
            limit: 50,
            offset: 0,
        }
    }
}

/// Columns of a run summary, in the order [`summary_of`] reads them.
pub(super) const SUMMARY_SELECT: &str = "
    SELECT r.id, r.pipeline, r.spec_hash, r.params, r.status, r.started_ms, r.ended_ms, r.error,
           r.host, r.pid, r.pid_start,
           (SELECT COUNT(*) FROM step_runs s WHERE s.run = r.id),
           (SELECT COUNT(*) FROM step_runs s WHERE s.run = r.id AND s.cache_hit = 1),
           (SELECT COUNT(*) FROM step_runs s WHERE s.run = r.id AND s.error IS NOT NULL)
    FROM runs r";

/// A step run from `step_runs s`, in the order [`step_of`] reads the columns;
/// a `JOIN` or `WHERE` follows.
pub(super) const STEP_SELECT: &str = "
    SELECT s.run, s.step, s.kind, s.cache_key, s.key_fields, s.device, s.cache_hit,
           s.reused_from, s.duration_us, s.rows, s.bytes, s.error, s.notes, s.recorded_ms,
           s.output_sizes
    FROM step_runs s";

pub(super) fn summary_of(row: &Row<'_>, here: &Owner) -> rusqlite::Result<RunSummary> {
    let stored: String = row.get(4)?;
    let mut status = RunStatus::parse(&stored).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown run status '{stored}' (written by a newer fuseflow?)").into(),
        )
    })?;
    let owner = owner_of(row, 8)?;
    let mut error: Option<String> = row.get(7)?;
    if !status.is_finished() && owner.is_gone(here) {
        status = RunStatus::Interrupted;
        error = Some(gone_message(&owner));
    }
    let started = from_ms(row.get(5)?);
    let ended = row.get::<_, Option<i64>>(6)?.map(from_ms);
    Ok(RunSummary {
        id: RunId::new(row.get::<_, String>(0)?),
        pipeline: row.get(1)?,
        spec_hash: row.get(2)?,
        params: row.get(3)?,
        status,
        started,
        ended,
        duration: ended.map(|e| e.duration_since(started).unwrap_or_default()),
        steps: count(row, 11)?,
        hits: count(row, 12)?,
        failed_steps: count(row, 13)?,
        error,
        host: owner.host,
        pid: owner.pid,
    })
}

/// Rows and bytes per output as stored: `rows:bytes` joined by commas.
pub(super) fn encode_sizes(sizes: &[(u64, u64)]) -> String {
    let sizes: Vec<String> = sizes.iter().map(|(r, b)| format!("{r}:{b}")).collect();
    sizes.join(",")
}

/// The inverse of [`encode_sizes`]; what does not parse is left out.
pub(super) fn decode_sizes(text: &str) -> Vec<(u64, u64)> {
    text.split(',')
        .filter_map(|s| {
            let (r, b) = s.split_once(':')?;
            Some((r.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// A step run without its outputs (see [`with_outputs`]).
pub(super) fn step_of(row: &Row<'_>) -> rusqlite::Result<StepRunRow> {
    Ok(StepRunRow {
        run: RunId::new(row.get::<_, String>(0)?),
        record: StepRecord {
            step: row.get(1)?,
            kind: row.get(2)?,
            cache_key: row.get(3)?,
            key_fields: row.get(4)?,
            outputs: Vec::new(),
            device: row.get(5)?,
            cache_hit: row.get(6)?,
            reused_from: row.get::<_, Option<String>>(7)?.map(RunId::new),
            duration: Duration::from_micros(count(row, 8)?),
            rows: count(row, 9)?,
            bytes: count(row, 10)?,
            sizes: decode_sizes(&row.get::<_, String>(14)?),
            error: row.get(11)?,
            notes: row.get(12)?,
        },
        recorded: from_ms(row.get(13)?),
    })
}

pub(super) fn with_outputs(conn: &Connection, mut row: StepRunRow) -> rusqlite::Result<StepRunRow> {
    let mut stmt = conn
        .prepare("SELECT port, hash FROM step_outputs WHERE run = ?1 AND step = ?2 ORDER BY seq")?;
    row.record.outputs = stmt
        .query_map(params![row.run.as_str(), row.record.step], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(row)
}

/// The owner stored in columns `at` (host), `at + 1` (pid), `at + 2` (pid start).
pub(super) fn owner_of(row: &Row<'_>, at: usize) -> rusqlite::Result<Owner> {
    Ok(Owner {
        host: row.get(at)?,
        pid: row.get(at + 1)?,
        start: row
            .get::<_, Option<i64>>(at + 2)?
            .and_then(|s| u64::try_from(s).ok()),
    })
}

pub(super) fn gone_message(owner: &Owner) -> String {
    format!(
        "process {} on {} ended before the run finished (killed or crashed)",
        owner.pid, owner.host
    )
}

/// A non-negative integer column.
pub(super) fn count(row: &Row<'_>, at: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(at)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// SQLite integers are signed 64-bit; counts beyond that are clamped.
pub(super) fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

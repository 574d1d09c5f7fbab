//! Recording runs: a run begun, its steps, metrics and end, and the stat
//! cache of source hashes.

use std::time::SystemTime;

use rusqlite::params;

use super::read::{encode_sizes, gone_message, owner_of, saturating_i64};
use super::{FileStat, ID_ATTEMPTS, RunStore, random_u16};
use crate::error::{Error, Result};
use crate::track::clock::{Utc, to_ms};
use crate::track::record::{PipelineRecord, RunId, RunStatus, StepRecord};

impl RunStore {
    /// Start recording a run of `pipeline` with `params` (free-form text, such
    /// as the parameter overrides as TOML). Stores the pipeline's spec the
    /// first time its hash is seen, and the run as `running` with the start
    /// time, host and pid.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be written.
    pub fn begin_run(&self, pipeline: &PipelineRecord, params: &str) -> Result<RunId> {
        self.insert_run(pipeline, params, RunStatus::Running)
    }

    /// Record a run of `pipeline` as `queued` (a server's queue holds it),
    /// with the time it was queued as its start; [`RunStore::start_queued`]
    /// begins it, [`RunStore::end_queued`] cancels it.
    ///
    /// # Errors
    /// As [`RunStore::begin_run`].
    pub fn queue_run(&self, pipeline: &PipelineRecord, params: &str) -> Result<RunId> {
        self.insert_run(pipeline, params, RunStatus::Queued)
    }

    /// Begin a queued run: as [`RunStore::begin_run`], into the run already
    /// recorded, now `running` from now on, owned by this process. Answers
    /// `false`, changing nothing, when the run is no longer queued (it was
    /// cancelled).
    ///
    /// # Errors
    /// [`Error::RunStore`] when the run is unknown or the database cannot be
    /// written.
    pub fn start_queued(
        &self,
        run: &RunId,
        pipeline: &PipelineRecord,
        params: &str,
    ) -> Result<bool> {
        let ms = to_ms(SystemTime::now());
        let updated = self.write(|tx| {
            insert_pipeline(tx, pipeline, ms)?;
            tx.execute(
                "UPDATE runs SET status = 'running', started_ms = ?2, pipeline = ?3,
                     spec_hash = ?4, params = ?5, host = ?6, pid = ?7, pid_start = ?8
                 WHERE id = ?1 AND status = 'queued'",
                params![
                    run.as_str(),
                    ms,
                    pipeline.name,
                    pipeline.spec_hash,
                    params,
                    self.owner.host,
                    self.owner.pid,
                    self.owner.start.map(saturating_i64),
                ],
            )
        })?;
        if updated == 0 {
            self.resolve(run.as_str())?;
        }
        Ok(updated == 1)
    }

    /// End a run that is still queued (cancelled, or failed before it could
    /// begin) as `status` now, with `reason` as its error. Answers `false`,
    /// changing nothing, when it is not queued (it started, or had ended).
    ///
    /// # Errors
    /// [`Error::RunStore`] when `status` is not a finished one, the run is
    /// unknown or the database cannot be written.
    pub fn end_queued(&self, run: &RunId, status: RunStatus, reason: &str) -> Result<bool> {
        if !status.is_finished() {
            return Err(Error::run_store(
                &self.path,
                format!("queued run {run} cannot end as '{status}'"),
            ));
        }
        let ms = to_ms(SystemTime::now());
        let updated = self.write(|tx| {
            tx.execute(
                "UPDATE runs SET status = ?2, ended_ms = ?3, error = ?4
                 WHERE id = ?1 AND status = 'queued'",
                params![run.as_str(), status.as_str(), ms, reason],
            )
        })?;
        if updated == 0 {
            self.resolve(run.as_str())?;
        }
        Ok(updated == 1)
    }

    /// A new run of `pipeline` as `status`, under a fresh id.
    fn insert_run(
        &self,
        pipeline: &PipelineRecord,
        params: &str,
        status: RunStatus,
    ) -> Result<RunId> {
        let started = SystemTime::now();
        let ms = to_ms(started);
        let stamp = Utc::of(started).compact();
        self.write(|tx| {
            insert_pipeline(tx, pipeline, ms)?;
            for _ in 0..ID_ATTEMPTS {
                let id = format!("{stamp}-{:04x}", random_u16());
                let inserted = tx.execute(
                    "INSERT INTO runs (id, pipeline, spec_hash, params, status, started_ms,
                                       host, pid, pid_start)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (id) DO NOTHING",
                    params![
                        id,
                        pipeline.name,
                        pipeline.spec_hash,
                        params,
                        status.as_str(),
                        ms,
                        self.owner.host,
                        self.owner.pid,
                        self.owner.start.map(saturating_i64),
                    ],
                )?;
                if inserted == 1 {
                    return Ok(Ok(RunId::new(id)));
                }
            }
            Ok(Err(Error::run_store(
                &self.path,
                format!(
                    "could not find a free run id after {ID_ATTEMPTS} tries \
                     (too many runs began in second {stamp}); retry"
                ),
            )))
        })?
    }

    /// Record one finished (or failed) step of a running run, with its outputs.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the run is unknown or already finished, the
    /// step is already recorded in it, or the database cannot be written.
    pub fn record_step(&self, run: &RunId, step: &StepRecord) -> Result<()> {
        self.write_step(run, step, false)
    }

    /// Record a step of a running run again, replacing what was recorded for
    /// it: the executor re-runs a step whose cached outputs turned out to be
    /// lost after it was recorded as a cache hit.
    ///
    /// # Errors
    /// As [`RunStore::record_step`], except that an earlier record is replaced.
    pub fn replace_step(&self, run: &RunId, step: &StepRecord) -> Result<()> {
        self.write_step(run, step, true)
    }

    pub(super) fn write_step(&self, run: &RunId, step: &StepRecord, replace: bool) -> Result<()> {
        let duration_us =
            saturating_i64(u64::try_from(step.duration.as_micros()).unwrap_or(u64::MAX));
        let now = to_ms(SystemTime::now());
        self.write(|tx| {
            if let Err(e) = self.require_running(tx, run)? {
                return Ok(Err(e));
            }
            if replace {
                tx.execute(
                    "DELETE FROM step_runs WHERE run = ?1 AND step = ?2",
                    params![run.as_str(), step.step],
                )?;
            }
            let inserted = tx.execute(
                "INSERT INTO step_runs (run, step, seq, kind, cache_key, key_fields, device,
                                        cache_hit, reused_from, duration_us, rows, bytes,
                                        error, notes, recorded_ms, output_sizes)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM step_runs WHERE run = ?1),
                         ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT (run, step) DO NOTHING",
                params![
                    run.as_str(),
                    step.step,
                    step.kind,
                    step.cache_key,
                    step.key_fields,
                    step.device,
                    step.cache_hit,
                    step.reused_from.as_ref().map(RunId::as_str),
                    duration_us,
                    saturating_i64(step.rows),
                    saturating_i64(step.bytes),
                    step.error,
                    step.notes,
                    now,
                    encode_sizes(&step.sizes),
                ],
            )?;
            if inserted == 0 {
                return Ok(Err(Error::run_store(
                    &self.path,
                    format!(
                        "step '{}' is already recorded in run {run}; a step is recorded once per run",
                        step.step
                    ),
                )));
            }
            for (seq, (port, hash)) in step.outputs.iter().enumerate() {
                tx.execute(
                    "INSERT INTO step_outputs (run, step, seq, port, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![run.as_str(), step.step, seq as i64, port, hash],
                )?;
            }
            Ok(Ok(()))
        })?
    }

    /// Record a metric computed by `step` in a running run. Recording the same
    /// metric again replaces its value.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the run is unknown or already finished, or the
    /// database cannot be written.
    pub fn record_metric(&self, run: &RunId, step: &str, name: &str, value: f64) -> Result<()> {
        self.write(|tx| {
            if let Err(e) = self.require_running(tx, run)? {
                return Ok(Err(e));
            }
            // SQLite stores NaN as NULL; reads turn NULL back into NaN.
            tx.execute(
                "INSERT INTO metrics (run, step, name, seq, value)
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM metrics WHERE run = ?1), ?4)
                 ON CONFLICT (run, step, name) DO UPDATE SET value = excluded.value",
                params![run.as_str(), step, name, value],
            )?;
            Ok(Ok(()))
        })?
    }

    /// Finish a run with its final status and, for a failure, its error.
    ///
    /// # Errors
    /// [`Error::RunStore`] when `status` is not a finished one, the run is
    /// unknown, or the database cannot be written.
    pub fn finish_run(&self, run: &RunId, status: RunStatus, error: Option<&str>) -> Result<()> {
        if !status.is_finished() {
            return Err(Error::run_store(
                &self.path,
                format!(
                    "run {run} cannot finish as '{status}'; give succeeded, failed, cancelled \
                     or interrupted"
                ),
            ));
        }
        let now = to_ms(SystemTime::now());
        let updated = self.write(|tx| {
            tx.execute(
                "UPDATE runs SET status = ?2, ended_ms = ?3, error = ?4 WHERE id = ?1",
                params![run.as_str(), status.as_str(), now, error],
            )
        })?;
        if updated == 0 {
            return Err(self.unknown_run(run.as_str()));
        }
        Ok(())
    }

    /// Store [`RunStatus::Interrupted`] for every run left queued or running by a
    /// process of this host that no longer exists, with the time of its last
    /// recorded step as its end. Returns the runs marked. Queries already
    /// report such runs as interrupted; this makes it permanent, for tools
    /// that read the database directly.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be written.
    pub fn mark_interrupted(&self) -> Result<Vec<RunId>> {
        self.write(|tx| {
            let running = {
                let mut stmt = tx.prepare(
                    "SELECT id, host, pid, pid_start FROM runs WHERE status IN ('queued', 'running')
                     ORDER BY seq",
                )?;
                stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, owner_of(row, 1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let mut marked = Vec::new();
            for (id, owner) in running {
                if !owner.is_gone(&self.owner) {
                    continue;
                }
                tx.execute(
                    "UPDATE runs SET status = 'interrupted',
                         ended_ms = COALESCE((SELECT MAX(recorded_ms) FROM step_runs WHERE run = ?1),
                                             started_ms),
                         error = COALESCE(error, ?2)
                     WHERE id = ?1",
                    params![id, gone_message(&owner)],
                )?;
                marked.push(RunId::new(id));
            }
            Ok(marked)
        })
    }

    /// Remember that the file at `path` with `stat` hashes to `hash` (hex).
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be written.
    pub fn remember_source_hash(&self, path: &str, stat: &FileStat, hash: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO source_hashes (path, size, mtime_ns, inode, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (path) DO UPDATE SET
                   size = ?2, mtime_ns = ?3, inode = ?4, hash = ?5",
                params![path, stat.size, stat.mtime_ns, stat.inode, hash],
            )
        })?;
        Ok(())
    }
}

/// Store `pipeline`'s spec the first time its hash is seen.
fn insert_pipeline(
    tx: &rusqlite::Transaction<'_>,
    pipeline: &PipelineRecord,
    ms: i64,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO pipelines (name, spec_hash, spec, first_seen_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name, spec_hash) DO NOTHING",
        params![pipeline.name, pipeline.spec_hash, pipeline.spec, ms],
    )
}

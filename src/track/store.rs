//! [`RunStore`]: recording runs into the workspace's SQLite database and
//! reading them back.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use super::clock::{Utc, from_ms, to_ms};
use super::process::Owner;
use super::record::{
    MetricRow, PipelineRecord, RunDetail, RunId, RunStatus, RunSummary, StepRecord, StepRunRow,
};
use super::schema::{self, Migration};
use crate::error::{Error, Result};

/// How long a statement waits for another process's write lock before giving
/// up. Writes are short (one step or metric each), so waiting this long means
/// something is wrong, but runs recording at the same time must never fail.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many ids to draw before giving up on finding a free one.
const ID_ATTEMPTS: usize = 1000;

/// Runs shown in an "ambiguous prefix" error.
const CANDIDATES_SHOWN: usize = 10;

/// What the stat cache of source hashes compares: a file with the same size,
/// modification time and inode as when it was hashed is taken to have the
/// same content (as git and Bazel do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Bytes.
    pub size: i64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The inode (0 where the platform has none).
    pub inode: i64,
}

impl FileStat {
    /// The stat of a file from its metadata.
    pub fn of(meta: &std::fs::Metadata) -> FileStat {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        #[cfg(unix)]
        let inode = saturating_i64(std::os::unix::fs::MetadataExt::ino(meta));
        #[cfg(not(unix))]
        let inode = 0;
        FileStat {
            size: saturating_i64(meta.len()),
            mtime_ns,
            inode,
        }
    }
}

/// The run store of one workspace: a SQLite database in WAL mode.
///
/// Every write is its own short transaction, taken with the write lock up
/// front (`BEGIN IMMEDIATE`) so that concurrent writers queue on the busy
/// timeout instead of failing; a process killed at any point leaves the
/// database as of its last committed call. The store is `Sync`: one
/// connection behind a mutex serves all of a process's threads.
#[derive(Debug)]
pub struct RunStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    owner: Owner,
}

impl RunStore {
    /// Open the run store at `path`, creating it if missing, and bring its
    /// schema up to date.
    ///
    /// Sets WAL journaling (readers never block the writer and a killed
    /// writer cannot corrupt the file), `synchronous=NORMAL` (a killed process
    /// loses nothing it committed; a power loss may lose the last commits but
    /// never leaves the file inconsistent), foreign keys, and a busy timeout
    /// of [`BUSY_TIMEOUT`].
    ///
    /// # Errors
    /// [`Error::RunStore`] naming the file when it cannot be opened, is not a
    /// SQLite database, or was written by a newer fuseflow (upgrade to read it).
    pub fn open(path: &Path) -> Result<Self> {
        let at = |e| sql_error(path, e);
        let conn = Connection::open(path).map_err(at)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(at)?;
        // Switching a new file to WAL needs an exclusive lock, and SQLite
        // reports contention on it at once instead of calling the busy
        // handler, so processes opening a fresh workspace together retry here.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let migration = loop {
            match prepare(&conn) {
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => break other.map_err(at)?,
            }
        };
        if let Migration::TooNew(found) = migration {
            return Err(Error::run_store(
                path,
                format!(
                    "the database has schema version {found}, but this fuseflow ({}) \
                     knows versions up to {}; upgrade fuseflow to use this workspace",
                    env!("CARGO_PKG_VERSION"),
                    schema::latest_version()
                ),
            ));
        }
        Ok(RunStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            owner: Owner::current(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Start recording a run of `pipeline` with `params` (free-form text, such
    /// as the parameter overrides as TOML). Stores the pipeline's spec the
    /// first time its hash is seen, and the run as `running` with the start
    /// time, host and pid.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be written.
    pub fn begin_run(&self, pipeline: &PipelineRecord, params: &str) -> Result<RunId> {
        let started = SystemTime::now();
        let ms = to_ms(started);
        let stamp = Utc::of(started).compact();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO pipelines (name, spec_hash, spec, first_seen_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name, spec_hash) DO NOTHING",
                params![pipeline.name, pipeline.spec_hash, pipeline.spec, ms],
            )?;
            for _ in 0..ID_ATTEMPTS {
                let id = format!("{stamp}-{:04x}", random_u16());
                let inserted = tx.execute(
                    "INSERT INTO runs (id, pipeline, spec_hash, params, status, started_ms,
                                       host, pid, pid_start)
                     VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8)
                     ON CONFLICT (id) DO NOTHING",
                    params![
                        id,
                        pipeline.name,
                        pipeline.spec_hash,
                        params,
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

    fn write_step(&self, run: &RunId, step: &StepRecord, replace: bool) -> Result<()> {
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
    /// [`Error::RunStore`] when `status` is [`RunStatus::Running`], the run is
    /// unknown, or the database cannot be written.
    pub fn finish_run(&self, run: &RunId, status: RunStatus, error: Option<&str>) -> Result<()> {
        if status == RunStatus::Running {
            return Err(Error::run_store(
                &self.path,
                format!(
                    "run {run} cannot finish as 'running'; give succeeded, failed or interrupted"
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

    /// Store [`RunStatus::Interrupted`] for every run left `running` by a
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
                    "SELECT id, host, pid, pid_start FROM runs WHERE status = 'running' ORDER BY seq",
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

    /// The run named by `reference`: a full id, a prefix of exactly one id, or
    /// `latest` (the most recently begun run).
    ///
    /// # Errors
    /// [`Error::RunStore`] when no run matches (suggesting `fuseflow runs`), or
    /// a prefix matches several (listing them).
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

    /// The record of `step` in the run named by `run` (see [`RunStore::resolve`]).
    ///
    /// # Errors
    /// As [`RunStore::resolve`], and [`Error::RunStore`] listing the run's
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
    /// As [`RunStore::step_run`], and [`Error::RunStore`] listing the step's
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
        Err(Error::run_store(&self.path, message))
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

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (its
        // guard rolls back on unwind), so the connection is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sql(&self, err: rusqlite::Error) -> Error {
        sql_error(&self.path, err)
    }

    /// Run `f` in one immediate (write-locked) transaction, committed when it
    /// returns `Ok`. A SQLite error rolls back. Callers that refuse a request
    /// (unknown run, step recorded twice) return `Ok(Err(_))` having written
    /// nothing, so committing is harmless.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn();
        let run = || {
            let tx = Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e| self.sql(e))
    }

    /// `Ok(Ok(()))` when `run` exists and is running, `Ok(Err(_))` saying why not.
    fn require_running(&self, tx: &Transaction<'_>, run: &RunId) -> rusqlite::Result<Result<()>> {
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM runs WHERE id = ?1",
                [run.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match status.as_deref() {
            None => Err(self.unknown_run(run.as_str())),
            Some("running") => Ok(()),
            Some(other) => Err(Error::run_store(
                &self.path,
                format!("run {run} already finished ({other}); nothing more can be recorded in it"),
            )),
        })
    }

    fn unknown_run(&self, reference: &str) -> Error {
        Error::run_store(
            &self.path,
            format!("no run '{reference}' in this workspace; `fuseflow runs` lists the runs"),
        )
    }

    fn resolve_in(&self, conn: &Connection, reference: &str) -> Result<RunId> {
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
            0 if reference == "latest" => Err(Error::run_store(
                &self.path,
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

    fn step_run_in(&self, conn: &Connection, run: &RunId, step: &str) -> Result<StepRunRow> {
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
            Err(steps) if steps.is_empty() => Err(Error::run_store(
                &self.path,
                format!("run {run} has no step '{step}'; it recorded no steps"),
            )),
            Err(steps) => Err(Error::run_store(
                &self.path,
                format!(
                    "run {run} has no step '{step}'; its steps are: {}",
                    steps.join(", ")
                ),
            )),
        }
    }
}

/// Columns of a run summary, in the order [`summary_of`] reads them.
const SUMMARY_SELECT: &str = "
    SELECT r.id, r.pipeline, r.spec_hash, r.params, r.status, r.started_ms, r.ended_ms, r.error,
           r.host, r.pid, r.pid_start,
           (SELECT COUNT(*) FROM step_runs s WHERE s.run = r.id),
           (SELECT COUNT(*) FROM step_runs s WHERE s.run = r.id AND s.cache_hit = 1),
           (SELECT COUNT(*) FROM step_runs s WHERE s.run = r.id AND s.error IS NOT NULL)
    FROM runs r";

/// A step run from `step_runs s`, in the order [`step_of`] reads the columns;
/// a `JOIN` or `WHERE` follows.
const STEP_SELECT: &str = "
    SELECT s.run, s.step, s.kind, s.cache_key, s.key_fields, s.device, s.cache_hit,
           s.reused_from, s.duration_us, s.rows, s.bytes, s.error, s.notes, s.recorded_ms,
           s.output_sizes
    FROM step_runs s";

fn summary_of(row: &Row<'_>, here: &Owner) -> rusqlite::Result<RunSummary> {
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
    if status == RunStatus::Running && owner.is_gone(here) {
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
fn encode_sizes(sizes: &[(u64, u64)]) -> String {
    let sizes: Vec<String> = sizes.iter().map(|(r, b)| format!("{r}:{b}")).collect();
    sizes.join(",")
}

/// The inverse of [`encode_sizes`]; what does not parse is left out.
fn decode_sizes(text: &str) -> Vec<(u64, u64)> {
    text.split(',')
        .filter_map(|s| {
            let (r, b) = s.split_once(':')?;
            Some((r.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// A step run without its outputs (see [`with_outputs`]).
fn step_of(row: &Row<'_>) -> rusqlite::Result<StepRunRow> {
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

fn with_outputs(conn: &Connection, mut row: StepRunRow) -> rusqlite::Result<StepRunRow> {
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
fn owner_of(row: &Row<'_>, at: usize) -> rusqlite::Result<Owner> {
    Ok(Owner {
        host: row.get(at)?,
        pid: row.get(at + 1)?,
        start: row
            .get::<_, Option<i64>>(at + 2)?
            .and_then(|s| u64::try_from(s).ok()),
    })
}

fn gone_message(owner: &Owner) -> String {
    format!(
        "process {} on {} ended before the run finished (killed or crashed)",
        owner.pid, owner.host
    )
}

/// A non-negative integer column.
fn count(row: &Row<'_>, at: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(at)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// SQLite integers are signed 64-bit; counts beyond that are clamped.
fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Four hex digits' worth of randomness for a run id. `RandomState` draws
/// fresh keys per process (and varies them per call), and the pid, time and a
/// counter are mixed in, so two processes starting in the same second are
/// unlikely to draw the same value; the `UNIQUE` id column settles the rest.
fn random_u16() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_i64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into()),
    );
    (h.finish() >> 48) as u16
}

/// Set up a freshly opened connection: WAL, `synchronous`, foreign keys, migrations.
fn prepare(conn: &Connection) -> rusqlite::Result<Migration> {
    // The first read of the file: a file that is not a database fails here.
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Persistent: set once per file, by whichever process gets there first.
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    schema::migrate(conn)
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// A SQLite failure on the database at `path`, said in terms of what to do.
fn sql_error(path: &Path, err: rusqlite::Error) -> Error {
    let message = match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "the database is locked by another process (waited up to {} s); \
             another fuseflow process may hold it; retry",
            BUSY_TIMEOUT.as_secs()
        ),
        Some(ErrorCode::NotADatabase) => "the file is not a SQLite database, so not a fuseflow \
             run store; delete or move it and a new one is created"
            .to_string(),
        Some(ErrorCode::DatabaseCorrupt) => "the database is corrupt; move it aside and a new one \
             is created (run history is lost, cached outputs are kept)"
            .to_string(),
        Some(ErrorCode::CannotOpen) => {
            format!("cannot open ({err}); check that its directory exists and is writable")
        }
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            format!("cannot write ({err}); check the permissions of the file and its directory")
        }
        Some(ErrorCode::DiskFull) => "the disk is full; free some space and retry".to_string(),
        // A write that hits a full disk or a file-size limit often surfaces
        // as a plain I/O error rather than SQLITE_FULL.
        Some(ErrorCode::SystemIoFailure) => format!(
            "{err}; check that the disk has free space and the workspace is writable, then retry"
        ),
        _ => err.to_string(),
    };
    Error::run_store(path, message)
}

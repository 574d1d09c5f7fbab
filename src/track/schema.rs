//! The database schema and its migrations.
//!
//! `PRAGMA user_version` holds how many entries of [`MIGRATIONS`] have been
//! applied. Opening a store applies the missing ones in one write
//! transaction, so several processes opening a fresh workspace at once
//! migrate it exactly once. Migrations are append-only: a released entry is
//! never edited, a change is a new entry.

use rusqlite::{Connection, TransactionBehavior};

/// Schema migrations, in order; entry `i` takes the database from version `i`
/// to version `i + 1`.
///
/// Times are Unix milliseconds (UTC). Durations are microseconds. Runs carry
/// an autoincrement `seq` as well as their text id, so that runs begun in the
/// same millisecond still order by when they were begun. `reused_from` is
/// deliberately not a foreign key: the cache can outlive the runs that filled
/// it, and a missing producer must not stop a run from being recorded.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE pipelines (
        name          TEXT NOT NULL,
        spec_hash     TEXT NOT NULL,
        spec          TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        PRIMARY KEY (name, spec_hash)
    ) WITHOUT ROWID;

    CREATE TABLE runs (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT NOT NULL UNIQUE,
        pipeline   TEXT NOT NULL,
        spec_hash  TEXT NOT NULL,
        params     TEXT NOT NULL,
        status     TEXT NOT NULL
                   CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
        started_ms INTEGER NOT NULL,
        ended_ms   INTEGER,
        error      TEXT,
        host       TEXT NOT NULL,
        pid        INTEGER NOT NULL,
        pid_start  INTEGER,
        FOREIGN KEY (pipeline, spec_hash) REFERENCES pipelines (name, spec_hash)
    );
    CREATE INDEX runs_by_pipeline ON runs (pipeline, started_ms);
    CREATE INDEX runs_by_start ON runs (started_ms);
    CREATE INDEX runs_by_status ON runs (status);

    CREATE TABLE step_runs (
        run          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step         TEXT NOT NULL,
        seq          INTEGER NOT NULL,
        kind         TEXT NOT NULL,
        cache_key    TEXT NOT NULL,
        key_fields   TEXT NOT NULL,
        device       TEXT NOT NULL,
        cache_hit    INTEGER NOT NULL CHECK (cache_hit IN (0, 1)),
        reused_from  TEXT,
        duration_us  INTEGER NOT NULL,
        rows         INTEGER NOT NULL,
        bytes        INTEGER NOT NULL,
        error        TEXT,
        notes        TEXT,
        recorded_ms  INTEGER NOT NULL,
        PRIMARY KEY (run, step)
    ) WITHOUT ROWID;
    CREATE INDEX step_runs_by_step ON step_runs (step);
    CREATE INDEX step_runs_by_key ON step_runs (cache_key);

    CREATE TABLE step_outputs (
        run   TEXT NOT NULL,
        step  TEXT NOT NULL,
        seq   INTEGER NOT NULL,
        port  TEXT NOT NULL,
        hash  TEXT NOT NULL,
        PRIMARY KEY (run, step, port),
        FOREIGN KEY (run, step) REFERENCES step_runs (run, step) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE INDEX step_outputs_by_hash ON step_outputs (hash);

    CREATE TABLE metrics (
        run   TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step  TEXT NOT NULL,
        name  TEXT NOT NULL,
        seq   INTEGER NOT NULL,
        value REAL,
        PRIMARY KEY (run, step, name)
    ) WITHOUT ROWID;
    ",
    // 2: the stat cache of source files' content hashes.
    "
    CREATE TABLE source_hashes (
        path     TEXT PRIMARY KEY,
        size     INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode    INTEGER NOT NULL,
        hash     TEXT NOT NULL
    ) WITHOUT ROWID;
    -- Rows and bytes of each output, `rows:bytes` joined by commas.
    ALTER TABLE step_runs ADD COLUMN output_sizes TEXT NOT NULL DEFAULT '';
    ",
    // 3: the variants of a sweep's run, with what each assigns (dimension,
    // value) and the steps that compute it (step, instance), each a TOML
    // document `pairs = [[a, b], ...]`.
    "
    CREATE TABLE sweep_variants (
        run        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL,
        name       TEXT NOT NULL,
        assignment TEXT NOT NULL,
        steps      TEXT NOT NULL,
        PRIMARY KEY (run, seq)
    ) WITHOUT ROWID;
    ",
    // 4: runs queued by `fuseflow serve` before they start, and runs
    // cancelled, as statuses of their own (SQLite cannot alter a CHECK, so
    // the table is rebuilt, as its documented procedure says; foreign keys
    // are off while migrating, so nothing cascades); and the pipelines
    // published to the server, each with its numbered versions and one
    // default.
    "
    CREATE TABLE runs_v4 (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT NOT NULL UNIQUE,
        pipeline   TEXT NOT NULL,
        spec_hash  TEXT NOT NULL,
        params     TEXT NOT NULL,
        status     TEXT NOT NULL
                   CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled',
                                     'interrupted')),
        started_ms INTEGER NOT NULL,
        ended_ms   INTEGER,
        error      TEXT,
        host       TEXT NOT NULL,
        pid        INTEGER NOT NULL,
        pid_start  INTEGER,
        FOREIGN KEY (pipeline, spec_hash) REFERENCES pipelines (name, spec_hash)
    );
    INSERT INTO runs_v4 SELECT * FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_v4 RENAME TO runs;
    CREATE INDEX runs_by_pipeline ON runs (pipeline, started_ms);
    CREATE INDEX runs_by_start ON runs (started_ms);
    CREATE INDEX runs_by_status ON runs (status);

    CREATE TABLE published (
        name         TEXT NOT NULL,
        version      INTEGER NOT NULL,
        spec_hash    TEXT NOT NULL,
        spec         TEXT NOT NULL,
        anchor       TEXT NOT NULL,
        source       TEXT NOT NULL,
        enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
        published_ms INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    ) WITHOUT ROWID;
    CREATE TABLE published_defaults (
        name    TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        FOREIGN KEY (name, version) REFERENCES published (name, version)
    ) WITHOUT ROWID;
    ",
];

/// The schema version this build creates and understands.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The database's `user_version`.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// What [`migrate`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Migration {
    /// The database is at `latest_version()` (now, or already).
    Current,
    /// The database was written by a newer fuseflow, at this version.
    TooNew(i64),
}

/// Bring the database to [`latest_version`], in one immediate (write-locked)
/// transaction so that concurrent openers do not both migrate.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<Migration> {
    let latest = latest_version();
    // Common case first, without taking the write lock.
    let found = version(conn)?;
    if found > latest {
        return Ok(Migration::TooNew(found));
    }
    if found == latest {
        return Ok(Migration::Current);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    // Another process may have migrated while we waited for the lock.
    let found = version(&tx)?;
    if found > latest {
        return Ok(Migration::TooNew(found));
    }
    for (applied, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", applied as i64 + 1)?;
    }
    tx.commit()?;
    Ok(Migration::Current)
}

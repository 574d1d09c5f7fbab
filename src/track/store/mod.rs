//! [`RunStore`]: recording runs into the workspace's SQLite database and
//! reading them back.

mod publish;
mod read;
mod sweep;
mod write;

pub use publish::{Publication, PublishedSpec, PublishedVersion};
pub use read::RunFilter;

use read::saturating_i64;

use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use super::process::Owner;
use super::record::RunId;
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
    /// A store on a read-only file system is opened read-only (as an
    /// immutable file, so a write-ahead log left by a crash is not read):
    /// its runs can be listed and shown, and recording a run fails naming
    /// the read-only file system.
    ///
    /// # Errors
    /// [`Error::RunStore`] naming the file when it cannot be opened, is not a
    /// SQLite database, or was written by a newer fuseflow (upgrade to read it).
    pub fn open(path: &Path) -> Result<Self> {
        match Self::open_writable(path) {
            Err(e) if path.is_file() && on_read_only_file_system(path) => {
                Self::open_read_only(path).map_err(|_| e)
            }
            opened => opened,
        }
    }

    /// Open `path` for reading only, its schema current.
    fn open_read_only(path: &Path) -> Result<Self> {
        let at = |e| sql_error(path, e);
        let escaped: String = (path.to_string_lossy().chars())
            .map(|c| match c {
                '%' | '?' | '#' => format!("%{:02X}", c as u32),
                c => c.to_string(),
            })
            .collect();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(format!("file:{escaped}?immutable=1"), flags)
            .map_err(at)?;
        let found = schema::version(&conn).map_err(at)?;
        if found != schema::latest_version() {
            return Err(Error::run_store(
                path,
                format!(
                    "the database has schema version {found} and this fuseflow reads version {} \
                     only; on a read-only file system it cannot be migrated",
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

    fn open_writable(path: &Path) -> Result<Self> {
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

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (its
        // guard rolls back on unwind), so the connection is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn sql(&self, err: rusqlite::Error) -> Error {
        sql_error(&self.path, err)
    }

    /// Run `f` in one immediate (write-locked) transaction, committed when it
    /// returns `Ok`. A SQLite error rolls back. Callers that refuse a request
    /// (unknown run, step recorded twice) return `Ok(Err(_))` having written
    /// nothing, so committing is harmless.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
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
    pub(super) fn require_running(
        &self,
        tx: &Transaction<'_>,
        run: &RunId,
    ) -> rusqlite::Result<Result<()>> {
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

    pub(super) fn unknown_run(&self, reference: &str) -> Error {
        Error::not_found(format!(
            "no run '{reference}' in this workspace; `fuseflow runs` lists the runs"
        ))
    }
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
    // Off while migrating (SQLite's default), so that a migration that
    // rebuilds a table cascades no deletes; on for everything after.
    conn.pragma_update(None, "foreign_keys", false)?;
    let migration = schema::migrate(conn)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(migration)
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Whether `path`'s directory lies on a file system mounted read-only (where
/// SQLite only says it cannot open the file).
fn on_read_only_file_system(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let Ok(dir) = std::ffi::CString::new(dir.unwrap_or(Path::new(".")).as_os_str().as_bytes())
        else {
            return false;
        };
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `dir` is a NUL-terminated path and `stat` room for one
        // `statvfs`, which the call fills when it returns 0.
        unsafe {
            libc::statvfs(dir.as_ptr(), stat.as_mut_ptr()) == 0
                && stat.assume_init().f_flag & libc::ST_RDONLY != 0
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
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
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly) if on_read_only_file_system(path) => {
            format!(
                "cannot open or write it ({err}): it is on a read-only file system; \
                 make the workspace writable, or run with --no-workspace"
            )
        }
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
    Error::run_store(path, message).caused_by(err)
}

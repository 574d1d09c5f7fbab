//! The object store: tables as Arrow IPC files named by their content hash
//! (with [`MemoryTier`](super::MemoryTier), the in-process tier, in front of it).
//!
//! Layout under the store's directory:
//!
//! ```text
//! objects/ab/ab12…ef.arrow   one table, named by its ContentHash
//! objects/ab/ab34…01.source  a reference: how to read an output again from
//!                            its source file, in place of a copy
//! tmp/                       objects being written, renamed into objects/ when complete
//! ```
//!
//! Objects are written to `tmp/`, synced and renamed into place, so a reader
//! sees a complete file or none, and several processes can share a store:
//! two writers of the same object write the same bytes and the last rename
//! wins. Every read re-hashes the decoded table; a file that does not decode
//! or does not match its name is removed and reported as [`Lookup::Corrupt`].
//! The modification time records last use, for least-recently-used eviction.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use crate::data::Table;
use crate::data::files::{MappedIpcFile, io_advice};
use crate::data::{ContentHash, hash_table};
use crate::error::{Cause, Error, Result};

/// Temporary files older than this belong to a writer that died; [`ObjectStore::gc`] removes them.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

/// File extension of stored objects.
const OBJECT_EXT: &str = "arrow";

/// File extension of references: outputs read again from their source
/// rather than stored.
const REFERENCE_EXT: &str = "source";

/// Advice appended to a write failure `e`.
fn write_advice(e: &(dyn std::error::Error + 'static)) -> &'static str {
    io_advice(e).unwrap_or(
        "check that the disk has free space and the workspace is writable, or free space with `fuseflow cache gc`",
    )
}

/// A directory of tables stored as Arrow IPC files addressed by content hash.
///
/// Writes are not synced one by one on the critical path: the files written
/// since the last [`ObjectStore::sync`] are synced together by it (a run
/// calls it before it records itself as succeeded), or when the store is
/// dropped.
#[derive(Debug)]
pub struct ObjectStore {
    root: PathBuf,
    objects: PathBuf,
    /// Files written and renamed into place but not yet synced.
    unsynced: Mutex<Vec<PathBuf>>,
    tmp: PathBuf,
}

/// The outcome of [`ObjectStore::get`].
#[derive(Debug)]
pub enum Lookup {
    /// The object was present and its content matches its hash.
    Hit(Table),
    /// No such object (never stored, evicted, or removed concurrently).
    Missing,
    /// The object was present but unreadable or not matching its hash; it has
    /// been removed. Recompute it, and tell the user.
    Corrupt {
        /// The removed file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

impl Lookup {
    /// The table, or why there is none as a phrase that follows the object's
    /// name: "is no longer in the cache (evicted or cleared)", "was corrupt
    /// (...) and has been removed".
    pub fn found(self) -> std::result::Result<Table, String> {
        match self {
            Lookup::Hit(table) => Ok(table),
            Lookup::Missing => Err("is no longer in the cache (evicted or cleared)".into()),
            Lookup::Corrupt { path, reason } => Err(format!(
                "was corrupt ({reason}) and has been removed ({})",
                path.display()
            )),
        }
    }
}

/// One stored object, as listed by [`ObjectStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The content hash the object is stored under.
    pub hash: ContentHash,
    /// Size of the file.
    pub bytes: u64,
    /// When it was last stored or read.
    pub last_used: SystemTime,
    /// The file.
    pub path: PathBuf,
}

/// What [`ObjectStore::gc`] or [`ObjectStore::clear`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects removed.
    pub removed: usize,
    /// Bytes freed by removing objects and stale temporary files.
    pub freed_bytes: u64,
    /// Bytes of objects left in the store.
    pub remaining_bytes: u64,
    /// Temporary files of dead writers removed.
    pub stale_temp_files: usize,
    /// References to source files removed (only when nothing may remain:
    /// they take a few hundred bytes each and cost nothing to keep).
    pub references: usize,
}

impl ObjectStore {
    /// Open (creating if needed) the store in `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the directory when it cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let root = dir.into();
        let store = ObjectStore {
            objects: root.join("objects"),
            tmp: root.join("tmp"),
            unsynced: Mutex::new(Vec::new()),
            root,
        };
        for dir in [&store.objects, &store.tmp] {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::io(
                    dir,
                    format!(
                        "cannot create the cache directory: {e}; choose a writable workspace directory"
                    ),
                ).caused_by(e)
            })?;
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with `hash` lives (whether or not it exists).
    pub fn object_path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_string();
        self.objects
            .join(&hex[..2])
            .join(format!("{hex}.{OBJECT_EXT}"))
    }

    /// Store `table` and return its content hash. An object already present
    /// is only marked as used.
    ///
    /// # Errors
    /// [`Error::Io`] naming the object when it cannot be written (its
    /// temporary file is removed and existing objects are untouched).
    pub fn put(&self, table: &Table) -> Result<ContentHash> {
        let hash = hash_table(table)?;
        self.put_hashed(&hash, table)?;
        Ok(hash)
    }

    /// Store `table` under `hash`, its content hash ([`hash_table`]), as
    /// [`ObjectStore::put`] does.
    ///
    /// # Errors
    /// As [`ObjectStore::put`].
    pub fn put_hashed(&self, hash: &ContentHash, table: &Table) -> Result<()> {
        let hash = *hash;
        let path = self.object_path(&hash);
        // Fails (and so rewrites) when gc removed the object meanwhile.
        if touch(&path).is_ok() {
            return Ok(());
        }
        self.place(&hash, &path, "cache object", |file| {
            let mut writer =
                arrow_ipc::writer::FileWriter::try_new(BufWriter::new(file), table.schema())?;
            for batch in table.batches() {
                writer.write(batch)?;
            }
            writer.finish()?;
            writer.into_inner()?.into_inner()?;
            Ok(())
        })
    }

    fn written(&self, path: PathBuf) {
        self.unsynced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(path);
    }

    /// Make every file written since the last sync durable: the files, then
    /// their directories (which hold the renames), in parallel. Files removed
    /// meanwhile (by gc) are skipped.
    ///
    /// # Errors
    /// [`Error::Io`] naming a file that cannot be synced (its data may not
    /// survive a power loss; reads would detect that and recompute it).
    pub fn sync(&self) -> Result<()> {
        let files =
            std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(PoisonError::into_inner));
        let sync = |path: &Path| -> Result<()> {
            match File::open(path).and_then(|f| f.sync_all()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
                    path,
                    format!(
                        "cannot make the cache file durable: {e}; {}",
                        write_advice(&e)
                    ),
                )
                .caused_by(e)),
                _ => Ok(()),
            }
        };
        files.par_iter().try_for_each(|f| sync(f))?;
        let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
        dirs.sort_unstable();
        dirs.dedup();
        dirs.par_iter().for_each(|d| sync_dir(d));
        Ok(())
    }

    /// Where the reference with `hash` lives (whether or not it exists).
    pub fn reference_path(&self, hash: &ContentHash) -> PathBuf {
        self.object_path(hash).with_extension(REFERENCE_EXT)
    }

    /// Store a reference under `hash`: a few lines of text saying how to
    /// read the data again from outside the workspace (a source file), in
    /// place of a copy of it. Written atomically, like objects.
    ///
    /// # Errors
    /// [`Error::Io`] naming the reference when it cannot be written.
    pub fn put_reference(&self, hash: &ContentHash, text: &str) -> Result<()> {
        let path = self.reference_path(hash);
        self.place(hash, &path, "cache reference", |mut file| {
            file.write_all(text.as_bytes())?;
            Ok(())
        })
    }

    /// Write the file at `path` (named for `hash`, described as `what` in
    /// errors) atomically: `write` fills a new temporary file, which is
    /// renamed into place (its shard created) and queued for the batched
    /// sync. A failure removes the temporary file and leaves existing files
    /// untouched.
    fn place(
        &self,
        hash: &ContentHash,
        path: &Path,
        what: &str,
        write: impl FnOnce(File) -> std::result::Result<(), Cause>,
    ) -> Result<()> {
        let tmp = TempFile(self.tmp.join(temp_name(hash)));
        let placed = (|| -> std::result::Result<(), Cause> {
            write(File::options().write(true).create_new(true).open(&tmp.0)?)?;
            std::fs::create_dir_all(path.parent().unwrap_or(&self.objects))?;
            if let Err(e) = std::fs::rename(&tmp.0, path) {
                // Where rename does not replace (Windows), a concurrent writer
                // of the same file may have won; its bytes are ours.
                if !path.is_file() {
                    return Err(e.into());
                }
            }
            // Synced later, with the run's other files. Until then a power
            // loss may leave the file short or empty, which reads detect
            // (they verify content hashes) and recompute.
            self.written(path.to_path_buf());
            Ok(())
        })();
        placed.map_err(|e| {
            let advice = write_advice(&*e);
            Error::io(path, format!("cannot store {what}: {e}; {advice}")).caused_by(e)
        })
    }

    /// The text of the reference with `hash`, if there is one.
    ///
    /// # Errors
    /// [`Error::Io`] naming the reference when it exists but cannot be read.
    pub fn reference(&self, hash: &ContentHash) -> Result<Option<String>> {
        let path = self.reference_path(hash);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(
                &path,
                format!("cannot read cache reference: {e}; check the workspace's permissions"),
            )
            .caused_by(e)),
        }
    }

    /// Remove the reference with `hash` (one that can no longer be honoured).
    ///
    /// # Errors
    /// [`Error::Io`] naming the reference when it cannot be removed.
    pub fn remove_reference(&self, hash: &ContentHash) -> Result<()> {
        remove(&self.reference_path(hash)).map(|_| ())
    }

    /// Read the object with `hash`, verifying that its content still hashes
    /// to `hash`. A corrupt object is removed before this returns.
    ///
    /// # Errors
    /// [`Error::Io`] naming the object when it exists but cannot be opened
    /// (permissions); decode failures are reported as [`Lookup::Corrupt`].
    pub fn get(&self, hash: &ContentHash) -> Result<Lookup> {
        let path = self.object_path(hash);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Missing),
            Err(e) => {
                return Err(Error::io(
                    &path,
                    format!("cannot open cache object: {e}; check the workspace's permissions"),
                )
                .caused_by(e));
            }
        };
        // Holding the open file, the read succeeds even if gc unlinks the
        // path meanwhile.
        let verdict = read_ipc(&file, &path).and_then(|table| match hash_table(&table) {
            Ok(h) if h == *hash => Ok(table),
            Ok(h) => Err(format!("content hashes to {}, not to its name", h.short())),
            Err(e) => Err(e.to_string()),
        });
        match verdict {
            Ok(table) => {
                // Recency is advisory: a read-only shared workspace still serves hits.
                let _ = file.set_modified(SystemTime::now());
                Ok(Lookup::Hit(table))
            }
            Err(reason) => {
                drop(file);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::io(
                            &path,
                            format!(
                                "cache object is corrupt ({reason}) and cannot be removed: {e}; delete it by hand"
                            ),
                        ).caused_by(e));
                    }
                }
                Ok(Lookup::Corrupt { path, reason })
            }
        }
    }

    /// Every stored object. Objects removed while listing are skipped.
    ///
    /// # Errors
    /// [`Error::Io`] naming the directory when it cannot be read.
    pub fn list(&self) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        for path in self.shard_files()? {
            let Some(hash) = object_hash(&path) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            out.push(ObjectInfo {
                hash,
                bytes: meta.len(),
                last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
            });
        }
        out.sort_by_key(|o| o.hash);
        Ok(out)
    }

    /// Every file in the shards of `objects/` (objects and references).
    fn shard_files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for shard in read_dir(&self.objects)? {
            if shard.is_dir() {
                files.extend(read_dir(&shard)?);
            }
        }
        Ok(files)
    }

    /// Total bytes of stored objects.
    ///
    /// # Errors
    /// As [`ObjectStore::list`].
    pub fn total_size(&self) -> Result<u64> {
        Ok(self.list()?.iter().map(|o| o.bytes).sum())
    }

    /// Remove least-recently-used objects until at most `max_bytes` remain,
    /// and temporary files older than [`STALE_TEMP_AGE`]; with `max_bytes`
    /// 0, references to source files too.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file or directory that cannot be read or removed.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport> {
        let mut report = GcReport::default();
        let now = SystemTime::now();
        for path in read_dir(&self.tmp)? {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            if meta.is_file() && age.is_some_and(|a| a >= STALE_TEMP_AGE) && remove(&path)? {
                report.stale_temp_files += 1;
                report.freed_bytes += meta.len();
            }
        }

        let mut objects = self.list()?;
        objects.sort_by_key(|o| (o.last_used, o.hash));
        let mut remaining: u64 = objects.iter().map(|o| o.bytes).sum();
        for object in &objects {
            if remaining <= max_bytes {
                break;
            }
            remaining -= object.bytes;
            if remove(&object.path)? {
                report.removed += 1;
                report.freed_bytes += object.bytes;
            }
        }
        report.remaining_bytes = remaining;
        if max_bytes == 0 {
            for path in self.shard_files()? {
                let is_reference = path.extension().is_some_and(|e| e == REFERENCE_EXT);
                if is_reference && remove(&path)? {
                    report.references += 1;
                }
            }
        }
        Ok(report)
    }

    /// Remove every object (and stale temporary files; files being written
    /// by live writers are left alone).
    ///
    /// # Errors
    /// As [`ObjectStore::gc`].
    pub fn clear(&self) -> Result<GcReport> {
        self.gc(0)
    }
}

impl Drop for ObjectStore {
    fn drop(&mut self) {
        // Best effort: a failure here has no one to report to, and reads
        // verify what they find.
        let _ = self.sync();
    }
}

/// Decode an IPC file in place into a table; the error says why it is unreadable.
fn read_ipc(file: &File, path: &Path) -> std::result::Result<Table, String> {
    let mapped = MappedIpcFile::map(file, path).map_err(|e| e.to_string())?;
    let schema = Arc::clone(mapped.schema());
    let batches = mapped
        .batches()
        .collect::<Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    Table::try_new(schema, batches).map_err(|e| e.to_string())
}

/// Mark an existing file as used now.
fn touch(path: &Path) -> std::io::Result<()> {
    File::open(path)?.set_modified(SystemTime::now())
}

/// Make a completed rename durable. Not every platform can open a
/// directory to sync it; there the rename is as durable as the OS makes it.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A name no other writer uses: the object, the process, and a counter shared by
/// the process's threads. `create_new` rejects a clash with a dead process's leftovers.
fn temp_name(hash: &ContentHash) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}.{}.{n}.{nanos}.tmp", hash.short(), std::process::id())
}

/// A temporary file removed when dropped, whether or not it was renamed away.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        // After a successful rename there is nothing left to remove.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The entries of a directory (none if it does not exist).
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(dir, format!("cannot list cache directory: {e}")).caused_by(e));
        }
    };
    entries
        .map(|e| {
            e.map(|e| e.path()).map_err(|e| {
                Error::io(dir, format!("cannot list cache directory: {e}")).caused_by(e)
            })
        })
        .collect()
}

/// Remove a file; `false` if another process removed it first.
fn remove(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(
            path,
            format!("cannot remove cache file: {e}; check the workspace's permissions"),
        )
        .caused_by(e)),
    }
}

/// The hash an object file is named by, if it is named like an object.
fn object_hash(path: &Path) -> Option<ContentHash> {
    if path.extension()? != OBJECT_EXT {
        return None;
    }
    path.file_stem()?.to_str()?.parse().ok()
}

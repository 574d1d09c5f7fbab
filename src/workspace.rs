//! The workspace: one directory holding the cache objects and the run store.
//!
//! ```text
//! .fuseflow/
//!   objects/ab/ab12….arrow   step outputs, Arrow IPC, named by content hash
//!   tmp/                      objects being written (renamed into place when whole)
//!   runs.sqlite               runs, step runs, metrics (SQLite, WAL)
//! ```
//!
//! Several processes may use one workspace at once: objects appear by atomic
//! rename and the run store is a SQLite database in WAL mode. Within a process
//! a [`MemoryTier`] keeps recently used outputs, so a re-run or a sweep does
//! not read them back from disk.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::{FieldChange, KeyFields, Lookup, MemoryTier, ObjectStore, ObjectWriter};
use crate::data::{ContentHash, Table, hash_file, hash_table};
use crate::error::{Error, Result};
use crate::pipeline::io::Read;
use crate::pipeline::{SourceFile, Step, StepContext};
use crate::track::{FileStat, RunId, RunStore};

/// The workspace directory used when none is named.
pub const DEFAULT_DIR: &str = ".fuseflow";
/// Environment variable naming the workspace directory.
pub const ENV_VAR: &str = "FUSEFLOW_WORKSPACE";
/// Default bytes of step outputs kept in memory within a process.
pub const DEFAULT_MEMORY_BUDGET: usize = 1 << 30;

/// A workspace directory, open: its object store, its run store and the
/// in-process memory tier.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    objects: Arc<ObjectStore>,
    writer: ObjectWriter,
    memory: MemoryTier,
    runs: RunStore,
}

impl Workspace {
    /// The directory to use: `explicit` (a `--workspace` flag or API argument)
    /// if given, else `$FUSEFLOW_WORKSPACE`, else `.fuseflow` in the current
    /// directory.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(ENV_VAR).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
    }

    /// Open the workspace in `dir`, creating it if needed.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created or written (the
    /// message names it), or the run store's error when its database is
    /// unusable.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| {
            Error::io(
                &root,
                format!("cannot create the workspace directory ({e}); choose another with --workspace or FUSEFLOW_WORKSPACE"),
            ).caused_by(e)
        })?;
        let objects = Arc::new(ObjectStore::open(&root)?);
        Ok(Workspace {
            writer: ObjectWriter::start(Arc::clone(&objects))?,
            objects,
            runs: RunStore::open(&root.join("runs.sqlite"))?,
            memory: MemoryTier::new(DEFAULT_MEMORY_BUDGET),
            root,
        })
    }

    /// Keep at most `bytes` of step outputs in memory (default 1 GiB).
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory = MemoryTier::new(bytes);
        self
    }

    /// The workspace directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The on-disk cache objects.
    pub fn objects(&self) -> &ObjectStore {
        &self.objects
    }

    /// The run store.
    pub fn runs(&self) -> &RunStore {
        &self.runs
    }

    /// Store a step output: in memory for this process at once, and on disk
    /// by the workspace's [`ObjectWriter`], off the caller's path; the object
    /// is durable once [`Workspace::sync`] returns (a run syncs before it
    /// records success), and is served from memory until written.
    ///
    /// # Errors
    /// [`Error::Internal`] when the table cannot be hashed. A failed write
    /// (full disk, unwritable workspace) is reported by [`Workspace::sync`];
    /// objects already stored are untouched.
    pub fn store(&self, table: &Table) -> Result<ContentHash> {
        let hash = hash_table(table)?;
        self.memory.insert(hash, table.clone());
        self.writer.write(hash, table.clone());
        Ok(hash)
    }

    /// Record the output of a step that read `file`, whose content hashes to
    /// `file_hash`, under `hash` without copying it: the workspace keeps a
    /// reference, and [`Workspace::load`] reads the file again (after
    /// checking that its content still hashes to `file_hash`). A `table`
    /// read whole is also kept in the memory tier.
    ///
    /// # Errors
    /// [`Error::Io`] naming the reference when it cannot be written.
    pub fn store_source(
        &self,
        hash: ContentHash,
        table: Option<&Table>,
        file: &SourceFile,
        file_hash: ContentHash,
    ) -> Result<()> {
        let reference = SourceReference {
            file: file.clone(),
            file_hash,
        };
        let text = toml::to_string(&reference)
            .map_err(|e| Error::Internal(format!("cannot write a source reference: {e}")))?;
        self.objects.put_reference(&hash, &text)?;
        if let Some(table) = table {
            self.memory.insert(hash, table.clone());
        }
        Ok(())
    }

    /// Wait for the objects queued by [`Workspace::store`] to be written,
    /// then make every object written since the last sync durable (see
    /// [`ObjectStore::sync`]); a run does so before it records success.
    ///
    /// # Errors
    /// The first write that failed ([`Error::Io`] naming the object, e.g.
    /// on a full disk), or as [`ObjectStore::sync`].
    pub fn sync(&self) -> Result<()> {
        self.writer.flush()?;
        self.objects.sync()
    }

    /// Whether an output can be loaded without recomputing it (a cheap check:
    /// the object, or a reference to its source, exists; [`Workspace::load`]
    /// verifies its content).
    pub fn has(&self, hash: &ContentHash) -> bool {
        self.memory.get(hash).is_some()
            || self.writer.is_pending(hash)
            || self.objects.object_path(hash).is_file()
            || self.objects.reference_path(hash).is_file()
    }

    /// Load a step output by content hash: from memory, else from disk,
    /// verified. A corrupt object is removed and reported as
    /// [`Lookup::Corrupt`], never returned.
    ///
    /// # Errors
    /// [`Error::Io`] when the object store cannot be read at all.
    pub fn load(&self, hash: &ContentHash) -> Result<Lookup> {
        if let Some(table) = self.memory.get(hash).or_else(|| self.writer.pending(hash)) {
            return Ok(Lookup::Hit(table));
        }
        let mut found = self.objects.get(hash)?;
        if let Lookup::Missing = found
            && let Some(text) = self.objects.reference(hash)?
        {
            found = self.read_reference(hash, &text)?;
        }
        if let Lookup::Hit(table) = &found {
            self.memory.insert(*hash, table.clone());
        }
        Ok(found)
    }
}

/// What a reference (`objects/ab/….source`) says: the file an output was
/// read from, how, and the file's content hash then.
#[derive(serde::Serialize, serde::Deserialize)]
struct SourceReference {
    file: SourceFile,
    file_hash: ContentHash,
}

impl Workspace {
    /// Read an output again from the source file its reference names, if
    /// the file still has the content it had; otherwise the reference is
    /// removed and the output reported as lost.
    fn read_reference(&self, hash: &ContentHash, text: &str) -> Result<Lookup> {
        let lost = |reason: String| -> Result<Lookup> {
            self.objects.remove_reference(hash)?;
            Ok(Lookup::Corrupt {
                path: self.objects.reference_path(hash),
                reason,
            })
        };
        let file = match self.verified_reference(text) {
            Ok(file) => file,
            Err(reason) => return lost(reason),
        };
        let mut read = Read::new(&file.path).batch_rows(file.batch_rows);
        if let Some(format) = file.format {
            read = read.format(format);
        }
        match read
            .run(StepContext::new("source"), &[])
            .map(|mut t| t.pop())
        {
            Ok(Some(table)) => Ok(Lookup::Hit(table)),
            Ok(None) => Err(Error::Internal("a read step returned no table".into())),
            Err(e) => lost(format!("its source file cannot be read: {e}")),
        }
    }

    /// The file a reference's text names, if it still has the content it
    /// had when read; else why the output it stands for is lost.
    fn verified_reference(&self, text: &str) -> std::result::Result<SourceFile, String> {
        let reference: SourceReference =
            toml::from_str(text).map_err(|e| format!("an unreadable source reference: {e}"))?;
        let path = &reference.file.path;
        let now = self
            .source_hash(path, false)
            .map_err(|e| format!("its source file cannot be read: {e}"))?;
        if now != reference.file_hash {
            return Err(format!(
                "its source file {} changed since it was read",
                path.display()
            ));
        }
        Ok(reference.file)
    }

    /// The file an output stored as a reference to its source (the output
    /// of a `read`) was read from, when the output is not in memory and the
    /// file still has the content it had: a consumer can then scan the file
    /// again as a stream (narrowed to its columns, pruned to its row groups)
    /// instead of loading it whole. `None` otherwise, and then
    /// [`Workspace::load`] loads the output or says why it is lost.
    ///
    /// # Errors
    /// [`Error::Io`] when the object store cannot be read.
    pub fn source_file(&self, hash: &ContentHash) -> Result<Option<SourceFile>> {
        if self.memory.get(hash).is_some() || self.writer.is_pending(hash) {
            return Ok(None);
        }
        Ok(self
            .objects
            .reference(hash)?
            .and_then(|text| self.verified_reference(&text).ok()))
    }
}

/// A source file modified this recently may change again within the
/// resolution of its modification time, unseen by its stat: its hash is not
/// remembered (git's "racy" entries).
const RACY_WINDOW: Duration = Duration::from_secs(2);

impl Workspace {
    /// The content hash of the source file at `path`: from the stat cache
    /// when the file has the size, modification time and inode it had when
    /// hashed, else (or when `verify`) hashed and remembered.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be read; the run store's
    /// error when the stat cache cannot be read or written.
    pub fn source_hash(&self, path: &Path, verify: bool) -> Result<ContentHash> {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::io(path, format!("cannot read to hash its content: {e}")).caused_by(e)
        })?;
        let stat = FileStat::of(&meta);
        let name = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let name = name.to_string_lossy();
        if !verify
            && let Some(hex) = self.runs().source_hash(&name, &stat)?
            && let Ok(hash) = hex.parse()
        {
            return Ok(hash);
        }
        let hash = hash_file(path)?;
        let settled = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= RACY_WINDOW);
        if settled {
            self.runs()
                .remember_source_hash(&name, &stat, &hash.to_string())?;
        }
        Ok(hash)
    }

    /// An output of a step of a past run: `run` is an id, a unique prefix of
    /// one, or `latest`; `port` may be left out when the step has one output.
    ///
    /// # Errors
    /// The run store's error naming an unknown run, step or port; or
    /// [`Error::Execution`] when the output is no longer cached (evicted, or
    /// corrupt and removed), saying to re-run the pipeline.
    pub fn fetch_output(&self, run: &str, step: &str, port: Option<&str>) -> Result<Table> {
        let (port, hex) = self.runs().find_output(run, step, port)?;
        self.load_output(
            &hex.parse()?,
            step,
            &format!("output '{port}' of run {run}"),
        )
    }

    /// A stored output of `step` that must be there: loaded and verified, or
    /// an error saying it is gone (`what` names it) and to re-run.
    ///
    /// # Errors
    /// [`Error::Execution`] naming the step when the output is no longer
    /// cached (evicted, or corrupt and removed); [`Error::Io`] when the
    /// object store cannot be read.
    pub(crate) fn load_output(&self, hash: &ContentHash, step: &str, what: &str) -> Result<Table> {
        self.load(hash)?.found().map_err(|why| {
            Error::execution(
                step.to_string(),
                format!(
                    "{what} ({}) {why}; run the pipeline again to recompute it",
                    hash.short()
                ),
            )
        })
    }

    /// Why a step of a run hit or missed the cache, compared field by field
    /// with the most recent earlier run of that step in the same pipeline.
    ///
    /// # Errors
    /// The run store's error naming an unknown run or step.
    pub fn why(&self, run: &str, step: &str) -> Result<Why> {
        let runs = self.runs();
        let this = runs.step_run(run, step)?;
        let earlier = runs.previous_step_run(run, step)?;
        let changes = match &earlier {
            Some(before) if !this.record.cache_hit => {
                let after = KeyFields::from_text(&this.record.key_fields)?;
                after.diff(&KeyFields::from_text(&before.record.key_fields)?)
            }
            _ => Vec::new(),
        };
        Ok(Why {
            step: step.to_string(),
            run: this.run.clone(),
            reused_from: this
                .record
                .cache_hit
                .then(|| this.record.reused_from.clone())
                .flatten(),
            earlier_run: earlier.map(|e| e.run),
            changes,
            notes: this.record.notes.clone(),
            error: this.record.error.clone(),
        })
    }
}

/// The answer of [`Workspace::why`]; `Display` renders it for the terminal.
#[derive(Clone, Debug, PartialEq)]
pub struct Why {
    /// The step asked about.
    pub step: String,
    /// The run asked about.
    pub run: RunId,
    /// For a hit, the run whose outputs were reused.
    pub reused_from: Option<RunId>,
    /// The most recent earlier run of the step, compared with.
    pub earlier_run: Option<RunId>,
    /// For a miss, the key fields that differ from that earlier run.
    pub changes: Vec<FieldChange>,
    /// Notes recorded with the step run (re-run requested, sources, ...).
    pub notes: Option<String>,
    /// The step's error, if it failed.
    pub error: Option<String>,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (step, run) = (&self.step, &self.run);
        if let Some(from) = &self.reused_from {
            writeln!(
                f,
                "step '{step}' of run {run}: cache hit, reused the outputs of run {from}"
            )?;
        } else {
            writeln!(f, "step '{step}' of run {run}: ran (cache miss)")?;
            match &self.earlier_run {
                None => writeln!(
                    f,
                    "  no earlier run of this step in this pipeline: nothing to reuse"
                )?,
                Some(earlier) if self.changes.is_empty() => writeln!(
                    f,
                    "  its key equals that of run {earlier}, so the step ran for another reason \
                     (see the notes), or the earlier outputs were no longer cached"
                )?,
                Some(earlier) => {
                    writeln!(f, "  its key differs from run {earlier} in:")?;
                    for c in &self.changes {
                        writeln!(f, "    {}: {} -> {}", c.field, c.before, c.after)?;
                    }
                }
            }
        }
        if let Some(notes) = &self.notes {
            writeln!(f, "  notes: {notes}")?;
        }
        if let Some(error) = &self.error {
            writeln!(f, "  error: {error}")?;
        }
        Ok(())
    }
}

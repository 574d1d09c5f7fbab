//! The `read` step, and a file it reads as a stream every consumer scans.
//!
//! Files are read in chunks of [`DEFAULT_BATCH_ROWS`] rows, so downstream steps
//! see a table of many record batches, never one giant allocation.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::SchemaRef;

use super::ports::step_io;
use crate::data::files::{
    BatchReader, DEFAULT_BATCH_ROWS, FileFormat, MappedIpcFile, ParquetScan, ReadOptions,
    RowGroupPredicate, is_ipc_file,
};
use crate::data::{Batches, Pruned, Stream, Table, batch_data_size, normalize_schema};
use crate::error::{Error, Result};
use crate::pipeline::step::{OpKind, Source, SourceContent, SourceFile, Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Read a table from a file (`kind = "read"`).
#[derive(Debug, Clone)]
pub struct Read {
    path: PathBuf,
    format: Option<FileFormat>,
    batch_rows: usize,
    version: Option<String>,
}

impl Read {
    /// Read `path`, with the format implied by its extension.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Read {
            path: path.into(),
            format: None,
            batch_rows: DEFAULT_BATCH_ROWS,
            version: None,
        }
    }

    /// Label this version of the data (`"2026-q3"`); recorded in the run store
    /// beside the file's content hash. Reuse depends on the content alone.
    pub fn version(mut self, label: impl Into<String>) -> Self {
        self.version = Some(label.into());
        self
    }

    /// Name the format instead of inferring it from the extension.
    pub fn format(mut self, format: FileFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Rows per chunk.
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    fn open(&self) -> Result<BatchReader> {
        BatchReader::open(&self.path, self.format, self.batch_rows)
    }
}

impl Step for Read {
    fn op_kind(&self) -> OpKind {
        OpKind::Io
    }
    /// The file's size: compressed formats hold more in memory, so this
    /// underestimates them, which keeps the planner cautious about GPUs.
    fn size_hint(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }
    step_io!("read", [], ["out"]);
    fn params(&self) -> String {
        format!("path={}", self.path.display())
    }
    fn output_schemas(&self, _: StepContext, _: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![Arc::clone(self.open()?.schema())])
    }
    fn sources(&self) -> Result<Vec<Source>> {
        Ok(vec![Source {
            name: self.path.display().to_string(),
            content: SourceContent::File(self.path.clone()),
            version: self.version.clone(),
        }])
    }
    fn source_file(&self) -> Option<SourceFile> {
        Some(SourceFile {
            path: self.path.clone(),
            format: self.format,
            batch_rows: self.batch_rows,
        })
    }
    fn run(&self, _: StepContext, _: &[Table]) -> Result<Vec<Table>> {
        let reader = self.open()?;
        let schema = Arc::clone(reader.schema());
        Ok(vec![Table::try_new(
            schema,
            reader.collect::<Result<Vec<_>>>()?,
        )?])
    }
}

/// The output of a step that reads `file`, as a stream every consumer scans
/// again, for the formats whose footer tells their size without a scan
/// (Parquet, the Arrow IPC file format). `None` for the others (CSV, Arrow
/// IPC streams): those are read once, whole. An IPC file larger than
/// `memory_budget` bytes releases each batch's pages once it is dropped
/// (see [`MappedIpcFile::scan`]); a smaller one stays mapped, so that the
/// next scan finds its pages in place. A Parquet stream can be narrowed to
/// the columns a consumer reads ([`Stream::reading_only`]) and pruned to the
/// row groups a consumer's condition may hold in ([`Stream::pruned`]); both
/// apply to that consumer's scan only, so the stream itself, the step's
/// output and what a workspace records of it, stays the whole file.
///
/// # Errors
/// [`Error::Io`] naming the file when it is missing, unreadable or damaged.
pub fn source_stream(file: &SourceFile, memory_budget: u64) -> Result<Option<Stream>> {
    let path = &file.path;
    match FileFormat::given_or_from_path(file.format, path)? {
        // Decoded again by every scan, a window of row groups at a time.
        FileFormat::Parquet => Ok(Some(parquet_stream(file, ReadOptions::default())?.0)),
        FileFormat::ArrowFile if is_ipc_file(path)? => {
            let file_len = std::fs::metadata(path)
                .map_err(|e| Error::io_from(path, e))?
                .len();
            if file_len > memory_budget {
                let mapped = MappedIpcFile::open(path)?;
                let schema = normalize_schema(mapped.schema());
                let mut size = (0, 0);
                for batch in mapped.batches() {
                    let batch = batch?;
                    size.0 += batch.num_rows();
                    size.1 += batch_data_size(&batch);
                }
                let release = ReadOptions {
                    release: true,
                    ..ReadOptions::default()
                };
                Ok(Some(scanned(file, schema, size, release)))
            } else {
                // Mapped once, its pages kept: every scan decodes nothing.
                let reader = BatchReader::open(path, file.format, file.batch_rows)?;
                let schema = Arc::clone(reader.schema());
                let table = Table::try_new(schema, reader.collect::<Result<Vec<_>>>()?)?;
                Ok(Some(Stream::from_table(table)))
            }
        }
        _ => Ok(None),
    }
}

/// `file` as a stream of `size` (rows, bytes) whose every scan opens it
/// again (its footer only; batches are decoded as they are read) and reads
/// it as `options` say.
fn scanned(
    file: &SourceFile,
    schema: SchemaRef,
    size: (usize, usize),
    options: ReadOptions,
) -> Stream {
    let SourceFile {
        path,
        format,
        batch_rows,
    } = file.clone();
    Stream::new(schema, Some(size), move || {
        let reader = BatchReader::open_with(&path, format, batch_rows, &options)?;
        Ok(Box::new(reader) as Batches)
    })
}

/// A Parquet file as a stream read as `options` say, with the row groups
/// it reads and the file's. The stream can be narrowed: a consumer that
/// reads only some columns gets only those decoded. It can be pruned: a
/// consumer that needs only the rows satisfying a predicate (a filter) gets
/// only the row groups whose statistics do not refute it, the predicates of
/// earlier prunings included. Each opens the footer again.
fn parquet_stream(file: &SourceFile, options: ReadOptions) -> Result<(Stream, (usize, usize))> {
    let scan = ParquetScan::open(&file.path, file.batch_rows)?
        .reading(options.columns.as_deref())
        .pruning(options.row_groups.as_deref());
    let size = (scan.rows(), scan.data_size());
    let schema = normalize_schema(&scan.schema());
    let groups = scan.row_groups();
    let narrow = {
        let (file, options) = (file.clone(), options.clone());
        move |needed: &[bool]| {
            let columns = Some(needed.to_vec());
            let options = ReadOptions {
                columns,
                ..options.clone()
            };
            Ok(parquet_stream(&file, options)?.0)
        }
    };
    let prune = {
        let (file, options) = (file.clone(), options.clone());
        move |predicate: &RowGroupPredicate| {
            let predicate = match &options.row_groups {
                Some(before) => {
                    RowGroupPredicate::And(vec![before.as_ref().clone(), predicate.clone()])
                }
                None => predicate.clone(),
            };
            let options = ReadOptions {
                row_groups: Some(Arc::new(predicate)),
                ..options.clone()
            };
            let (stream, (kept, total)) = parquet_stream(&file, options)?;
            Ok(Pruned {
                stream,
                skipped: total - kept,
                total,
            })
        }
    };
    let stream = scanned(file, schema, size, options)
        .narrowed_by(narrow)
        .pruned_by(prune);
    Ok((stream, groups))
}

impl FromSpec for Read {
    /// `path`; `format`, `version`, `batch_rows`.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let mut read = Read::new(spec.path("path")?);
        if let Some(format) = spec.format()? {
            read = read.format(format);
        }
        if let Some(label) = spec.opt_string("version")? {
            read = read.version(label);
        }
        let rows = spec.integer("batch_rows", DEFAULT_BATCH_ROWS as i64)?;
        let rows = usize::try_from(rows)
            .map_err(|_| spec.error("key 'batch_rows' must be positive".into()))?;
        Ok(read.batch_rows(rows))
    }
}

//! Data movement steps: read and write Parquet, Arrow IPC (file and stream) and
//! CSV, and in-memory tables.
//!
//! Files are read in chunks of [`DEFAULT_BATCH_ROWS`] rows, so downstream steps
//! see a table of many record batches, never one giant allocation. Writes go to
//! a temporary file beside the target and are renamed into place, so a failed
//! write never leaves a truncated file behind.

use std::fs::File;
use std::io::{BufReader, Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use super::step::{Source, SourceContent, SourceFile, Step, StepContext};
use super::stream::{Batches, Stream};
use super::table::{Table, batch_data_size, normalize_batch, normalize_schema};
use crate::cache::hash_table;
use crate::data::MappedIpcFile;
use crate::error::{Error, Result};
use crate::plan::OpKind;

/// Rows per chunk when reading files.
pub const DEFAULT_BATCH_ROWS: usize = 128 * 1024;

/// A tabular file format (serialized by the names spec files use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FileFormat {
    /// Apache Parquet.
    #[serde(rename = "parquet")]
    Parquet,
    /// Arrow IPC file format (`.arrow`, `.ipc`, `.feather`).
    #[serde(rename = "arrow")]
    ArrowFile,
    /// Arrow IPC stream format (`.arrows`).
    #[serde(rename = "arrows")]
    ArrowStream,
    /// Comma-separated values with a header row.
    #[serde(rename = "csv")]
    Csv,
}

impl FileFormat {
    /// The format a file name implies.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when the extension is not recognized.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        Ok(match ext.as_deref() {
            Some("parquet" | "pq") => FileFormat::Parquet,
            Some("arrow" | "ipc" | "feather") => FileFormat::ArrowFile,
            Some("arrows") => FileFormat::ArrowStream,
            Some("csv") => FileFormat::Csv,
            _ => {
                return Err(Error::io(
                    path,
                    "unknown file format; use a .parquet, .arrow/.ipc/.feather (IPC file), .arrows (IPC stream) or .csv extension, or name the format",
                ));
            }
        })
    }

    /// Parse a format name as written in spec files.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "parquet" => FileFormat::Parquet,
            "arrow" | "ipc" | "arrow_file" => FileFormat::ArrowFile,
            "arrows" | "arrow_stream" | "ipc_stream" => FileFormat::ArrowStream,
            "csv" => FileFormat::Csv,
            _ => return None,
        })
    }

    /// The format named, else the one `path`'s extension implies.
    ///
    /// # Errors
    /// As [`FileFormat::from_path`].
    pub fn given_or_from_path(given: Option<FileFormat>, path: &Path) -> Result<Self> {
        match given {
            Some(f) => Ok(f),
            None => FileFormat::from_path(path),
        }
    }

    fn name(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::ArrowFile => "arrow",
            FileFormat::ArrowStream => "arrows",
            FileFormat::Csv => "csv",
        }
    }
}

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

/// A file read as a stream of record batches of at most `batch_rows` rows,
/// with types normalized to fuseflow's dtypes. Only the current chunk (and,
/// for Parquet, the current row group's pages) is held in memory.
pub struct BatchReader {
    schema: SchemaRef,
    total_rows: Option<usize>,
    batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
    batch_rows: usize,
    pending: Option<(RecordBatch, usize)>,
}

impl BatchReader {
    /// Open `path` (format from the extension unless given).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it is missing, unreadable or not of the format.
    pub fn open(path: &Path, format: Option<FileFormat>, batch_rows: usize) -> Result<Self> {
        Self::open_with(path, format, batch_rows, false, None)
    }

    /// [`BatchReader::open`]; with `release`, the batches of an Arrow IPC
    /// file release their pages of its mapping when dropped (see
    /// [`MappedIpcFile::scan`]), for one pass over a file larger than memory;
    /// with `columns`, a Parquet file decodes only the columns marked, and
    /// gives the others as nulls (their fields made nullable).
    ///
    /// # Errors
    /// As [`BatchReader::open`].
    pub fn open_with(
        path: &Path,
        format: Option<FileFormat>,
        batch_rows: usize,
        release: bool,
        columns: Option<&[bool]>,
    ) -> Result<Self> {
        let format = FileFormat::given_or_from_path(format, path)?;
        let open = || open_for_reading(path);
        let corrupt = |format, e: &dyn std::fmt::Display| unreadable(path, format, e);
        // IPC files and streams are told apart by the file's magic bytes.
        let format = if matches!(format, FileFormat::ArrowFile | FileFormat::ArrowStream) {
            if is_ipc_file(path)? {
                FileFormat::ArrowFile
            } else {
                FileFormat::ArrowStream
            }
        } else {
            format
        };
        let batch_rows = batch_rows.max(1);
        let (schema, total_rows, batches): (
            SchemaRef,
            Option<usize>,
            Box<dyn Iterator<Item = _> + Send>,
        ) = match format {
            FileFormat::Parquet => {
                let scan = ParquetScan::open(path, batch_rows)?.reading(columns);
                (scan.schema(), Some(scan.rows()), Box::new(scan))
            }
            FileFormat::ArrowFile => {
                // Mapped and decoded in place: the batches point into the file.
                let file = MappedIpcFile::open(path)?;
                let schema = Arc::clone(file.schema());
                if release {
                    (schema, None, Box::new(file.scan()))
                } else {
                    (schema, None, Box::new(file.batches()))
                }
            }
            FileFormat::ArrowStream => {
                let reader =
                    arrow_ipc::reader::StreamReader::try_new(BufReader::new(open()?), None)
                        .map_err(|e| corrupt(format, &e))?;
                (reader.schema(), None, decoded(path, format, reader))
            }
            FileFormat::Csv => {
                let mut file = open()?;
                let (schema, _) = arrow_csv::reader::Format::default()
                    .with_header(true)
                    .infer_schema(&mut file, Some(10_000))
                    .map_err(|e| corrupt(format, &e))?;
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io(path, e))?;
                let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                    .with_header(true)
                    .with_batch_size(batch_rows)
                    .build(BufReader::new(file))
                    .map_err(|e| corrupt(format, &e))?;
                (reader.schema(), None, decoded(path, format, reader))
            }
        };
        Ok(BatchReader {
            schema: normalize_schema(&schema),
            total_rows,
            batches,
            batch_rows,
            pending: None,
        })
    }

    /// The (normalized) schema of every batch.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Number of rows, when the format records it (Parquet).
    pub fn total_rows(&self) -> Option<usize> {
        self.total_rows
    }
}

/// A decoder's batches, its errors naming the file and format.
fn decoded(
    path: &Path,
    format: FileFormat,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send + 'static,
) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
    let path = path.to_path_buf();
    Box::new(batches.map(move |b| b.map_err(|e| unreadable(&path, format, &e))))
}

/// The file opened for reading, or an error naming it.
fn open_for_reading(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(path, format!("cannot open for reading: {e}")))
}

/// The error for a file that does not decode as `format`.
fn unreadable(path: &Path, format: FileFormat, e: &dyn std::fmt::Display) -> Error {
    Error::io(path, format!("not a readable {} file: {e}", format.name()))
}

impl Iterator for BatchReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        // Formats that keep the writer's batch sizes are cut to `batch_rows` (zero-copy).
        if let Some((batch, offset)) = self.pending.take() {
            let len = self.batch_rows.min(batch.num_rows() - offset);
            if offset + len < batch.num_rows() {
                self.pending = Some((batch.clone(), offset + len));
            }
            return Some(Ok(batch.slice(offset, len)));
        }
        let batch = match self.batches.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        match normalize_batch(batch) {
            Ok(b) if b.num_rows() > self.batch_rows => {
                self.pending = Some((b, 0));
                self.next()
            }
            other => Some(other),
        }
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
    fn kind(&self) -> &str {
        "read"
    }
    fn inputs(&self) -> &[&str] {
        &[]
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
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

/// A Parquet file's row groups, decoded a few at a time in parallel (each on
/// its own reader over the metadata parsed once), in file order: a scan
/// holds only the row groups of one window in memory.
struct ParquetScan {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    batch_rows: usize,
    /// The columns to decode (all when `None`); the others come as nulls.
    columns: Option<Vec<bool>>,
    next_group: usize,
    decoded: std::collections::VecDeque<Result<RecordBatch>>,
}

impl ParquetScan {
    fn open(path: &Path, batch_rows: usize) -> Result<Self> {
        let metadata = ArrowReaderMetadata::load(&open_for_reading(path)?, Default::default())
            .map_err(|e| unreadable(path, FileFormat::Parquet, &e))?;
        Ok(ParquetScan {
            path: path.to_path_buf(),
            metadata,
            batch_rows: batch_rows.max(1),
            columns: None,
            next_group: 0,
            decoded: Default::default(),
        })
    }

    /// Decode only the columns marked in `columns` (when given, and when
    /// it marks as many as the file has).
    fn reading(mut self, columns: Option<&[bool]>) -> Self {
        let width = self.metadata.schema().fields().len();
        self.columns = columns
            .filter(|c| c.len() == width && c.contains(&false))
            .map(<[bool]>::to_vec);
        self
    }

    /// The schema of the batches.
    fn schema(&self) -> SchemaRef {
        match &self.columns {
            Some(columns) => reading_only(self.metadata.schema(), columns),
            None => Arc::clone(self.metadata.schema()),
        }
    }

    fn rows(&self) -> usize {
        usize::try_from(self.metadata.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// Bytes the file's rows take in memory, from its footer: fixed-width
    /// columns exactly (values, and validity where a row group has nulls or
    /// does not say), others by their uncompressed size in the file.
    fn data_size(&self) -> usize {
        let schema = self.metadata.schema();
        let mut bytes = 0u64;
        for group in self.metadata.metadata().row_groups() {
            let rows = group.num_rows().max(0) as u64;
            for (field, column) in schema.fields().iter().zip(group.columns()) {
                let nulls = column
                    .statistics()
                    .and_then(|s| s.null_count_opt())
                    .is_none_or(|n| n > 0);
                bytes += match field.data_type().primitive_width() {
                    Some(width) => rows * width as u64 + if nulls { rows.div_ceil(8) } else { 0 },
                    None => column.uncompressed_size().max(0) as u64,
                };
            }
        }
        bytes as usize
    }

    /// Decode the next window of row groups, one per thread.
    fn decode_window(&mut self) {
        let groups = self.metadata.metadata().num_row_groups();
        let end = groups.min(self.next_group + rayon::current_num_threads().max(1));
        let window = self.next_group..end;
        self.next_group = end;
        let (path, metadata, batch_rows) = (&self.path, &self.metadata, self.batch_rows);
        let (schema, columns) = (self.schema(), self.columns.as_deref());
        let mask = columns.map(|columns| {
            let roots = columns
                .iter()
                .enumerate()
                .filter(|(_, r)| **r)
                .map(|(i, _)| i);
            ProjectionMask::roots(metadata.metadata().file_metadata().schema_descr(), roots)
        });
        let decoded: Vec<Vec<Result<RecordBatch>>> = window
            .into_par_iter()
            .map(|group| {
                let reader = open_for_reading(path).and_then(|file| {
                    let builder =
                        ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
                            .with_row_groups(vec![group])
                            .with_batch_size(batch_rows);
                    match &mask {
                        Some(mask) => builder.with_projection(mask.clone()),
                        None => builder,
                    }
                    .build()
                    .map_err(|e| unreadable(path, FileFormat::Parquet, &e))
                });
                match reader {
                    Ok(reader) => decoded(path, FileFormat::Parquet, reader)
                        .map(|b| b.and_then(|b| with_unread_columns(b, &schema, columns)))
                        .collect(),
                    Err(e) => vec![Err(e)],
                }
            })
            .collect();
        self.decoded.extend(decoded.into_iter().flatten());
    }
}

/// The schema of a file's batches when only the columns marked in `columns`
/// are decoded: the file's, with the fields of the others made nullable
/// (they come as nulls).
fn reading_only(file: &Schema, columns: &[bool]) -> SchemaRef {
    let fields: Vec<Field> = file
        .fields()
        .iter()
        .zip(columns)
        .map(|(f, &read)| f.as_ref().clone().with_nullable(f.is_nullable() || !read))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, file.metadata().clone()))
}

/// `batch`, decoded with only the columns marked in `columns`, laid out in
/// `schema` with every other column null. The nulls cost no decoding, and
/// their zeroed buffers no page until something reads them.
fn with_unread_columns(
    batch: RecordBatch,
    schema: &SchemaRef,
    columns: Option<&[bool]>,
) -> Result<RecordBatch> {
    let Some(columns) = columns else {
        return Ok(batch);
    };
    let mut decoded = batch.columns().iter();
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(columns)
        .map(|(field, &read)| match read {
            true => decoded.next().cloned().ok_or_else(|| {
                Error::Internal("a projected Parquet batch has too few columns".into())
            }),
            false => Ok(arrow_array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
}

impl Iterator for ParquetScan {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        while self.decoded.is_empty() && self.next_group < self.metadata.metadata().num_row_groups()
        {
            self.decode_window();
        }
        self.decoded.pop_front()
    }
}

/// The output of a step that reads `file`, as a stream every consumer scans
/// again, for the formats whose footer tells their size without a scan
/// (Parquet, the Arrow IPC file format). `None` for the others (CSV, Arrow
/// IPC streams): those are read once, whole. An IPC file larger than
/// `memory_budget` bytes releases each batch's pages once it is dropped
/// (see [`MappedIpcFile::scan`]); a smaller one stays mapped, so that the
/// next scan finds its pages in place.
///
/// # Errors
/// [`Error::Io`] naming the file when it is missing, unreadable or damaged.
pub fn source_stream(file: &SourceFile, memory_budget: u64) -> Result<Option<Stream>> {
    let SourceFile {
        path,
        format,
        batch_rows,
    } = file.clone();
    // Every scan opens the file again (its footer only; batches are decoded
    // as they are read).
    let scanned = {
        let path = path.clone();
        move |schema: SchemaRef, size, release, columns: Option<Vec<bool>>| {
            let path = path.clone();
            Stream::new(schema, Some(size), move || {
                let reader =
                    BatchReader::open_with(&path, format, batch_rows, release, columns.as_deref())?;
                Ok(Box::new(reader) as Batches)
            })
        }
    };
    match FileFormat::given_or_from_path(format, &path)? {
        // Decoded again by every scan, a window of row groups at a time.
        // A consumer that reads only some columns gets only those decoded.
        FileFormat::Parquet => {
            let scan = ParquetScan::open(&path, batch_rows)?;
            let size = (scan.rows(), scan.data_size());
            let file = Arc::clone(scan.metadata.schema());
            let schema = normalize_schema(&file);
            let narrow = {
                let scanned = scanned.clone();
                move |needed: &[bool]| {
                    let schema = normalize_schema(&reading_only(&file, needed));
                    Ok(scanned(schema, size, false, Some(needed.to_vec())))
                }
            };
            Ok(Some(scanned(schema, size, false, None).narrowed_by(narrow)))
        }
        FileFormat::ArrowFile if is_ipc_file(&path)? => {
            let file_len = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            if file_len > memory_budget {
                let mapped = MappedIpcFile::open(&path)?;
                let schema = normalize_schema(mapped.schema());
                let mut size = (0, 0);
                for batch in mapped.batches() {
                    let batch = batch?;
                    size.0 += batch.num_rows();
                    size.1 += batch_data_size(&batch);
                }
                Ok(Some(scanned(schema, size, true, None)))
            } else {
                // Mapped once, its pages kept: every scan decodes nothing.
                let reader = BatchReader::open(&path, format, batch_rows)?;
                let schema = Arc::clone(reader.schema());
                let table = Table::try_new(schema, reader.collect::<Result<Vec<_>>>()?)?;
                Ok(Some(Stream::from_table(table)))
            }
        }
        _ => Ok(None),
    }
}

/// Whether `path` starts with the Arrow IPC file format's magic bytes.
fn is_ipc_file(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 6];
    Ok(open_for_reading(path)?.read_exact(&mut magic).is_ok() && &magic == b"ARROW1")
}

/// Write a table to a file (`kind = "write"`).
#[derive(Debug, Clone)]
pub struct Write {
    path: PathBuf,
    format: Option<FileFormat>,
}

impl Write {
    /// Write to `path`, in the format its extension implies.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Write {
            path: path.into(),
            format: None,
        }
    }

    /// Name the format instead of inferring it from the extension.
    pub fn format(mut self, format: FileFormat) -> Self {
        self.format = Some(format);
        self
    }
}

/// A file being written batch by batch, atomically: batches go to a temporary
/// file beside the target, which is synced and renamed into place by
/// [`BatchWriter::finish`]. Dropped without `finish`, it removes the temporary
/// file and leaves any existing target untouched.
pub struct BatchWriter {
    path: PathBuf,
    tmp: PathBuf,
    sink: Option<Sink>,
}

enum Sink {
    Parquet(ArrowWriter<File>),
    ArrowFile(arrow_ipc::writer::FileWriter<File>),
    ArrowStream(arrow_ipc::writer::StreamWriter<File>),
    Csv(arrow_csv::Writer<File>),
}

impl BatchWriter {
    /// Start writing `path` in `format` with `schema`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be created.
    pub fn create(path: &Path, format: FileFormat, schema: &SchemaRef) -> Result<Self> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut writer = BatchWriter {
            path: path.to_path_buf(),
            tmp,
            sink: None,
        };
        let sink = (|| -> std::result::Result<Sink, Box<dyn std::error::Error>> {
            std::fs::create_dir_all(dir)?;
            let file = File::create(&writer.tmp)?;
            Ok(match format {
                FileFormat::Parquet => Sink::Parquet(ArrowWriter::try_new(
                    file,
                    Arc::clone(schema),
                    Some(parquet_properties(schema)),
                )?),
                FileFormat::ArrowFile => {
                    Sink::ArrowFile(arrow_ipc::writer::FileWriter::try_new(file, schema)?)
                }
                FileFormat::ArrowStream => {
                    Sink::ArrowStream(arrow_ipc::writer::StreamWriter::try_new(file, schema)?)
                }
                FileFormat::Csv => Sink::Csv(
                    arrow_csv::WriterBuilder::new()
                        .with_header(true)
                        .build(file),
                ),
            })
        })()
        .map_err(|e| writer.error(e))?;
        writer.sink = Some(sink);
        Ok(writer)
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::io(&self.path, format!("cannot write: {e}"))
    }

    /// Append one batch.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file (a full disk, for example).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let result = match self.sink.as_mut().expect("writer is open until finish") {
            Sink::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            Sink::ArrowFile(w) => w.write(batch).map_err(|e| e.to_string()),
            Sink::ArrowStream(w) => w.write(batch).map_err(|e| e.to_string()),
            Sink::Csv(w) => w.write(batch).map_err(|e| e.to_string()),
        };
        result.map_err(|e| self.error(e))
    }

    /// Finish the file, sync it to disk and move it into place.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn finish(mut self) -> Result<()> {
        let sink = self.sink.take().expect("writer is open until finish");
        let result = (|| -> std::result::Result<(), Box<dyn std::error::Error>> {
            let file = match sink {
                Sink::Parquet(w) => w.into_inner()?,
                Sink::ArrowFile(mut w) => {
                    w.finish()?;
                    w.into_inner()?
                }
                Sink::ArrowStream(mut w) => {
                    w.finish()?;
                    w.into_inner()?
                }
                Sink::Csv(w) => w.into_inner(),
            };
            file.sync_all()?;
            std::fs::rename(&self.tmp, &self.path)?;
            Ok(())
        })();
        result.map_err(|e| self.error(e))
    }
}

/// Parquet writer settings: dictionary encoding off for float columns,
/// whose values rarely repeat (building the dictionary, only to abandon it
/// at its size limit, cost more than encoding the column).
fn parquet_properties(schema: &SchemaRef) -> WriterProperties {
    schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_floating())
        .fold(WriterProperties::builder(), |props, f| {
            props.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false)
        })
        .build()
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        if self.sink.is_some() || self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write `table` to `path` atomically (see [`BatchWriter`]).
///
/// # Errors
/// [`Error::Io`] naming the file when it cannot be created or written.
pub fn write_table(table: &Table, path: &Path, format: FileFormat) -> Result<()> {
    let mut writer = BatchWriter::create(path, format, table.schema())?;
    for batch in table.batches() {
        writer.write(batch)?;
    }
    writer.finish()
}

impl Step for Write {
    fn op_kind(&self) -> OpKind {
        OpKind::Io
    }
    fn kind(&self) -> &str {
        "write"
    }
    fn inputs(&self) -> &[&str] {
        &["data"]
    }
    fn outputs(&self) -> &[&str] {
        &[]
    }
    fn params(&self) -> String {
        format!("path={}", self.path.display())
    }
    fn output_schemas(&self, _: StepContext, _: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        FileFormat::given_or_from_path(self.format, &self.path)?;
        Ok(vec![])
    }
    fn run(&self, _: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let format = FileFormat::given_or_from_path(self.format, &self.path)?;
        write_table(&inputs[0], &self.path, format)?;
        Ok(vec![])
    }
    fn streams_input(&self) -> bool {
        true
    }
    fn run_stream(&self, _: StepContext, data: &Stream, _: &[Table]) -> Result<Vec<Table>> {
        let format = FileFormat::given_or_from_path(self.format, &self.path)?;
        let mut writer = BatchWriter::create(&self.path, format, data.schema())?;
        for batch in data.scan()? {
            writer.write(&batch?)?;
        }
        writer.finish()?;
        Ok(vec![])
    }
    fn has_side_effects(&self) -> bool {
        true
    }
    fn written_files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}

/// A table given in memory (`kind` is `"memory"`; not available in spec files).
#[derive(Debug, Clone)]
pub struct MemorySource {
    table: Table,
}

impl MemorySource {
    /// A source that yields `table` (its types normalized to fuseflow's dtypes).
    pub fn new(table: Table) -> Self {
        MemorySource { table }
    }
}

impl Step for MemorySource {
    fn op_kind(&self) -> OpKind {
        OpKind::Io
    }
    fn size_hint(&self) -> Option<u64> {
        Some(self.table.memory_size() as u64)
    }
    fn kind(&self) -> &str {
        "memory"
    }
    fn inputs(&self) -> &[&str] {
        &[]
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        format!("rows={}", self.table.num_rows())
    }
    fn sources(&self) -> Result<Vec<Source>> {
        Ok(vec![Source {
            name: "memory".into(),
            content: SourceContent::Hash(hash_table(&self.table)?),
            version: None,
        }])
    }
    fn output_schemas(&self, _: StepContext, _: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![normalize_schema(self.table.schema())])
    }
    fn run(&self, _: StepContext, _: &[Table]) -> Result<Vec<Table>> {
        let schema = normalize_schema(self.table.schema());
        let batches = self
            .table
            .batches()
            .iter()
            .cloned()
            .map(normalize_batch)
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![Table::try_new(schema, batches)?])
    }
}

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

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::step::{Step, StepContext};
use super::table::{Table, normalize_batch, normalize_schema};
use crate::error::{Error, Result};

/// Rows per chunk when reading files.
pub const DEFAULT_BATCH_ROWS: usize = 128 * 1024;

/// A tabular file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC file format (`.arrow`, `.ipc`, `.feather`).
    ArrowFile,
    /// Arrow IPC stream format (`.arrows`).
    ArrowStream,
    /// Comma-separated values with a header row.
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
}

impl Read {
    /// Read `path`, with the format implied by its extension.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Read {
            path: path.into(),
            format: None,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
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

    fn resolved_format(&self) -> Result<FileFormat> {
        let format = match self.format {
            Some(f) => f,
            None => FileFormat::from_path(&self.path)?,
        };
        // IPC files and streams are told apart by the file's magic bytes.
        if matches!(format, FileFormat::ArrowFile | FileFormat::ArrowStream) {
            let mut magic = [0u8; 6];
            let mut file = self.open()?;
            let is_file = file.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
            return Ok(if is_file {
                FileFormat::ArrowFile
            } else {
                FileFormat::ArrowStream
            });
        }
        Ok(format)
    }

    fn open(&self) -> Result<File> {
        File::open(&self.path)
            .map_err(|e| Error::io(&self.path, format!("cannot open for reading: {e}")))
    }

    fn corrupt(&self, format: FileFormat, e: impl std::fmt::Display) -> Error {
        Error::io(
            &self.path,
            format!("not a readable {} file: {e}", format.name()),
        )
    }

    fn csv_schema(&self) -> Result<SchemaRef> {
        let mut file = self.open()?;
        let (schema, _) = arrow_csv::reader::Format::default()
            .with_header(true)
            .infer_schema(&mut file, Some(10_000))
            .map_err(|e| self.corrupt(FileFormat::Csv, e))?;
        Ok(Arc::new(schema))
    }

    /// Read the file's schema (normalized to fuseflow's dtypes) without reading its rows.
    fn schema(&self) -> Result<SchemaRef> {
        let format = self.resolved_format()?;
        let raw = match format {
            FileFormat::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(self.open()?)
                    .map_err(|e| self.corrupt(format, e))?;
                Arc::clone(builder.schema())
            }
            FileFormat::ArrowFile => arrow_ipc::reader::FileReader::try_new(self.open()?, None)
                .map_err(|e| self.corrupt(format, e))?
                .schema(),
            FileFormat::ArrowStream => {
                arrow_ipc::reader::StreamReader::try_new(BufReader::new(self.open()?), None)
                    .map_err(|e| self.corrupt(format, e))?
                    .schema()
            }
            FileFormat::Csv => self.csv_schema()?,
        };
        Ok(normalize_schema(&raw))
    }

    /// Read all chunks.
    fn read(&self) -> Result<Table> {
        let format = self.resolved_format()?;
        let batches: Vec<std::result::Result<RecordBatch, ArrowError>> = match format {
            FileFormat::Parquet => ParquetRecordBatchReaderBuilder::try_new(self.open()?)
                .and_then(|b| b.with_batch_size(self.batch_rows).build())
                .map_err(|e| self.corrupt(format, e))?
                .collect(),
            FileFormat::ArrowFile => arrow_ipc::reader::FileReader::try_new(self.open()?, None)
                .map_err(|e| self.corrupt(format, e))?
                .collect(),
            FileFormat::ArrowStream => {
                arrow_ipc::reader::StreamReader::try_new(BufReader::new(self.open()?), None)
                    .map_err(|e| self.corrupt(format, e))?
                    .collect()
            }
            FileFormat::Csv => {
                let schema = self.csv_schema()?;
                let mut file = self.open()?;
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io(&self.path, e))?;
                arrow_csv::ReaderBuilder::new(schema)
                    .with_header(true)
                    .with_batch_size(self.batch_rows)
                    .build(BufReader::new(file))
                    .map_err(|e| self.corrupt(format, e))?
                    .collect()
            }
        };
        let schema = self.schema()?;
        let batches = batches
            .into_iter()
            .map(|b| {
                b.map_err(|e| self.corrupt(format, e))
                    .and_then(normalize_batch)
            })
            .collect::<Result<Vec<_>>>()?;
        // IPC files keep the writer's batch sizes; cut them to the chunk size (zero-copy).
        let batches = batches
            .into_iter()
            .flat_map(|b| {
                let rows = b.num_rows();
                (0..rows.max(1))
                    .step_by(self.batch_rows)
                    .map(move |s| b.slice(s.min(rows), self.batch_rows.min(rows - s.min(rows))))
            })
            .collect();
        Table::try_new(schema, batches)
    }
}

impl Step for Read {
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
        Ok(vec![self.schema()?])
    }
    fn run(&self, _: StepContext, _: &[Table]) -> Result<Vec<Table>> {
        Ok(vec![self.read()?])
    }
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

/// Write `table` to `path` atomically: a temporary file beside it, then a rename.
///
/// # Errors
/// [`Error::Io`] naming the file when it cannot be created or written.
pub fn write_table(table: &Table, path: &Path, format: FileFormat) -> Result<()> {
    let io = |e: &dyn std::fmt::Display| Error::io(path, format!("cannot write: {e}"));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::result::Result<(), Box<dyn std::error::Error>> {
        let file = File::create(&tmp)?;
        match format {
            FileFormat::Parquet => {
                let mut w = ArrowWriter::try_new(file, Arc::clone(table.schema()), None)?;
                table.batches().iter().try_for_each(|b| w.write(b))?;
                w.close()?;
            }
            FileFormat::ArrowFile => {
                let mut w = arrow_ipc::writer::FileWriter::try_new(file, table.schema())?;
                table.batches().iter().try_for_each(|b| w.write(b))?;
                w.finish()?;
            }
            FileFormat::ArrowStream => {
                let mut w = arrow_ipc::writer::StreamWriter::try_new(file, table.schema())?;
                table.batches().iter().try_for_each(|b| w.write(b))?;
                w.finish()?;
            }
            FileFormat::Csv => {
                let mut w = arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file);
                table.batches().iter().try_for_each(|b| w.write(b))?;
            }
        }
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(&e)
    })
}

impl Step for Write {
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
        if self.format.is_none() {
            FileFormat::from_path(&self.path)?;
        }
        Ok(vec![])
    }
    fn run(&self, _: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let format = match self.format {
            Some(f) => f,
            None => FileFormat::from_path(&self.path)?,
        };
        write_table(&inputs[0], &self.path, format)?;
        Ok(vec![])
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

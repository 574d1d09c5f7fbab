//! Any tabular file read as batches of a bounded row count.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use super::ipc_stream::IpcStream;
use super::{FileFormat, MappedIpcFile, ParquetScan, RowGroupPredicate, is_ipc_file};
use crate::data::{normalize_batch, normalize_schema};
use crate::error::{Cause, Error, Result};

/// How [`BatchReader::open_with`] reads a file, beyond its format and
/// batch size. The default reads everything.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// The batches of an Arrow IPC file release their pages of its mapping
    /// when dropped (see [`MappedIpcFile::scan`]), for one pass over a file
    /// larger than memory.
    pub release: bool,
    /// A Parquet file decodes only the columns marked, and gives the others
    /// as nulls (their fields made nullable).
    pub columns: Option<Vec<bool>>,
    /// A Parquet file skips the row groups whose statistics prove that no
    /// row satisfies this predicate; the rows read are those of the other
    /// groups, unfiltered.
    pub row_groups: Option<Arc<RowGroupPredicate>>,
}

/// The most cells (rows x columns) of one batch decoded from CSV: arrow's
/// decoder sizes its buffers for all of them (about 40 bytes each) before
/// reading a row, so a header of a thousand columns would otherwise cost
/// gigabytes. 8192 rows of 32 columns.
const CSV_BATCH_CELLS: usize = 1 << 18;

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
        Self::open_with(path, format, batch_rows, &ReadOptions::default())
    }

    /// [`BatchReader::open`], reading as `options` say.
    ///
    /// # Errors
    /// As [`BatchReader::open`].
    pub fn open_with(
        path: &Path,
        format: Option<FileFormat>,
        batch_rows: usize,
        options: &ReadOptions,
    ) -> Result<Self> {
        let format = FileFormat::given_or_from_path(format, path)?;
        let open = || open_for_reading(path);
        let corrupt = |format, e: ArrowError| unreadable(path, format, e);
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
                let scan = ParquetScan::open(path, batch_rows)?
                    .reading(options.columns.as_deref())
                    .pruning(options.row_groups.as_deref());
                (scan.schema(), Some(scan.rows()), Box::new(scan))
            }
            FileFormat::ArrowFile => {
                // Mapped and decoded in place: the batches point into the file.
                let file = MappedIpcFile::open(path)?;
                let schema = Arc::clone(file.schema());
                if options.release {
                    (schema, None, Box::new(file.scan()))
                } else {
                    (schema, None, Box::new(file.batches()))
                }
            }
            FileFormat::ArrowStream => {
                let (schema, stream) = IpcStream::open(path)?;
                (schema, None, Box::new(stream))
            }
            FileFormat::Csv => {
                let mut file = open()?;
                let (schema, _) = arrow_csv::reader::Format::default()
                    .with_header(true)
                    .infer_schema(&mut file, Some(10_000))
                    .map_err(|e| corrupt(format, e))?;
                if schema.fields().is_empty() {
                    return Err(Error::io(
                        path,
                        "the CSV file is empty: it needs a header line naming its columns",
                    ));
                }
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io_from(path, e))?;
                // arrow's decoder allocates for a whole batch of every column
                // up front: a wide header must not make that unbounded.
                let csv_rows = batch_rows.min((CSV_BATCH_CELLS / schema.fields().len()).max(1));
                let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                    .with_header(true)
                    .with_batch_size(csv_rows)
                    .build(BufReader::new(file))
                    .map_err(|e| corrupt(format, e))?;
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

/// A decoder's batches up to its first error, which names the file and
/// format. The batches end there: a decoder that has failed may repeat its
/// error for ever (Parquet's does), and nothing after it can be trusted.
pub(super) fn decoded(
    path: &Path,
    format: FileFormat,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send + 'static,
) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
    let path = path.to_path_buf();
    let mut failed = false;
    Box::new(batches.map_while(move |batch| {
        (!failed).then(|| {
            failed = batch.is_err();
            batch.map_err(|e| unreadable(&path, format, e))
        })
    }))
}

/// The file opened for reading, or an error naming it.
pub(super) fn open_for_reading(path: &Path) -> Result<File> {
    File::open(path)
        .map_err(|e| Error::io(path, format!("cannot open for reading: {e}")).caused_by(e))
}

/// The error for a file that does not decode as `format`.
pub(super) fn unreadable(path: &Path, format: FileFormat, e: impl Into<Cause>) -> Error {
    let e = e.into();
    Error::io(path, format!("not a readable {} file: {e}", format.name())).caused_by(e)
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

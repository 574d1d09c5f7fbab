//! Parquet row groups decoded in parallel, only the columns asked for, and
//! only the row groups whose statistics a predicate does not refute.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};
use rayon::prelude::*;

use super::reader::{decoded, open_for_reading, unreadable};
use super::{FileFormat, RowGroupPredicate};
use crate::error::{Error, Result, contain};

/// A Parquet file's row groups, decoded a few at a time in parallel (each on
/// its own reader over the metadata parsed once), in file order: a scan
/// holds only the row groups of one window in memory.
pub(crate) struct ParquetScan {
    path: PathBuf,
    file: FileBytes,
    metadata: ArrowReaderMetadata,
    batch_rows: usize,
    /// The columns to decode (all when `None`); the others come as nulls.
    columns: Option<Vec<bool>>,
    /// The row groups to decode, in file order (all unless pruned).
    groups: Vec<usize>,
    /// Position in `groups` of the next row group to decode.
    next_group: usize,
    decoded: std::collections::VecDeque<Result<RecordBatch>>,
}

impl ParquetScan {
    pub(crate) fn open(path: &Path, batch_rows: usize) -> Result<Self> {
        let file = FileBytes::Disk(open_for_reading(path)?);
        let metadata = contain(|| ArrowReaderMetadata::load(&file, Default::default()))
            .map_err(|panic| damaged(path, &panic))?
            .map_err(|e| unreadable(path, FileFormat::Parquet, e))?;
        check_footer(metadata.metadata(), file.len()).map_err(|what| damaged(path, &what))?;
        let groups = (0..metadata.metadata().num_row_groups()).collect();
        Ok(ParquetScan {
            path: path.to_path_buf(),
            file,
            metadata,
            batch_rows: batch_rows.max(1),
            columns: None,
            groups,
            next_group: 0,
            decoded: Default::default(),
        })
    }

    /// Decode only the columns marked in `columns` (when given, and when
    /// it marks as many as the file has).
    pub(crate) fn reading(mut self, columns: Option<&[bool]>) -> Self {
        let width = self.metadata.schema().fields().len();
        self.columns = columns
            .filter(|c| c.len() == width && c.contains(&false))
            .map(<[bool]>::to_vec);
        self
    }

    /// Skip the row groups whose statistics prove that no row satisfies
    /// `predicate` (when given; see [`RowGroupPredicate::may_match`]).
    pub(crate) fn pruning(mut self, predicate: Option<&RowGroupPredicate>) -> Self {
        if let Some(predicate) = predicate {
            let (schema, file) = (self.metadata.schema(), self.metadata.metadata());
            self.groups
                .retain(|&g| predicate.may_match(schema, file.row_group(g)));
        }
        self
    }

    /// The row groups the scan decodes, and the file's row groups.
    pub(crate) fn row_groups(&self) -> (usize, usize) {
        (self.groups.len(), self.metadata.metadata().num_row_groups())
    }

    /// The schema of the batches.
    pub(crate) fn schema(&self) -> SchemaRef {
        match &self.columns {
            Some(columns) => reading_only(self.metadata.schema(), columns),
            None => Arc::clone(self.metadata.schema()),
        }
    }

    /// The rows of the row groups the scan decodes.
    pub(crate) fn rows(&self) -> usize {
        self.kept()
            .map(|g| usize::try_from(g.num_rows()).unwrap_or(0))
            .sum()
    }

    fn kept(&self) -> impl Iterator<Item = &parquet::file::metadata::RowGroupMetaData> {
        let file = self.metadata.metadata();
        self.groups.iter().map(|&g| file.row_group(g))
    }

    /// Bytes the scanned rows take in memory, from the file's footer:
    /// fixed-width columns exactly (values, and validity where a row group
    /// has nulls or does not say), others by their uncompressed size in the
    /// file.
    pub(crate) fn data_size(&self) -> usize {
        let schema = self.metadata.schema();
        let mut bytes = 0u64;
        for group in self.kept() {
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
        let end = self
            .groups
            .len()
            .min(self.next_group + rayon::current_num_threads().max(1));
        let window = self.groups[self.next_group..end].to_vec();
        self.next_group = end;
        if let Err(e) = self.file.load_if_small(&self.path) {
            self.decoded.push_back(Err(e));
            self.next_group = self.groups.len();
            return;
        }
        let (path, metadata, batch_rows) = (&self.path, &self.metadata, self.batch_rows);
        let file = &self.file;
        let (schema, columns) = (self.schema(), self.columns.as_deref());
        let mask = columns.map(|columns| {
            let roots = columns
                .iter()
                .enumerate()
                .filter(|(_, r)| **r)
                .map(|(i, _)| i);
            ProjectionMask::roots(metadata.metadata().file_metadata().schema_descr(), roots)
        });
        let decode = |group| -> Vec<Result<RecordBatch>> {
            let reader = file.reopen(path).and_then(|file| {
                let builder =
                    ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
                        .with_row_groups(vec![group])
                        .with_batch_size(batch_rows);
                match &mask {
                    Some(mask) => builder.with_projection(mask.clone()),
                    None => builder,
                }
                .build()
                .map_err(|e| unreadable(path, FileFormat::Parquet, e))
            });
            match reader {
                Ok(reader) => decoded(path, FileFormat::Parquet, reader)
                    .map(|b| b.and_then(|b| with_unread_columns(b, &schema, columns)))
                    .collect(),
                Err(e) => vec![Err(e)],
            }
        };
        // A decoder's panic (damage its checks miss) makes the row group
        // an error.
        let decoded: Vec<Vec<Result<RecordBatch>>> = window
            .into_par_iter()
            .map(|group| {
                contain(|| decode(group)).unwrap_or_else(|panic| vec![Err(damaged(path, &panic))])
            })
            .collect();
        self.decoded.extend(decoded.into_iter().flatten());
    }
}

/// Files up to this size are read into memory whole and decoded from there.
const IN_MEMORY_BYTES: u64 = 64 << 20;

/// A Parquet file's bytes as the decoders read them: a small file from
/// memory (see [`FileBytes::load_if_small`]), so that a damaged page header
/// whose lengths run past the end costs memory reads rather than a read
/// from the file per byte (a fuzzed 3 KB file took 1.9 s so); a larger one
/// from the file, each decoding thread with its own handle.
enum FileBytes {
    Memory(Bytes),
    Disk(File),
}

impl FileBytes {
    /// A small file read into memory, once, when decoding starts (opening
    /// a scan reads only the footer, as the file it stays when large).
    fn load_if_small(&mut self, path: &Path) -> Result<()> {
        let FileBytes::Disk(file) = self else {
            return Ok(());
        };
        let len = Length::len(file);
        if len > IN_MEMORY_BYTES {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| Error::io_from(path, e))?;
        *self = FileBytes::Memory(bytes.into());
        Ok(())
    }

    /// The same bytes, for another decoder.
    fn reopen(&self, path: &Path) -> Result<Self> {
        Ok(match self {
            FileBytes::Memory(bytes) => FileBytes::Memory(bytes.clone()),
            FileBytes::Disk(_) => FileBytes::Disk(open_for_reading(path)?),
        })
    }
}

impl Length for FileBytes {
    fn len(&self) -> u64 {
        match self {
            FileBytes::Memory(bytes) => bytes.len() as u64,
            FileBytes::Disk(file) => Length::len(file),
        }
    }
}

impl ChunkReader for FileBytes {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(match self {
            FileBytes::Memory(bytes) => Box::new(bytes.get_read(start)?),
            FileBytes::Disk(file) => Box::new(file.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            FileBytes::Memory(bytes) => bytes.get_bytes(start, length),
            FileBytes::Disk(file) => file.get_bytes(start, length),
        }
    }
}

/// The error for a file whose damage its decoding found.
fn damaged(path: &Path, what: &str) -> Error {
    Error::io(path, format!("the file is damaged or not Parquet: {what}"))
}

/// Refuse a footer whose figures the file cannot hold, before any decoder
/// trusts them: every column chunk's bytes lie within the file, each
/// declares at least a value per row of its row group (a level per row,
/// null or not), a row group with rows has a column, and the row groups
/// add up to the file's row count. A row
/// count made huge by damage would otherwise have the decoders produce rows
/// that the file has no data for.
fn check_footer(metadata: &ParquetMetaData, file_len: u64) -> std::result::Result<(), String> {
    let mut rows = 0i64;
    for (g, group) in metadata.row_groups().iter().enumerate() {
        let group_rows = group.num_rows();
        if group_rows < 0 {
            return Err(format!("row group {g} declares {group_rows} rows"));
        }
        // Without a column, nothing in the file backs the row count.
        if group.columns().is_empty() && group_rows > 0 {
            return Err(format!(
                "row group {g} declares {group_rows} rows but holds no column"
            ));
        }
        for column in group.columns() {
            let name = column.column_path().string();
            // `byte_range` panics on a negative offset or size: check them first.
            let start = (column.dictionary_page_offset()).unwrap_or(column.data_page_offset());
            let (Ok(start), Ok(length)) = (
                u64::try_from(start),
                u64::try_from(column.compressed_size()),
            ) else {
                return Err(format!(
                    "column '{name}' of row group {g} claims {} bytes at offset {start}",
                    column.compressed_size()
                ));
            };
            if start.checked_add(length).is_none_or(|end| end > file_len) {
                return Err(format!(
                    "column '{name}' of row group {g} claims bytes {start}..{} of a {file_len}-byte file",
                    start.saturating_add(length)
                ));
            }
            if column.num_values() < group_rows {
                return Err(format!(
                    "column '{name}' of row group {g} has {} values for {group_rows} rows",
                    column.num_values()
                ));
            }
        }
        rows = rows.saturating_add(group_rows);
    }
    let declared = metadata.file_metadata().num_rows();
    if rows != declared {
        return Err(format!(
            "its row groups hold {rows} rows, its footer says {declared}"
        ));
    }
    Ok(())
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
        while self.decoded.is_empty() && self.next_group < self.groups.len() {
            self.decode_window();
        }
        self.decoded.pop_front()
    }
}

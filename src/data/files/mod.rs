//! Tabular files: formats, reading batch by batch, writing atomically.
//!
//! - [`FileFormat`]: Parquet, Arrow IPC (file and stream), CSV.
//! - [`BatchReader`]: any of them read as batches of a bounded row count,
//!   their types normalized; [`MappedIpcFile`]: an Arrow IPC file mapped and
//!   decoded in place; `ParquetScan`: row groups decoded in parallel, those
//!   a [`RowGroupPredicate`] refutes by their statistics skipped.
//! - [`BatchWriter`] and [`write_table`]: written to a temporary file beside
//!   the target and renamed into place, so a failed write never leaves a
//!   truncated file behind.

mod ipc_stream;
mod mapped_ipc;
mod parquet_scan;
mod reader;
mod row_group_predicate;
mod writer;

use std::io::Read as _;
use std::path::Path;

use crate::error::{Error, Result};

pub use mapped_ipc::MappedIpcFile;
pub(crate) use parquet_scan::ParquetScan;
pub use reader::{BatchReader, ReadOptions};
pub use row_group_predicate::{Comparison, RowGroupPredicate, Value};
pub(crate) use writer::io_advice;
pub use writer::{BatchWriter, write_table};

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

/// Whether `path` starts with the Arrow IPC file format's magic bytes.
pub(crate) fn is_ipc_file(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 6];
    Ok(reader::open_for_reading(path)?
        .read_exact(&mut magic)
        .is_ok()
        && &magic == b"ARROW1")
}

/// The most rows one decoded record batch may hold. A damaged length can
/// declare any count for a batch whose columns need no buffers (none at
/// all, or only nulls): a negative one reads as about 1.8e19, and cutting
/// that into batches of the row budget would never end.
const MAX_BATCH_ROWS: usize = u32::MAX as usize;

/// `Err` saying what is wrong when `batch` declares more than
/// [`MAX_BATCH_ROWS`] rows.
fn check_rows(batch: &arrow_array::RecordBatch) -> std::result::Result<(), String> {
    if batch.num_rows() > MAX_BATCH_ROWS {
        return Err(format!(
            "a record batch declares {} rows, more than the {MAX_BATCH_ROWS} one batch may hold \
             (a damaged or negative length)",
            batch.num_rows()
        ));
    }
    Ok(())
}

//! Files written batch by batch, atomically.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::FileFormat;
use crate::data::Table;
use crate::error::{Cause, Error, Result};

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
        let sink = (|| -> std::result::Result<Sink, Cause> {
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

    fn error(&self, e: Cause) -> Error {
        let advice = io_advice(&*e)
            .unwrap_or("check that the disk has free space and the directory is writable");
        Error::io(&self.path, format!("cannot write: {e}; {advice}")).caused_by(e)
    }

    /// Append one batch.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file (a full disk, for example).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let result = match self.sink.as_mut().expect("writer is open until finish") {
            Sink::Parquet(w) => w.write(batch).map_err(Cause::from),
            Sink::ArrowFile(w) => w.write(batch).map_err(Cause::from),
            Sink::ArrowStream(w) => w.write(batch).map_err(Cause::from),
            Sink::Csv(w) => w.write(batch).map_err(Cause::from),
        };
        result.map_err(|e| self.error(e))
    }

    /// Finish the file, sync it to disk and move it into place.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn finish(mut self) -> Result<()> {
        let sink = self.sink.take().expect("writer is open until finish");
        let result = (|| -> std::result::Result<(), Cause> {
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

/// Advice for a write that failed with `e` on a read-only file system or
/// without permission, found in `e`'s chain of causes (`None` for other
/// failures, such as a full disk, which callers advise on themselves).
pub(crate) fn io_advice(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cause = Some(e);
    while let Some(error) = cause {
        match error
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
        {
            Some(std::io::ErrorKind::ReadOnlyFilesystem) => {
                return Some(
                    "it is on a read-only file system: make it writable, or write elsewhere",
                );
            }
            Some(std::io::ErrorKind::PermissionDenied) => {
                return Some("check the permissions of the directory");
            }
            _ => cause = error.source(),
        }
    }
    None
}

//! Batch scoring of files larger than memory.
//!
//! The input is read in chunks of a bounded number of rows on one thread,
//! scored (preparation and model fused per chunk) on another, and written on a
//! third, with at most one chunk waiting between stages. Memory therefore stays
//! near a few chunks whatever the file size, and reading, scoring and writing
//! overlap.

use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;

use super::progress::Progress;
use crate::data::files::{BatchReader, BatchWriter, FileFormat};
use crate::error::{Error, Result};
use crate::ml::model::Model;
use crate::ml::score::Scorer;

/// Settings of [`score_file`].
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    /// Input columns passed through to the output (e.g. ids).
    pub keep: Vec<String>,
    /// Rows per chunk.
    pub chunk_rows: usize,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            keep: Vec::new(),
            chunk_rows: 256 * 1024,
        }
    }
}

/// What a batch-scoring run did.
#[derive(Clone, Debug)]
pub struct ScoreSummary {
    /// Rows scored.
    pub rows: usize,
    /// Chunks scored.
    pub chunks: usize,
    /// Wall time.
    pub duration: Duration,
    /// The process's peak resident memory so far, where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
}

/// Score `input` with `model` into `output` (formats from the extensions),
/// streaming in chunks of `options.chunk_rows` rows.
///
/// # Errors
/// [`Error::Io`] naming the file that cannot be read or written, and
/// [`Error::Schema`] when the input lacks a column the model needs. The output
/// file appears only when scoring succeeded.
pub fn score_file(
    model: Model,
    input: &Path,
    output: &Path,
    options: &ScoreOptions,
    progress: &mut Progress,
) -> Result<ScoreSummary> {
    let start = Instant::now();
    let reader = BatchReader::open(input, None, options.chunk_rows)?;
    progress.set_total(reader.total_rows());
    let scorer = Scorer::new("score", model, reader.schema(), &options.keep)?;
    let mut writer = BatchWriter::create(
        output,
        FileFormat::from_path(output)?,
        scorer.output_schema(),
    )?;
    let (read_tx, read_rx) = sync_channel::<Result<RecordBatch>>(1);
    let (write_tx, write_rx) = sync_channel::<RecordBatch>(1);
    let (rows, chunks) = std::thread::scope(|scope| -> Result<(usize, usize)> {
        scope.spawn(move || {
            for batch in reader {
                if read_tx.send(batch).is_err() {
                    return;
                }
            }
        });
        let writing = scope.spawn(move || -> Result<BatchWriter> {
            for batch in write_rx {
                writer.write(&batch)?;
            }
            Ok(writer)
        });
        let (mut rows, mut chunks) = (0, 0);
        let scoring = (|| -> Result<()> {
            for batch in read_rx {
                let scored = scorer.score(&batch?)?;
                rows += scored.num_rows();
                chunks += 1;
                progress.advance(scored.num_rows());
                if write_tx.send(scored).is_err() {
                    break; // The writer failed; its error is reported below.
                }
            }
            Ok(())
        })();
        drop(write_tx);
        let writer = writing
            .join()
            .map_err(|_| Error::Internal("the writer thread panicked".into()))?;
        scoring?;
        writer?.finish()?;
        Ok((rows, chunks))
    })?;
    progress.finish();
    Ok(ScoreSummary {
        rows,
        chunks,
        duration: start.elapsed(),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Peak resident set size of this process (`VmHWM` on Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

//! What a step lets the stream it reads skip: the columns it does not read
//! ([`Step::columns_read`]) and the row groups in which no row satisfies
//! its row condition ([`Step::row_condition`], a filter's predicate).
//!
//! Both apply to the consumer's own scan of its input stream, never to the
//! stream its producer output: a `read` step's output stays the whole file
//! (its cache identity is the file, recorded as a reference to it), each
//! consumer scans it again, and a filter that skips row groups still filters
//! the rows it gets, so its output, and so its cache key and stored object,
//! are the same with and without pruning. Nothing cached is ever a pruned
//! read. A read reused from an earlier run is scanned from its file again
//! (`Workspace::source_file`), so it is pruned and narrowed the same way.

use crate::backend::Notes;
use crate::data::Stream;
use crate::error::Result;
use crate::pipeline::Step;
use crate::pipeline::pruning::row_group_predicate;

/// `stream`, as `step` needs to read it: pruned to the row groups its row
/// condition may hold in (noted on the step: "pruned 7 of 10 row groups by
/// statistics"), then narrowed to the columns it reads, where the source
/// can (Parquet).
///
/// # Errors
/// As [`Stream::scan`]: the source's footer is read again.
pub(super) fn pushed_down(step: &dyn Step, stream: &Stream, notes: &Notes) -> Result<Stream> {
    let mut stream = stream.clone();
    if let Some(predicate) = step
        .row_condition()
        .and_then(|condition| row_group_predicate(&condition, stream.schema()))
        && let Some(pruned) = stream.pruned(&predicate)?
    {
        notes.add(format!(
            "pruned {} of {} row groups by statistics",
            pruned.skipped, pruned.total
        ));
        stream = pruned.stream;
    }
    if let Some(columns) = step.columns_read() {
        let needed: Vec<bool> = stream
            .schema()
            .fields()
            .iter()
            .map(|f| columns.contains(f.name()))
            .collect();
        stream = stream.reading_only(&needed)?;
    }
    Ok(stream)
}

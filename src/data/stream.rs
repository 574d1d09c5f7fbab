//! [`Stream`]: a table read batch by batch, as often as needed.
//!
//! A step that reads a file produces a stream instead of a table: each
//! consumer scans it, and only the batches in flight are in memory. Steps
//! that can work batch by batch (fits that merge partial statistics, file
//! writers, fused kernels) take it as it comes; every other step gets it
//! collected into a [`Table`]. A source can let one consumer's scan skip
//! what it does not need: columns it does not read
//! ([`Stream::reading_only`]) and row groups that its condition rules out
//! by their statistics ([`Stream::pruned`]).

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::files::RowGroupPredicate;
use super::table::{Table, batch_data_size};
use crate::error::Result;

/// The batches of one scan.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

type Scan = dyn Fn() -> Result<Batches> + Send + Sync;
type Narrow = dyn Fn(&[bool]) -> Result<Stream> + Send + Sync;
type Prune = dyn Fn(&RowGroupPredicate) -> Result<Pruned> + Send + Sync;

/// A stream that skips the row groups a [`RowGroupPredicate`] refutes, and
/// how many it skips (see [`Stream::pruned`]).
#[derive(Clone, Debug)]
pub struct Pruned {
    /// The rows of the row groups kept, unfiltered.
    pub stream: Stream,
    /// Row groups skipped.
    pub skipped: usize,
    /// Row groups in the source.
    pub total: usize,
}

/// A re-scannable sequence of record batches of one schema.
#[derive(Clone)]
pub struct Stream {
    schema: SchemaRef,
    /// Rows and bytes of a scan, when known before scanning.
    size: Option<(usize, usize)>,
    scan: Arc<Scan>,
    /// For a source that can skip columns: the stream reading only some.
    narrow: Option<Arc<Narrow>>,
    /// For a source with row-group statistics: the stream skipping groups.
    prune: Option<Arc<Prune>>,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("schema", &self.schema)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// A stream whose every scan calls `scan`; `size` is the rows of a scan
    /// and their bytes as [`Table::data_size`] counts them, when known.
    pub fn new(
        schema: SchemaRef,
        size: Option<(usize, usize)>,
        scan: impl Fn() -> Result<Batches> + Send + Sync + 'static,
    ) -> Self {
        Stream {
            schema,
            size,
            scan: Arc::new(scan),
            narrow: None,
            prune: None,
        }
    }

    /// This stream, able to skip the columns a consumer does not read:
    /// `narrow` gives the stream of the same schema whose unread columns
    /// (those not marked) may hold anything (see [`Stream::reading_only`]).
    pub fn narrowed_by(
        mut self,
        narrow: impl Fn(&[bool]) -> Result<Stream> + Send + Sync + 'static,
    ) -> Self {
        self.narrow = Some(Arc::new(narrow));
        self
    }

    /// The stream for a consumer that reads only the columns marked in
    /// `needed` (by index in the schema): a source that can skip columns
    /// (Parquet) decodes only those and gives every other one as nulls,
    /// its field made nullable; any other stream is returned as it is.
    ///
    /// # Errors
    /// As [`Stream::scan`].
    pub fn reading_only(&self, needed: &[bool]) -> Result<Stream> {
        match &self.narrow {
            Some(narrow)
                if needed.len() == self.schema.fields().len() && needed.contains(&false) =>
            {
                narrow(needed)
            }
            _ => Ok(self.clone()),
        }
    }

    /// This stream, able to skip row groups by their statistics: `prune`
    /// gives the stream of the row groups a predicate does not refute (see
    /// [`Stream::pruned`]).
    pub fn pruned_by(
        mut self,
        prune: impl Fn(&RowGroupPredicate) -> Result<Pruned> + Send + Sync + 'static,
    ) -> Self {
        self.prune = Some(Arc::new(prune));
        self
    }

    /// For a consumer that needs only the rows that may satisfy
    /// `predicate`: a source whose row groups carry statistics (Parquet)
    /// gives the stream of the row groups they do not refute (whole, not
    /// filtered: the consumer still filters), with the count skipped;
    /// `None` for any other stream.
    ///
    /// # Errors
    /// As [`Stream::scan`] (the source's footer is read again).
    pub fn pruned(&self, predicate: &RowGroupPredicate) -> Result<Option<Pruned>> {
        self.prune
            .as_ref()
            .map(|prune| prune(predicate))
            .transpose()
    }

    /// The batches of a table in memory, as a stream.
    pub fn from_table(table: Table) -> Self {
        let size = Some((table.num_rows(), table.data_size()));
        Stream::new(Arc::clone(table.schema()), size, move || {
            Ok(Box::new(table.batches().to_vec().into_iter().map(Ok)))
        })
    }

    /// The schema of every batch.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows in a scan and their bytes as [`Table::data_size`] counts them,
    /// when known without scanning (a file's footer says).
    pub fn size(&self) -> Option<(usize, usize)> {
        self.size
    }

    /// Read the batches, from the first.
    ///
    /// # Errors
    /// Whatever opening the source fails with (a file gone since it was
    /// opened); each batch may fail too (a damaged file).
    pub fn scan(&self) -> Result<Batches> {
        (self.scan)()
    }

    /// Scan in windows of whole batches holding at least `bytes` bytes of
    /// rows each (the last may hold fewer), for work that parallelizes
    /// better over more rows than one batch has while memory stays bounded.
    ///
    /// # Errors
    /// As [`Stream::scan`].
    pub fn windows(&self, bytes: usize) -> Result<impl Iterator<Item = Result<Vec<RecordBatch>>>> {
        let mut batches = self.scan()?;
        Ok(std::iter::from_fn(move || {
            let mut window = Vec::new();
            let mut held = 0;
            while held < bytes {
                match batches.next() {
                    Some(Ok(batch)) => {
                        held += batch_data_size(&batch);
                        window.push(batch);
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => break,
                }
            }
            (!window.is_empty()).then_some(Ok(window))
        }))
    }

    /// Every batch of one scan, as a table in memory.
    ///
    /// # Errors
    /// As [`Stream::scan`].
    pub fn collect(&self) -> Result<Table> {
        let batches = self.scan()?.collect::<Result<Vec<_>>>()?;
        Table::try_new(Arc::clone(&self.schema), batches)
    }

    /// This stream with `f` applied to each batch, lazily: every scan of the
    /// result scans this stream. Its size is unknown until scanned.
    pub fn map(
        &self,
        schema: SchemaRef,
        f: impl Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync + 'static,
    ) -> Stream {
        let input = self.clone();
        let f = Arc::new(f);
        Stream::new(schema, None, move || {
            let f = Arc::clone(&f);
            Ok(Box::new(input.scan()?.map(move |b| b.and_then(|b| f(b)))))
        })
    }
}

//! [`Data`]: a step's output as the executor holds it.

use arrow_schema::SchemaRef;

use crate::error::Result;
use crate::pipeline::{Stream, Table};

/// A step output: a table in memory, or a stream (a file that each
/// consumer scans again).
#[derive(Clone, Debug)]
pub(crate) enum Data {
    Table(Table),
    Stream(Stream),
}

impl Data {
    /// The schema of every batch.
    pub(crate) fn schema(&self) -> &SchemaRef {
        match self {
            Data::Table(t) => t.schema(),
            Data::Stream(s) => s.schema(),
        }
    }

    /// The rows as a table: a stream is scanned and collected.
    pub(crate) fn table(&self) -> Result<Table> {
        match self {
            Data::Table(t) => Ok(t.clone()),
            Data::Stream(s) => s.collect(),
        }
    }

    /// The rows as a stream (a table's batches in order).
    pub(crate) fn stream(&self) -> Stream {
        match self {
            Data::Table(t) => Stream::from_table(t.clone()),
            Data::Stream(s) => s.clone(),
        }
    }

    /// The table, when in memory.
    pub(crate) fn as_table(&self) -> Option<&Table> {
        match self {
            Data::Table(t) => Some(t),
            Data::Stream(_) => None,
        }
    }

    /// Rows and their bytes ([`Table::data_size`]); of a stream, as its
    /// source's footer tells them.
    pub(crate) fn size(&self) -> (usize, usize) {
        match self {
            Data::Table(t) => (t.num_rows(), t.data_size()),
            Data::Stream(s) => s.size().unwrap_or_default(),
        }
    }
}

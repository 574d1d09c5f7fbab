//! [`Table`]: the data that flows between steps.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_data::ArrayData;
use arrow_schema::{Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::ir::DType;

/// A table: one schema, rows in a list of Arrow record batches (chunks).
///
/// Steps process tables chunk by chunk, so large inputs never need to be one
/// contiguous allocation.
#[derive(Clone, Debug)]
pub struct Table {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Table {
    /// A table from batches that all have `schema`.
    ///
    /// # Errors
    /// [`Error::Internal`] when a batch has another schema.
    pub fn try_new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        for b in &batches {
            if b.schema().fields() != schema.fields() {
                return Err(Error::Internal(format!(
                    "batch schema {:?} differs from table schema {:?}",
                    b.schema(),
                    schema
                )));
            }
        }
        Ok(Table { schema, batches })
    }

    /// A table of one batch.
    pub fn from_batch(batch: RecordBatch) -> Self {
        Table {
            schema: batch.schema(),
            batches: vec![batch],
        }
    }

    /// An empty table with a schema.
    pub fn empty(schema: SchemaRef) -> Self {
        Table {
            schema,
            batches: Vec::new(),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The chunks.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Total number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Bytes of memory the table keeps alive: every allocation its buffers
    /// point into, counted once however many batches or columns share it
    /// (batches sliced from one decoded chunk, or mapped from one file; of a
    /// mapping, the bytes its buffers reach).
    pub fn memory_size(&self) -> usize {
        fn visit(data: &ArrayData, seen: &mut HashMap<*const u8, usize>) {
            let buffers = data
                .buffers()
                .iter()
                .chain(data.nulls().map(|n| n.buffer()));
            for b in buffers {
                // A mapped file's buffers report no capacity: count the bytes
                // they reach.
                let size = seen.entry(b.data_ptr().as_ptr().cast_const()).or_default();
                *size = (*size).max(b.capacity()).max(b.len());
            }
            for child in data.child_data() {
                visit(child, seen);
            }
        }
        let mut seen = HashMap::new();
        for batch in &self.batches {
            for column in batch.columns() {
                visit(&column.to_data(), &mut seen);
            }
        }
        seen.values().sum()
    }

    /// Bytes of the table's rows: values, offsets and validity of the rows
    /// it holds, as its own buffers would hold them (what run tables report
    /// per output, whatever buffers the rows share with other tables).
    pub fn data_size(&self) -> usize {
        self.batches.iter().map(batch_data_size).sum()
    }

    /// The chunks of one column.
    ///
    /// # Errors
    /// [`Error::Schema`] naming `step` and the column when it does not exist.
    pub fn column(&self, step: &str, name: &str) -> Result<Vec<ArrayRef>> {
        let index = column_index(step, &self.schema, name)?;
        Ok(self
            .batches
            .iter()
            .map(|b| Arc::clone(b.column(index)))
            .collect())
    }

    /// All rows as one batch (copies when there are several chunks).
    pub fn concat(&self) -> Result<RecordBatch> {
        Ok(arrow_select::concat::concat_batches(
            &self.schema,
            &self.batches,
        )?)
    }
}

/// Bytes of a batch's rows, as [`Table::data_size`] counts them.
pub(crate) fn batch_data_size(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// Index of `name` in `schema`, or an error naming the step, the column and the
/// columns that do exist.
pub(crate) fn column_index(step: &str, schema: &Schema, name: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::Schema {
            step: step.to_string(),
            column: name.to_string(),
            message: format!("no such column; the input has: {}", names.join(", ")),
        }
    })
}

/// The dtype of a column, or an error naming the step and column.
pub(crate) fn column_dtype(step: &str, schema: &Schema, name: &str) -> Result<DType> {
    let field = schema.field(column_index(step, schema, name)?);
    DType::from_arrow(field.data_type()).ok_or_else(|| Error::Schema {
        step: step.to_string(),
        column: name.to_string(),
        message: format!(
            "type {} is not supported (use bool, i32, i64, f32, f64 or utf8)",
            field.data_type()
        ),
    })
}

/// Require a numeric column.
pub(crate) fn numeric_column(step: &str, schema: &Schema, name: &str) -> Result<DType> {
    let dtype = column_dtype(step, schema, name)?;
    if dtype.is_numeric() {
        Ok(dtype)
    } else {
        Err(Error::Schema {
            step: step.to_string(),
            column: name.to_string(),
            message: format!("needs a numeric column, found {dtype}; cast it or encode it first"),
        })
    }
}

/// Convert Arrow types fuseflow does not compute on directly to ones it does
/// (Int8/16 and UInt8/16 to i32, UInt32 to i64, f16 to f32, large and view
/// strings and string dictionaries to utf8). Other types pass through and are
/// rejected by the steps that read them.
pub(crate) fn normalize_batch(batch: RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let needs = schema.fields().iter().any(|f| {
        DType::from_arrow(f.data_type()).is_none()
            && DType::normalized_from_arrow(f.data_type()).is_some()
    });
    if !needs {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match (
            DType::from_arrow(field.data_type()),
            DType::normalized_from_arrow(field.data_type()),
        ) {
            (None, Some(target)) => {
                let cast = arrow_cast::cast(column, &target.to_arrow())?;
                fields.push(Field::new(
                    field.name(),
                    target.to_arrow(),
                    field.is_nullable(),
                ));
                columns.push(cast);
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(column));
            }
        }
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The schema [`normalize_batch`] produces.
pub(crate) fn normalize_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            match (
                DType::from_arrow(f.data_type()),
                DType::normalized_from_arrow(f.data_type()),
            ) {
                (None, Some(target)) => Field::new(f.name(), target.to_arrow(), f.is_nullable()),
                _ => f.as_ref().clone(),
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

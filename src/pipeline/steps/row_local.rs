//! Helpers for row-local steps: their expressions as one kernel over the
//! data input, replacing or appending columns and passing the rest through.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};

use crate::backend::{Kernel, Notes};
use crate::data::Table;
use crate::data::lineage;
use crate::error::{Error, Result};
use crate::ir::{Expr, Projection};
use crate::pipeline::step::{RowLocal, StepContext};

/// Re-raise an expression type error as a parameter error of `step`.
pub(super) fn in_step(step: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Type { expr, message } => Error::InvalidParameter {
            step: step.to_string(),
            message: format!("expression `{expr}`: {message}"),
        },
        other => other.in_step(step),
    }
}

/// Schema after replacing or appending `exprs` (replaced columns keep their
/// position), with each computed column's lineage, and the projection computing them.
pub(crate) fn with_columns_schema(
    step: &str,
    input: &SchemaRef,
    exprs: &[(String, Expr)],
) -> Result<(SchemaRef, Projection)> {
    let projection = Projection::try_new(Arc::clone(input), exprs).map_err(in_step(step))?;
    let computed = projection.output_schema();
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (field, (_, expr)) in computed.fields().iter().zip(exprs) {
        let field = lineage::annotate(field.as_ref().clone(), &lineage::compose(expr, input)?);
        match fields.iter().position(|f| f.name() == field.name()) {
            Some(i) => fields[i] = field,
            None => fields.push(field),
        }
    }
    Ok((
        Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())),
        projection,
    ))
}

/// Evaluate `exprs` over every chunk with one fused kernel and replace or append
/// the resulting columns; untouched columns are passed through without copying.
pub(super) fn with_columns(
    ctx: StepContext,
    input: &Table,
    exprs: &[(String, Expr)],
) -> Result<Table> {
    let (schema, projection) = with_columns_schema(ctx.name, input.schema(), exprs)?;
    apply_kernel(ctx, input, &schema, &ctx.device.kernel(projection))
}

/// Run a row-local step on its own: its expressions as one kernel over its
/// data input (`inputs[0]`), the other inputs being its side tables.
pub(super) fn run_row_local(
    step: &dyn RowLocal,
    ctx: StepContext,
    inputs: &[Table],
) -> Result<Vec<Table>> {
    let exprs = step.row_exprs(ctx, inputs[0].schema(), &inputs[1..])?;
    Ok(vec![with_columns(ctx, &inputs[0], &exprs)?])
}

/// `input` with the columns `kernel` computes replaced or appended, as laid
/// out in `schema`; the other columns pass through without copying.
pub(crate) fn apply_kernel(
    ctx: StepContext,
    input: &Table,
    schema: &SchemaRef,
    kernel: &Kernel,
) -> Result<Table> {
    let batches = input
        .batches()
        .iter()
        .map(|batch| apply_batch(ctx.name, ctx.notes, batch, schema, kernel))
        .collect::<Result<Vec<_>>>()?;
    Table::try_new(Arc::clone(schema), batches)
}

/// One batch of [`apply_kernel`], for `step`, with fallback notes to `notes`.
pub(crate) fn apply_batch(
    step: &str,
    notes: &Notes,
    batch: &RecordBatch,
    schema: &SchemaRef,
    kernel: &Kernel,
) -> Result<RecordBatch> {
    let computed = kernel.evaluate(batch, notes).map_err(in_step(step))?;
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            computed
                .column_by_name(f.name())
                .or_else(|| batch.column_by_name(f.name()))
                .cloned()
                .expect("column planned")
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

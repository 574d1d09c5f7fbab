//! Row-local steps: [`RowLocalStep`], from which a step that is nothing but
//! expressions over the columns of each row gets its whole [`Step`] impl, and
//! the helpers that run such expressions as one kernel over the data input,
//! replacing or appending columns and passing the rest through.

use std::fmt;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};

use crate::backend::{Kernel, Notes};
use crate::data::Table;
use crate::data::lineage;
use crate::error::{Error, Result};
use crate::ir::{Expr, Projection};
use crate::pipeline::step::{RowLocal, Step, StepContext};

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
fn run_row_local(step: &dyn RowLocal, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
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

/// Columns computed by expressions: `(name, expression)` pairs, in order.
pub(crate) type ColumnExprs = Vec<(String, Expr)>;

/// A step that only computes columns from the same row of its `data` input
/// (`derive`, `scale`, `fill_null`): its [`Step`] impl follows from its
/// expressions. It has one output, `out`, which is `data` with the
/// expressions evaluated; it computes on the step's device, and the planner
/// may fuse it with its row-local neighbours.
pub(crate) trait RowLocalStep: RowLocal + fmt::Debug + Send + Sync {
    /// The step kind ([`Step::kind`]).
    const KIND: &'static str;

    /// The input ports, `data` first, then the side tables ([`Step::inputs`]).
    fn inputs(&self) -> &[&str] {
        &["data"]
    }

    /// The parameters as one line of text ([`Step::params`]).
    fn params(&self) -> String;

    /// The expressions as planned from the input schemas alone, before any
    /// side table has data, once those schemas are checked.
    ///
    /// # Errors
    /// [`Error::Schema`] or [`Error::InvalidParameter`] naming the step and
    /// what is wrong with its inputs.
    fn planned_exprs(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<(String, Expr)>>;
}

impl<T: RowLocalStep> Step for T {
    fn kind(&self) -> &str {
        T::KIND
    }
    fn inputs(&self) -> &[&str] {
        RowLocalStep::inputs(self)
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        RowLocalStep::params(self)
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        let exprs = self.planned_exprs(ctx, inputs)?;
        Ok(vec![with_columns_schema(ctx.name, &inputs[0], &exprs)?.0])
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn row_local(&self) -> Option<&dyn RowLocal> {
        Some(self)
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        run_row_local(self, ctx, inputs)
    }
}

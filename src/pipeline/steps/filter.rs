//! The `filter` step.
//!
//! Its predicate is also its [`Step::row_condition`]: reading a Parquet
//! file, the scan skips the row groups whose statistics prove that no row
//! satisfies it (see [`crate::pipeline::pruning`]), and the step filters the
//! rest as always, so pruning changes what is decoded, never the output.

use std::sync::Arc;

use arrow_array::{Array, cast::AsArray};
use arrow_schema::{DataType, SchemaRef};

use super::ports::step_io;
use super::row_local::in_step;
use crate::backend::cpu::CpuKernel;
use crate::data::Table;
use crate::error::{Error, Result, ensure};
use crate::ir::{Expr, Projection};
use crate::pipeline::step::{Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Keep the rows where a boolean expression is true; null counts as false
/// (`kind = "filter"`).
#[derive(Debug, Clone)]
pub struct Filter {
    predicate: Expr,
}

impl Filter {
    /// Keep rows where `predicate` holds.
    pub fn new(predicate: Expr) -> Self {
        Filter { predicate }
    }

    fn kernel(&self, step: &str, schema: &SchemaRef) -> Result<CpuKernel> {
        let projection = Projection::try_new(
            Arc::clone(schema),
            &[("keep".into(), self.predicate.clone())],
        )
        .map_err(in_step(step))?;
        let dtype = projection.output_schema().field(0).data_type().clone();
        ensure!(
            dtype == DataType::Boolean,
            Error::InvalidParameter {
                step: step.into(),
                message: format!(
                    "the filter predicate `{}` is {dtype}, it must be boolean",
                    self.predicate
                )
            }
        );
        Ok(CpuKernel::compile(projection))
    }
}

impl Step for Filter {
    step_io!("filter", ["data"], ["out"]);
    fn params(&self) -> String {
        format!("predicate={}", self.predicate)
    }
    fn row_condition(&self) -> Option<Expr> {
        Some(self.predicate.clone())
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        self.kernel(ctx.name, &inputs[0])?;
        Ok(vec![Arc::clone(&inputs[0])])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let kernel = self.kernel(ctx.name, inputs[0].schema())?;
        let batches = inputs[0]
            .batches()
            .iter()
            .map(|b| {
                let keep = kernel.evaluate(b)?;
                let keep = keep.column(0).as_boolean();
                // A null predicate drops the row.
                let keep = if keep.null_count() > 0 {
                    arrow_select::filter::prep_null_mask_filter(keep)
                } else {
                    keep.clone()
                };
                Ok(arrow_select::filter::filter_record_batch(b, &keep)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![Table::try_new(
            Arc::clone(inputs[0].schema()),
            batches,
        )?])
    }
}

impl FromSpec for Filter {
    /// `predicate`: a boolean expression.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let text = spec.string("predicate")?;
        Ok(Filter::new(spec.expr("predicate", &text)?))
    }
}

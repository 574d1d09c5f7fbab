//! The `derive` step.

use arrow_schema::SchemaRef;

use super::ports::step_io;
use super::row_local::{run_row_local, with_columns_schema};
use crate::data::Table;
use crate::error::Result;
use crate::ir::Expr;
use crate::pipeline::step::{RowLocal, Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Add or replace columns computed by expressions, fused into one pass
/// (`kind = "derive"`).
#[derive(Debug, Clone)]
pub struct Derive {
    columns: Vec<(String, Expr)>,
}

impl Derive {
    /// Compute each `(name, expr)`; an existing column of that name is replaced in place.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = (S, Expr)>) -> Self {
        Derive {
            columns: columns.into_iter().map(|(n, e)| (n.into(), e)).collect(),
        }
    }
}

impl FromSpec for Derive {
    /// `columns = { name = "expression", ... }`.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let columns = spec.string_map("columns")?;
        let exprs = columns
            .into_iter()
            .map(|(name, text)| {
                let expr = spec.expr(&format!("columns.{name}"), &text)?;
                Ok((name, expr))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Derive::new(exprs))
    }
}

impl Step for Derive {
    step_io!("derive", ["data"], ["out"]);
    fn params(&self) -> String {
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|(n, e)| format!("{n}={e}"))
            .collect();
        parts.join(", ")
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![
            with_columns_schema(ctx.name, &inputs[0], &self.columns)?.0,
        ])
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

impl RowLocal for Derive {
    fn row_exprs(&self, _: StepContext, _: &SchemaRef, _: &[Table]) -> Result<Vec<(String, Expr)>> {
        Ok(self.columns.clone())
    }
}

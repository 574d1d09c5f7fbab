//! The `derive` step.

use arrow_schema::SchemaRef;

use super::row_local::{ColumnExprs, RowLocalStep};
use crate::data::Table;
use crate::error::Result;
use crate::ir::Expr;
use crate::pipeline::step::{RowLocal, StepContext};
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

impl RowLocalStep for Derive {
    const KIND: &'static str = "derive";
    fn params(&self) -> String {
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|(n, e)| format!("{n}={e}"))
            .collect();
        parts.join(", ")
    }
    fn planned_exprs(&self, _: StepContext, _: &[SchemaRef]) -> Result<ColumnExprs> {
        Ok(self.columns.clone())
    }
}

impl RowLocal for Derive {
    fn row_exprs(&self, _: StepContext, _: &SchemaRef, _: &[Table]) -> Result<Vec<(String, Expr)>> {
        Ok(self.columns.clone())
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

//! The `select` step.

use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};

use super::params::names;
use super::ports::step_io;
use crate::data::{Table, column_index};
use crate::error::Result;
use crate::ir::Expr;
use crate::pipeline::step::{RowLocal, Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Keep only the named columns, in the given order (`kind = "select"`).
#[derive(Debug, Clone)]
pub struct Select {
    columns: Vec<String>,
}

impl Select {
    /// Keep `columns`.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Select {
            columns: names(columns),
        }
    }

    fn indices(&self, step: &str, schema: &Schema) -> Result<Vec<usize>> {
        self.columns
            .iter()
            .map(|c| column_index(step, schema, c))
            .collect()
    }
}

impl Step for Select {
    step_io!("select", ["data"], ["out"]);
    fn params(&self) -> String {
        format!("columns=[{}]", self.columns.join(", "))
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![Arc::new(
            inputs[0].project(&self.indices(ctx.name, &inputs[0])?)?,
        )])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let indices = self.indices(ctx.name, inputs[0].schema())?;
        let schema = Arc::new(inputs[0].schema().project(&indices)?);
        let batches = inputs[0]
            .batches()
            .iter()
            .map(|b| b.project(&indices))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(vec![Table::try_new(schema, batches)?])
    }
    /// A projection fuses with the row-local steps before it, so that their
    /// kernel computes and writes only the columns it keeps.
    fn row_local(&self) -> Option<&dyn RowLocal> {
        Some(self)
    }
}

impl RowLocal for Select {
    fn row_exprs(&self, _: StepContext, _: &SchemaRef, _: &[Table]) -> Result<Vec<(String, Expr)>> {
        Ok(Vec::new())
    }
    fn keeps(&self) -> Option<&[String]> {
        Some(&self.columns)
    }
}

impl FromSpec for Select {
    /// `columns`: a list of names.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        Ok(Select::new(spec.strings("columns")?))
    }
}

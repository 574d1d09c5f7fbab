//! The `rename` step.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};

use super::ports::step_io;
use crate::data::lineage;
use crate::data::{Table, column_index};
use crate::error::{Error, Result, ensure};
use crate::pipeline::step::{Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Rename columns (`kind = "rename"`).
#[derive(Debug, Clone)]
pub struct Rename {
    mapping: Vec<(String, String)>,
}

impl Rename {
    /// Rename each `(from, to)`.
    pub fn new<S: Into<String>>(mapping: impl IntoIterator<Item = (S, S)>) -> Self {
        Rename {
            mapping: mapping
                .into_iter()
                .map(|(a, b)| (a.into(), b.into()))
                .collect(),
        }
    }

    fn schema(&self, step: &str, input: &Schema) -> Result<SchemaRef> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (from, to) in &self.mapping {
            let i = column_index(step, input, from)?;
            // The renamed column still computes from the same sources.
            let lineage = lineage::of_field(&fields[i])?;
            fields[i] = lineage::annotate(fields[i].clone().with_name(to), &lineage);
        }
        let mut seen = BTreeSet::new();
        for f in &fields {
            ensure!(
                seen.insert(f.name().clone()),
                Error::Schema {
                    step: step.into(),
                    column: f.name().clone(),
                    message: "two columns would have this name after renaming".into()
                }
            );
        }
        Ok(Arc::new(Schema::new_with_metadata(
            fields,
            input.metadata().clone(),
        )))
    }
}

impl Step for Rename {
    step_io!("rename", ["data"], ["out"]);
    fn params(&self) -> String {
        let pairs: Vec<String> = self
            .mapping
            .iter()
            .map(|(a, b)| format!("{a}->{b}"))
            .collect();
        pairs.join(", ")
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![self.schema(ctx.name, &inputs[0])?])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let schema = self.schema(ctx.name, inputs[0].schema())?;
        let batches = inputs[0]
            .batches()
            .iter()
            .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(vec![Table::try_new(schema, batches)?])
    }
}

impl FromSpec for Rename {
    /// `columns = { old = "new", ... }`.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        Ok(Rename::new(spec.string_map("columns")?))
    }
}

//! The `score` step.

use std::sync::Arc;

use arrow_schema::SchemaRef;

use super::params::names;
use super::ports::step_io;
use crate::data::{Table, column_index};
use crate::error::{Error, Result};
use crate::ml::model::Model;
use crate::ml::score::Scorer;
use crate::pipeline::step::{OpKind, Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Apply a trained model to raw data (`kind = "score"`): inputs `model` and
/// `data`, output the `keep` columns followed by the score columns.
#[derive(Debug, Clone)]
pub struct Score {
    keep: Vec<String>,
}

impl Score {
    /// Score, passing the `keep` columns (e.g. ids, the label) through.
    pub fn new<S: Into<String>>(keep: impl IntoIterator<Item = S>) -> Self {
        Score { keep: names(keep) }
    }
}

/// The model held in a model table.
pub fn model_from_table(step: &str, table: &Table) -> Result<Model> {
    let batch = table
        .batches()
        .first()
        .ok_or_else(|| Error::InvalidParameter {
            step: step.into(),
            message: "the model input is empty".into(),
        })?;
    Model::from_batch(batch).map_err(|e| e.in_step(step))
}

impl Step for Score {
    fn op_kind(&self) -> OpKind {
        OpKind::Model
    }
    step_io!("score", ["model", "data"], ["out"]);
    fn params(&self) -> String {
        format!("keep=[{}]", self.keep.join(", "))
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        for k in &self.keep {
            column_index(ctx.name, &inputs[1], k)?;
        }
        // The score columns depend on the trained model (its classes).
        Ok(vec![Arc::clone(&inputs[1])])
    }
    fn schema_depends_on_data(&self) -> bool {
        true
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let model = model_from_table(ctx.name, &inputs[0])?;
        let scorer =
            Scorer::on_device(ctx.name, model, inputs[1].schema(), &self.keep, ctx.device)?;
        let batches = inputs[1]
            .batches()
            .iter()
            .map(|b| scorer.score(b))
            .collect::<Result<Vec<_>>>()?;
        scorer
            .take_notes()
            .into_iter()
            .for_each(|n| ctx.notes.add(n));
        Ok(vec![Table::try_new(
            Arc::clone(scorer.output_schema()),
            batches,
        )?])
    }
}

impl FromSpec for Score {
    /// `keep`: columns copied through.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        Ok(Score::new(spec.opt_strings("keep")?))
    }
}

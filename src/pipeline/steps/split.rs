//! The `split` step.

use std::sync::Arc;

use arrow_schema::SchemaRef;

use super::ports::step_io;
use crate::data::Table;
use crate::data::splitmix64;
use crate::error::{Error, Result, ensure};
use crate::pipeline::step::{Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Split rows into `train` and `test` (`kind = "split"`).
///
/// Each row goes to `test` with probability `test_fraction`, decided by a hash
/// of `(seed, row position)` alone, so the split is the same on every run and
/// for any number of threads or chunk sizes, and row order is preserved.
#[derive(Debug, Clone)]
pub struct Split {
    test_fraction: f64,
    seed: u64,
}

impl Split {
    /// Split with `test_fraction` of the rows in `test`.
    pub fn new(test_fraction: f64, seed: u64) -> Self {
        Split {
            test_fraction,
            seed,
        }
    }

    /// Whether the row at `position` goes to the test set.
    pub fn is_test(&self, position: u64) -> bool {
        let threshold = (self.test_fraction.clamp(0.0, 1.0) * 2f64.powi(64)) as u128;
        u128::from(splitmix64(self.seed ^ splitmix64(position))) < threshold
    }
}

impl Step for Split {
    step_io!("split", ["data"], ["train", "test"]);
    fn params(&self) -> String {
        format!("test_fraction={}, seed={}", self.test_fraction, self.seed)
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        ensure!(
            (0.0..=1.0).contains(&self.test_fraction),
            Error::InvalidParameter {
                step: ctx.name.into(),
                message: format!(
                    "test_fraction must be between 0 and 1, got {}",
                    self.test_fraction
                )
            }
        );
        Ok(vec![Arc::clone(&inputs[0]), Arc::clone(&inputs[0])])
    }
    fn run(&self, _: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let mut offset = 0u64;
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for batch in inputs[0].batches() {
            let mask: arrow_array::BooleanArray = (0..batch.num_rows() as u64)
                .map(|i| Some(self.is_test(offset + i)))
                .collect();
            offset += batch.num_rows() as u64;
            test.push(arrow_select::filter::filter_record_batch(batch, &mask)?);
            train.push(arrow_select::filter::filter_record_batch(
                batch,
                &arrow_arith::boolean::not(&mask)?,
            )?);
        }
        let schema = Arc::clone(inputs[0].schema());
        Ok(vec![
            Table::try_new(Arc::clone(&schema), train)?,
            Table::try_new(schema, test)?,
        ])
    }
}

impl FromSpec for Split {
    /// `test_fraction` (default 0.2); `seed` (default 0).
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let fraction = spec.number("test_fraction", Some(0.2))?;
        let seed = spec.integer("seed", 0)?;
        Ok(Split::new(fraction, seed as u64))
    }
}

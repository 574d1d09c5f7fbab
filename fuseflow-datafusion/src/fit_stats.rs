//! `fit_stats` as a DataFusion aggregate whose partial state is fuseflow's
//! own, merged as fuseflow merges blocks.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, StructArray, UInt64Array};
use arrow_schema::{DataType, Field, FieldRef, Fields};
use datafusion::common::{ScalarValue, downcast_value, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use fuseflow::backend::{ColumnStats, column_stats_onto};
use fuseflow::ir::DType;

use crate::external;

/// The statistics of one numeric column, as `fit_stats` fits them: a
/// struct of `count` (non-null values, NaN included), `nulls`, `nans`,
/// `mean` and `std` (population, of the non-null non-NaN values), `m2`,
/// `min` and `max`. Its partial state is those numbers before the merge,
/// so partitions aggregate in parallel and merge by Chan's update.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FitStats {
    signature: Signature,
}

/// The state's fields and the result's, in order (`std` only in the result).
const COUNTS: [&str; 3] = ["count", "nulls", "nans"];
const MOMENTS: [&str; 4] = ["mean", "m2", "min", "max"];

impl FitStats {
    /// The aggregate, to call on a column (`FitStats::udaf().call(vec![col("x")])`).
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::new_from_impl(FitStats {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    /// The result's fields.
    fn result_fields() -> Fields {
        let counts = COUNTS.map(|n| Field::new(n, DataType::UInt64, false));
        let moments =
            ["mean", "std", "m2", "min", "max"].map(|n| Field::new(n, DataType::Float64, false));
        counts.into_iter().chain(moments).collect()
    }
}

impl AggregateUDFImpl for FitStats {
    fn name(&self) -> &str {
        "fit_stats"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if DType::from_arrow(t).is_some_and(|d| d.is_numeric()) => {
                Ok(DataType::Struct(Self::result_fields()))
            }
            [t] => plan_err!("fit_stats needs a numeric column, not {t}"),
            _ => plan_err!("fit_stats takes one column"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let counts = COUNTS.map(|n| (n, DataType::UInt64));
        let moments = MOMENTS.map(|n| (n, DataType::Float64));
        Ok((counts.into_iter().chain(moments))
            .map(|(n, t)| Arc::new(Field::new(format_state_name(args.name, n), t, true)))
            .collect())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(StatsAccumulator(ColumnStats::EMPTY)))
    }
}

/// The statistics of what it has seen so far.
#[derive(Debug)]
struct StatsAccumulator(ColumnStats);

impl Accumulator for StatsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let column = [("fit_stats".to_string(), vec![values[0].clone()])];
        column_stats_onto(std::slice::from_mut(&mut self.0), &column).map_err(external)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let counts: Vec<&UInt64Array> = (states[..3].iter())
            .map(|a| Ok(downcast_value!(a, UInt64Array)))
            .collect::<Result<_>>()?;
        let moments: Vec<&Float64Array> = (states[3..].iter())
            .map(|a| Ok(downcast_value!(a, Float64Array)))
            .collect::<Result<_>>()?;
        for i in 0..states[0].len() {
            if counts[0].is_null(i) {
                continue;
            }
            let partial = ColumnStats {
                count: counts[0].value(i),
                nulls: counts[1].value(i),
                nans: counts[2].value(i),
                mean: moments[0].value(i),
                m2: moments[1].value(i),
                min: moments[2].value(i),
                max: moments[3].value(i),
            };
            self.0 = self.0.merge(partial);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let s = self.0;
        Ok(vec![
            ScalarValue::UInt64(Some(s.count)),
            ScalarValue::UInt64(Some(s.nulls)),
            ScalarValue::UInt64(Some(s.nans)),
            ScalarValue::Float64(Some(s.mean)),
            ScalarValue::Float64(Some(s.m2)),
            ScalarValue::Float64(Some(s.min)),
            ScalarValue::Float64(Some(s.max)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let s = self.0;
        let counts =
            [s.count, s.nulls, s.nans].map(|v| Arc::new(UInt64Array::from(vec![v])) as ArrayRef);
        let moments = [s.mean, s.std(), s.m2, s.min, s.max]
            .map(|v| Arc::new(Float64Array::from(vec![v])) as ArrayRef);
        let columns: Vec<ArrayRef> = counts.into_iter().chain(moments).collect();
        let row = StructArray::try_new(FitStats::result_fields(), columns, None)?;
        Ok(ScalarValue::Struct(Arc::new(row)))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

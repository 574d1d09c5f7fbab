//! Reading the small tables that fit steps output: which columns they
//! cover, and one statistic per column.

use std::collections::HashMap;

use arrow_array::{Array, cast::AsArray};
use arrow_schema::Schema;

use crate::data::{Table, column_index};
use crate::error::{Error, Result};

/// Schema metadata key listing the columns a statistics table covers.
pub(super) const STATS_COLUMNS_KEY: &str = "fuseflow.stats.columns";

/// The columns a statistics table covers, from its schema.
pub(super) fn stats_columns(step: &str, stats: &Schema) -> Result<Vec<String>> {
    let listed =
        stats
            .metadata()
            .get(STATS_COLUMNS_KEY)
            .ok_or_else(|| Error::InvalidParameter {
                step: step.into(),
                message: "the 'stats' input is not the output of a fit_stats step".into(),
            })?;
    Ok(listed.split('\u{1f}').map(str::to_string).collect())
}

/// One fitted statistic per column, read from a statistics table.
pub(super) fn fitted(
    step: &str,
    stats: &Table,
    statistic: &str,
) -> Result<HashMap<String, Option<f64>>> {
    let batch = stats.concat()?;
    let names = batch
        .column(column_index(step, &batch.schema(), "column")?)
        .as_string::<i32>()
        .clone();
    let values = batch
        .column(column_index(step, &batch.schema(), statistic)?)
        .as_primitive::<arrow_array::types::Float64Type>()
        .clone();
    Ok((0..batch.num_rows())
        .map(|i| {
            (
                names.value(i).to_string(),
                values.is_valid(i).then(|| values.value(i)),
            )
        })
        .collect())
}

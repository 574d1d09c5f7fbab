//! The `fit_categories` step.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::{Int32Array, RecordBatch, StringArray, cast::AsArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::fitted::STATS_COLUMNS_KEY;
use super::params::names;
use super::ports::step_io;
use crate::data::{Table, column_dtype};
use crate::error::{Error, Result, ensure};
use crate::ir::DType;
use crate::pipeline::step::{OpKind, Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Fit the categories of string columns (`kind = "fit_categories"`): one row
/// per (column, category), categories sorted, with their index. Nulls are not
/// a category.
#[derive(Debug, Clone)]
pub struct FitCategories {
    columns: Vec<String>,
}

impl FitCategories {
    /// Fit `columns`.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        FitCategories {
            columns: names(columns),
        }
    }

    fn schema(&self) -> SchemaRef {
        let metadata =
            HashMap::from([(STATS_COLUMNS_KEY.to_string(), self.columns.join("\u{1f}"))]);
        Arc::new(Schema::new_with_metadata(
            vec![
                Field::new("column", DataType::Utf8, false),
                Field::new("category", DataType::Utf8, false),
                Field::new("index", DataType::Int32, false),
            ],
            metadata,
        ))
    }
}

impl Step for FitCategories {
    fn op_kind(&self) -> OpKind {
        OpKind::Fit
    }
    step_io!("fit_categories", ["data"], ["categories"]);
    fn params(&self) -> String {
        format!("columns=[{}]", self.columns.join(", "))
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        for c in &self.columns {
            utf8_column(ctx.name, &inputs[0], c, "categories need")?;
        }
        Ok(vec![self.schema()])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let (mut names, mut categories, mut indices) = (Vec::new(), Vec::new(), Vec::new());
        for c in &self.columns {
            let mut set = BTreeSet::new();
            for chunk in inputs[0].column(ctx.name, c)? {
                set.extend(
                    chunk
                        .as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(str::to_string),
                );
            }
            for (i, category) in set.into_iter().enumerate() {
                names.push(c.clone());
                categories.push(category);
                indices.push(i32::try_from(i).map_err(|_| Error::Schema {
                    step: ctx.name.into(),
                    column: c.clone(),
                    message: "more than 2^31 categories".into(),
                })?);
            }
        }
        let batch = RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(categories)),
                Arc::new(Int32Array::from(indices)),
            ],
        )?;
        Ok(vec![Table::from_batch(batch)])
    }
}

impl FromSpec for FitCategories {
    /// `columns`: utf8 columns.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        Ok(FitCategories::new(spec.strings("columns")?))
    }
}

/// Check that `column` of `schema` is utf8, else fail saying what `needs` it
/// (`"encoding needs"`).
pub(super) fn utf8_column(step: &str, schema: &Schema, column: &str, needs: &str) -> Result<()> {
    let dtype = column_dtype(step, schema, column)?;
    ensure!(
        dtype == DType::Utf8,
        Error::Schema {
            step: step.into(),
            column: column.into(),
            message: format!("{needs} a utf8 column, found {dtype}")
        }
    );
    Ok(())
}

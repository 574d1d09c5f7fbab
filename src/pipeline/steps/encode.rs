//! The `encode` step.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float32Array, Int32Array, RecordBatch, cast::AsArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::fit_categories::utf8_column;
use super::fitted::stats_columns;
use super::ports::step_io;
use crate::data::lineage;
use crate::data::{Table, column_index};
use crate::error::{Error, Result, bail};
use crate::ir::{DType, Expr, lit};
use crate::pipeline::step::{Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// How [`Encode`] represents a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeMethod {
    /// Replace the column by its category index (i32).
    Index,
    /// Replace the column by one f32 indicator column per category, named `column=category`.
    OneHot,
}

/// What [`Encode`] does with a category that was not seen when fitting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownCategory {
    /// Index encoding gives null; one-hot gives a row of zeros (as a null input does).
    Ignore,
    /// Fail the step, naming the column and the first unseen value.
    Error,
}

/// Encode string categoricals with fitted categories (`kind = "encode"`).
#[derive(Debug, Clone)]
pub struct Encode {
    method: EncodeMethod,
    unknown: UnknownCategory,
}

impl Encode {
    /// Encode with `method`; unseen categories are handled per `unknown`.
    pub fn new(method: EncodeMethod, unknown: UnknownCategory) -> Self {
        Encode { method, unknown }
    }

    /// The output fields for one encoded column, with their lineage: one-hot
    /// indicators are `fill_null(cast(col == "category", f32), 0.0)`; index codes
    /// a chain of `if_else` (recorded up to [`MAX_INDEX_LINEAGE`] categories).
    fn encoded_fields(&self, input: &Field, categories: &[(&str, i32)]) -> Result<Vec<Field>> {
        let source = lineage::of_field(input)?;
        let with = |expr: Expr| lineage::Lineage {
            expr,
            sources: source.sources.clone(),
        };
        Ok(match self.method {
            EncodeMethod::OneHot => categories
                .iter()
                .map(|(category, _)| {
                    let indicator = source
                        .expr
                        .clone()
                        .eq(lit(*category))
                        .cast(DType::Float32)
                        .fill_null(lit(0.0));
                    lineage::annotate(
                        Field::new(
                            format!("{}={category}", input.name()),
                            DataType::Float32,
                            false,
                        ),
                        &with(indicator),
                    )
                })
                .collect(),
            EncodeMethod::Index => {
                let field = Field::new(input.name(), DataType::Int32, true);
                if categories.len() > MAX_INDEX_LINEAGE {
                    vec![field]
                } else {
                    // An unseen category is null: `cast(nan, i32)` is the null the chain ends in.
                    let code = categories.iter().rev().fold(
                        lit(f64::NAN).cast(DType::Int32),
                        |otherwise, (category, i)| {
                            crate::ir::if_else(
                                source.expr.clone().eq(lit(*category)),
                                lit(*i),
                                otherwise,
                            )
                        },
                    );
                    vec![lineage::annotate(field, &with(code))]
                }
            }
        })
    }

    fn encode_column(
        &self,
        step: &str,
        name: &str,
        array: &ArrayRef,
        categories: &[(&str, i32)],
    ) -> Result<Vec<ArrayRef>> {
        let lookup: HashMap<&str, i32> = categories.iter().copied().collect();
        let strings = array.as_string::<i32>();
        let mut codes: Vec<Option<i32>> = Vec::with_capacity(strings.len());
        for value in strings.iter() {
            codes.push(match value {
                None => None,
                Some(v) => match (lookup.get(v), self.unknown) {
                    (Some(&i), _) => Some(i),
                    (None, UnknownCategory::Ignore) => None,
                    (None, UnknownCategory::Error) => bail!(Error::Schema {
                        step: step.into(),
                        column: name.into(),
                        message: format!("category {v:?} was not seen when fitting; refit on data that has it or set unknown = \"ignore\""),
                    }),
                },
            });
        }
        Ok(match self.method {
            EncodeMethod::Index => vec![Arc::new(Int32Array::from(codes)) as ArrayRef],
            EncodeMethod::OneHot => categories
                .iter()
                .map(|(_, i)| {
                    let values: Float32Array = codes
                        .iter()
                        .map(|c| Some(f32::from(u8::from(*c == Some(*i)))))
                        .collect();
                    Arc::new(values) as ArrayRef
                })
                .collect(),
        })
    }
}

/// Index encodings with more categories than this carry no lineage: a model
/// trained on them cannot re-apply the encoding by itself (use one-hot).
pub const MAX_INDEX_LINEAGE: usize = 256;

impl Step for Encode {
    step_io!("encode", ["data", "categories"], ["out"]);
    fn params(&self) -> String {
        format!(
            "method={}, unknown={}",
            match self.method {
                EncodeMethod::Index => "index",
                EncodeMethod::OneHot => "onehot",
            },
            match self.unknown {
                UnknownCategory::Ignore => "ignore",
                UnknownCategory::Error => "error",
            }
        )
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        let columns = stats_columns(ctx.name, &inputs[1])?;
        let mut fields: Vec<Field> = inputs[0]
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for c in &columns {
            let i = column_index(ctx.name, &inputs[0], c)?;
            utf8_column(ctx.name, &inputs[0], c, "encoding needs")?;
            fields[i] = Field::new(c, DataType::Int32, true);
        }
        // One-hot columns depend on the fitted categories: the planned schema shows
        // index codes, and the real one is known once the categories are fitted.
        Ok(vec![Arc::new(Schema::new_with_metadata(
            fields,
            inputs[0].metadata().clone(),
        ))])
    }
    fn schema_depends_on_data(&self) -> bool {
        self.method == EncodeMethod::OneHot
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let fitted = inputs[1].concat()?;
        let (names, categories, indices) = (
            fitted.column(0).as_string::<i32>(),
            fitted.column(1).as_string::<i32>(),
            fitted
                .column(2)
                .as_primitive::<arrow_array::types::Int32Type>(),
        );
        let columns = stats_columns(ctx.name, inputs[1].schema())?;
        let mut lookups: HashMap<&str, Vec<(&str, i32)>> =
            columns.iter().map(|c| (c.as_str(), Vec::new())).collect();
        for i in 0..fitted.num_rows() {
            if let Some(l) = lookups.get_mut(names.value(i)) {
                l.push((categories.value(i), indices.value(i)));
            }
        }
        lookups
            .values_mut()
            .for_each(|l| l.sort_by_key(|(_, i)| *i));
        // The output schema depends only on the input schema and the categories.
        let data = &inputs[0];
        let mut fields = Vec::new();
        for field in data.schema().fields() {
            match lookups.get(field.name().as_str()) {
                Some(categories) => fields.extend(self.encoded_fields(field, categories)?),
                None => fields.push(field.as_ref().clone()),
            }
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            data.schema().metadata().clone(),
        ));
        let batches = data
            .batches()
            .iter()
            .map(|batch| {
                let mut arrays = Vec::with_capacity(schema.fields().len());
                for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
                    match lookups.get(field.name().as_str()) {
                        Some(categories) => arrays.extend(self.encode_column(
                            ctx.name,
                            field.name(),
                            array,
                            categories,
                        )?),
                        None => arrays.push(Arc::clone(array)),
                    }
                }
                Ok(RecordBatch::try_new(Arc::clone(&schema), arrays)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![Table::try_new(schema, batches)?])
    }
}

impl FromSpec for Encode {
    /// `method` (default `onehot`); `unknown` (default `ignore`).
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let method = spec.choice(
            "method",
            Some("onehot"),
            |m| match m {
                "onehot" | "one_hot" => Some(EncodeMethod::OneHot),
                "index" => Some(EncodeMethod::Index),
                _ => None,
            },
            "onehot or index",
        )?;
        let unknown = spec.choice(
            "unknown",
            Some("ignore"),
            |m| match m {
                "ignore" => Some(UnknownCategory::Ignore),
                "error" => Some(UnknownCategory::Error),
                _ => None,
            },
            "ignore or error",
        )?;
        Ok(Encode::new(method, unknown))
    }
}

//! The `fill_null` step.

use std::collections::HashMap;

use arrow_schema::SchemaRef;
use toml::Value;

use super::fitted::{fitted, stats_columns};
use super::params::names;
use super::row_local::{ColumnExprs, RowLocalStep};
use crate::data::{Table, numeric_column};
use crate::error::{Error, Result, ensure};
use crate::ir::{Expr, Scalar, col, lit};
use crate::pipeline::step::{RowLocal, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// What [`FillNull`] puts in place of nulls.
#[derive(Clone, Debug, PartialEq)]
pub enum FillValue {
    /// A constant (converted to each column's type).
    Constant(crate::ir::Scalar),
    /// The column's mean from a statistics table on the `stats` input.
    Mean,
}

/// Replace nulls in columns (`kind = "fill_null"`). NaN values are not nulls
/// and are left as they are.
#[derive(Debug, Clone)]
pub struct FillNull {
    columns: Vec<String>,
    value: FillValue,
}

impl FillNull {
    /// Fill `columns` with `value`.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>, value: FillValue) -> Self {
        FillNull {
            columns: names(columns),
            value,
        }
    }

    fn exprs(&self, step: &str, stats: Option<&Table>) -> Result<Vec<(String, Expr)>> {
        let means = match stats {
            Some(t) => fitted(step, t, "mean")?,
            None => HashMap::new(),
        };
        self.columns
            .iter()
            .map(|c| {
                let value = match &self.value {
                    FillValue::Constant(v) => lit(v.clone()),
                    FillValue::Mean if stats.is_none() => lit(0.0),
                    FillValue::Mean => lit(means.get(c).copied().flatten().ok_or_else(|| Error::InvalidParameter {
                        step: step.into(),
                        message: format!("the 'stats' input has no mean for column '{c}'; add it to the fit_stats step's columns"),
                    })?),
                };
                Ok((c.clone(), col(c.as_str()).fill_null(value)))
            })
            .collect()
    }
}

impl RowLocalStep for FillNull {
    const KIND: &'static str = "fill_null";
    fn inputs(&self) -> &[&str] {
        match self.value {
            FillValue::Constant(_) => &["data"],
            FillValue::Mean => &["data", "stats"],
        }
    }
    fn params(&self) -> String {
        let value = match &self.value {
            FillValue::Constant(v) => v.to_string(),
            FillValue::Mean => "mean".into(),
        };
        format!("columns=[{}], value={value}", self.columns.join(", "))
    }
    fn planned_exprs(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<ColumnExprs> {
        if self.value == FillValue::Mean {
            let fitted = stats_columns(ctx.name, &inputs[1])?;
            for c in &self.columns {
                numeric_column(ctx.name, &inputs[0], c)?;
                ensure!(
                    fitted.contains(c),
                    Error::Schema { step: ctx.name.into(), column: c.clone(), message: "the 'stats' input has no statistics for this column; add it to the fit_stats step".into() }
                );
            }
        }
        self.exprs(ctx.name, None)
    }
}

impl RowLocal for FillNull {
    fn row_exprs(&self, ctx: StepContext, _: &SchemaRef, side: &[Table]) -> Result<ColumnExprs> {
        self.exprs(ctx.name, side.first())
    }
}

impl FromSpec for FillNull {
    /// `columns`; `value`: a constant, or `"mean"` with a `stats` input.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let columns = spec.strings("columns")?;
        let value = match spec.take("value") {
            Some(Value::String(s)) if s == "mean" => FillValue::Mean,
            Some(Value::String(s)) => FillValue::Constant(Scalar::Str(s)),
            Some(Value::Float(x)) => FillValue::Constant(Scalar::Float(x)),
            Some(Value::Integer(i)) => FillValue::Constant(Scalar::Int(i)),
            Some(Value::Boolean(b)) => FillValue::Constant(Scalar::Bool(b)),
            Some(other) => {
                return Err(spec.wrong("value", "a number, string, boolean or \"mean\"", &other));
            }
            None => {
                return Err(spec.error(
                    "missing key 'value' (a constant, or \"mean\" with a stats input)".into(),
                ));
            }
        };
        Ok(FillNull::new(columns, value))
    }
}

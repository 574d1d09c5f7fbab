//! The `scale` step.

use std::collections::HashMap;

use arrow_schema::SchemaRef;

use super::fitted::{fitted, stats_columns};
use super::row_local::{ColumnExprs, RowLocalStep};
use crate::data::{Table, numeric_column};
use crate::error::{Error, Result};
use crate::ir::{Expr, col, lit};
use crate::pipeline::step::{RowLocal, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// How [`Scale`] centres and scales a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleMethod {
    /// `(x - mean) / std`.
    ZScore,
    /// `(x - min) / (max - min)`.
    MinMax,
    /// `(x - median) / (q3 - q1)`; needs `FitStats::with_quantiles`.
    Robust,
}

impl ScaleMethod {
    /// Parse `zscore`, `minmax` or `robust`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "zscore" | "standard" => ScaleMethod::ZScore,
            "minmax" => ScaleMethod::MinMax,
            "robust" => ScaleMethod::Robust,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ScaleMethod::ZScore => "zscore",
            ScaleMethod::MinMax => "minmax",
            ScaleMethod::Robust => "robust",
        }
    }
}

/// Normalize the columns of a statistics table with fitted centre and scale,
/// fused into one pass (`kind = "scale"`). Nulls stay null; integer columns
/// become f64, float columns keep their type. A column with zero spread
/// (constant in training) is only centred, as scikit-learn does.
#[derive(Debug, Clone)]
pub struct Scale {
    method: ScaleMethod,
}

impl Scale {
    /// Scale with `method`.
    pub fn new(method: ScaleMethod) -> Self {
        Scale { method }
    }

    fn exprs(
        &self,
        step: &str,
        columns: &[String],
        stats: Option<&Table>,
    ) -> Result<Vec<(String, Expr)>> {
        let (center, spread): (HashMap<String, Option<f64>>, HashMap<String, Option<f64>>) =
            match stats {
                None => Default::default(),
                Some(t) => match self.method {
                    ScaleMethod::ZScore => (fitted(step, t, "mean")?, fitted(step, t, "std")?),
                    ScaleMethod::MinMax => {
                        let min = fitted(step, t, "min")?;
                        let range = spread(&min, &fitted(step, t, "max")?);
                        (min, range)
                    }
                    ScaleMethod::Robust => {
                        let iqr = spread(&fitted(step, t, "q1")?, &fitted(step, t, "q3")?);
                        (fitted(step, t, "median")?, iqr)
                    }
                },
            };
        columns
            .iter()
            .map(|c| {
                let (m, s) = match stats {
                    None => (0.0, 1.0),
                    Some(_) => {
                        let missing = || Error::InvalidParameter {
                            step: step.into(),
                            message: format!("the statistics for '{c}' lack what {} scaling needs; fit with quantiles (robust = true) for robust scaling", self.method.name()),
                        };
                        (center.get(c).copied().flatten().ok_or_else(missing)?, spread.get(c).copied().flatten().ok_or_else(missing)?)
                    }
                };
                let s = if s == 0.0 || !s.is_finite() { 1.0 } else { s };
                // Multiplying by the reciprocal is as accurate to within one rounding and
                // several times cheaper than dividing every row.
                Ok((c.clone(), (col(c.as_str()) - lit(m)) * lit(1.0 / s)))
            })
            .collect()
    }
}

impl RowLocalStep for Scale {
    const KIND: &'static str = "scale";
    fn inputs(&self) -> &[&str] {
        &["data", "stats"]
    }
    fn params(&self) -> String {
        format!("method={}", self.method.name())
    }
    fn planned_exprs(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<ColumnExprs> {
        let columns = stats_columns(ctx.name, &inputs[1])?;
        for c in &columns {
            numeric_column(ctx.name, &inputs[0], c)?;
        }
        self.exprs(ctx.name, &columns, None)
    }
}

impl RowLocal for Scale {
    fn row_exprs(&self, ctx: StepContext, _: &SchemaRef, side: &[Table]) -> Result<ColumnExprs> {
        let stats = &side[0];
        let columns = stats_columns(ctx.name, stats.schema())?;
        self.exprs(ctx.name, &columns, Some(stats))
    }
}

impl FromSpec for Scale {
    /// `method` (default `zscore`).
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let method = spec.choice(
            "method",
            Some("zscore"),
            ScaleMethod::parse,
            "zscore, minmax or robust",
        )?;
        Ok(Scale::new(method))
    }
}

/// Per column, `high - low` where both are known.
fn spread(
    low: &HashMap<String, Option<f64>>,
    high: &HashMap<String, Option<f64>>,
) -> HashMap<String, Option<f64>> {
    low.iter()
        .map(|(k, lo)| (k.clone(), lo.zip(high[k]).map(|(lo, hi)| hi - lo)))
        .collect()
}

//! A sweep's results: one row per variant, with its assignment, status,
//! metrics, time and cache hits, as text (`fuseflow sweep results`) and as
//! an Arrow table to write as CSV, Parquet or Arrow.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::record::{RunDetail, RunId, Variant};
use super::report::{Left, Right, duration, one_line, table};
use crate::data::Table;
use crate::error::{Error, Result};

/// How a variant of a sweep's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VariantStatus {
    /// Every step that computes it finished.
    Succeeded,
    /// A step that computes it failed (the step and its error).
    Failed {
        /// The failed step of the compiled pipeline.
        step: String,
        /// Its error.
        error: String,
    },
    /// Some of its steps have no record: the run is still going, or was
    /// interrupted, or they waited on a step of another variant that failed.
    Incomplete,
}

impl VariantStatus {
    fn word(&self) -> &'static str {
        match self {
            VariantStatus::Succeeded => "succeeded",
            VariantStatus::Failed { .. } => "failed",
            VariantStatus::Incomplete => "incomplete",
        }
    }
}

/// One variant's row.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantResult {
    /// The variant and the steps that compute it.
    pub variant: Variant,
    /// How it ended.
    pub status: VariantStatus,
    /// A value for each of [`SweepResults::metrics`] (NaN where its step
    /// recorded none).
    pub metrics: Vec<f64>,
    /// The time of the steps that compute it, added up (shared steps count
    /// in every variant that reads them: what the variant would take alone).
    pub time: Duration,
    /// Of its steps, those reused from the cache.
    pub hits: usize,
    /// Its steps.
    pub steps: usize,
}

/// The results of a sweep's run: a row per variant, in the sweep's order
/// unless sorted.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepResults {
    /// The run.
    pub run: RunId,
    /// The swept dimensions, in order.
    pub dimensions: Vec<String>,
    /// The metric columns: a metric's name where one step of the spec
    /// records it, `step.metric` where several do.
    pub metrics: Vec<String>,
    /// One row per variant.
    pub rows: Vec<VariantResult>,
}

impl SweepResults {
    /// The results of the run `detail` describes, whose sweep had `variants`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the run is not a sweep's.
    pub fn of(detail: &RunDetail, variants: Vec<Variant>) -> Result<SweepResults> {
        let run = detail.summary.id.clone();
        let Some(first) = variants.first() else {
            return Err(Error::InvalidParameter {
                step: "sweep results".into(),
                message: format!(
                    "run {run} is not a sweep's: its spec has no [sweep] table (fuseflow show {run} shows it)"
                ),
            });
        };
        let dimensions = first.assignment.iter().map(|(d, _)| d.clone()).collect();
        // (spec step, metric name) in the order metrics were first recorded.
        let base_of = |instance: &str| {
            variants
                .iter()
                .flat_map(|v| &v.steps)
                .find(|(_, i)| i == instance)
                .map(|(s, _)| s.clone())
        };
        let mut columns: Vec<(String, String)> = Vec::new();
        for m in &detail.metrics {
            let key = (
                base_of(&m.step).unwrap_or_else(|| m.step.clone()),
                m.name.clone(),
            );
            if !columns.contains(&key) {
                columns.push(key);
            }
        }
        let metrics = columns
            .iter()
            .map(
                |(step, name)| match columns.iter().filter(|(_, n)| n == name).count() {
                    1 => name.clone(),
                    _ => format!("{step}.{name}"),
                },
            )
            .collect();
        let rows = variants
            .into_iter()
            .map(|variant| row_of(detail, variant, &columns))
            .collect();
        Ok(SweepResults {
            run,
            dimensions,
            metrics,
            rows,
        })
    }

    /// Rows ordered by `metric` (a column of [`SweepResults::metrics`]),
    /// ascending or descending; NaN last either way.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the metric and listing the
    /// columns when there is no such column.
    pub fn sort_by(&mut self, metric: &str, descending: bool) -> Result<()> {
        let c = self.metric_column(metric, "--sort")?;
        self.rows.sort_by(|a, b| {
            let (x, y) = (a.metrics[c], b.metrics[c]);
            match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if descending => y.total_cmp(&x),
                _ => x.total_cmp(&y),
            }
        });
        Ok(())
    }

    /// The column of `metric` in [`SweepResults::metrics`].
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the metric and listing the
    /// columns, attributed to the command-line `option` that asked for it.
    pub(super) fn metric_column(&self, metric: &str, option: &str) -> Result<usize> {
        let found = self.metrics.iter().position(|m| m == metric);
        found.ok_or_else(|| Error::InvalidParameter {
            step: option.into(),
            message: format!(
                "the sweep recorded no metric '{metric}'; its metrics: {}",
                self.metrics.join(", ")
            ),
        })
    }

    /// The results as an Arrow table: `variant`, one utf8 column per
    /// dimension, `status`, `error`, a float64 column per metric,
    /// `time_ms`, `cache_hits`, `steps`.
    ///
    /// # Errors
    /// [`Error::Arrow`] if the columns do not assemble (a bug).
    pub fn to_table(&self) -> Result<Table> {
        let text = |f: &dyn Fn(&VariantResult) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(
                self.rows.iter().map(f).collect::<Vec<_>>(),
            ))
        };
        let mut fields = vec![Field::new("variant", DataType::Utf8, false)];
        let mut columns = vec![text(&|r| Some(r.variant.name.clone()))];
        for (d, dim) in self.dimensions.iter().enumerate() {
            fields.push(Field::new(dim, DataType::Utf8, true));
            columns.push(text(&|r| {
                r.variant.assignment.get(d).map(|(_, v)| v.clone())
            }));
        }
        fields.push(Field::new("status", DataType::Utf8, false));
        columns.push(text(&|r| Some(r.status.word().to_string())));
        fields.push(Field::new("error", DataType::Utf8, true));
        columns.push(text(&|r| match &r.status {
            VariantStatus::Failed { step, error } => Some(format!("{step}: {error}")),
            _ => None,
        }));
        for (c, metric) in self.metrics.iter().enumerate() {
            fields.push(Field::new(metric, DataType::Float64, true));
            let values = self
                .rows
                .iter()
                .map(|r| Some(r.metrics[c]).filter(|v| !v.is_nan()));
            columns.push(Arc::new(values.collect::<Float64Array>()));
        }
        fields.push(Field::new("time_ms", DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(
            self.rows.iter().map(|r| r.time.as_secs_f64() * 1e3),
        )));
        let count = |of: fn(&VariantResult) -> usize| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                self.rows.iter().map(|r| of(r) as i64),
            ))
        };
        fields.push(Field::new("cache_hits", DataType::Int64, false));
        columns.push(count(|r| r.hits));
        fields.push(Field::new("steps", DataType::Int64, false));
        columns.push(count(|r| r.steps));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        Ok(Table::from_batch(batch))
    }

    /// The results as a text table: a row per variant (its dimensions'
    /// values, status, metrics to 4 decimals, time, cache hits of steps),
    /// then the errors of failed variants.
    pub fn render(&self) -> String {
        let mut columns: Vec<(&str, _)> = vec![("#", Right)];
        columns.extend(self.dimensions.iter().map(|d| (d.as_str(), Left)));
        columns.push(("STATUS", Left));
        columns.extend(self.metrics.iter().map(|m| (m.as_str(), Right)));
        columns.extend([("TIME", Right), ("HITS", Right)]);
        let rows = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut row = vec![(i + 1).to_string()];
                row.extend(r.variant.assignment.iter().map(|(_, v)| v.clone()));
                row.push(r.status.word().to_string());
                row.extend(r.metrics.iter().map(|v| match v.is_nan() {
                    true => "-".to_string(),
                    false => format!("{v:.4}"),
                }));
                row.push(duration(r.time));
                row.push(format!("{}/{}", r.hits, r.steps));
                row
            })
            .collect();
        let mut out = format!(
            "sweep results of run {}: {} variants\n",
            self.run,
            self.rows.len()
        );
        out.push_str(&table(&columns, rows));
        for r in &self.rows {
            if let VariantStatus::Failed { step, error } = &r.status {
                out.push_str(&format!(
                    "variant {} failed in step '{step}': {}\n",
                    r.variant.name,
                    one_line(error)
                ));
            }
        }
        out
    }
}

/// A variant's row: its steps' records and the metrics they recorded.
fn row_of(detail: &RunDetail, variant: Variant, columns: &[(String, String)]) -> VariantResult {
    let mut status = VariantStatus::Succeeded;
    let (mut time, mut hits, mut missing) = (Duration::ZERO, 0, false);
    for (_, instance) in &variant.steps {
        match detail.steps.iter().find(|s| &s.record.step == instance) {
            Some(s) => {
                time += s.record.duration;
                hits += usize::from(s.record.cache_hit);
                if let (Some(error), VariantStatus::Succeeded) = (&s.record.error, &status) {
                    status = VariantStatus::Failed {
                        step: instance.clone(),
                        error: error.clone(),
                    };
                }
            }
            None => missing = true,
        }
    }
    if missing && status == VariantStatus::Succeeded {
        status = VariantStatus::Incomplete;
    }
    let metrics = columns
        .iter()
        .map(|(step, name)| {
            let instance = variant.instance(step).unwrap_or(step);
            detail
                .metrics
                .iter()
                .find(|m| m.step == instance && &m.name == name)
                .map_or(f64::NAN, |m| m.value)
        })
        .collect();
    VariantResult {
        steps: variant.steps.len(),
        variant,
        status,
        metrics,
        time,
        hits,
    }
}

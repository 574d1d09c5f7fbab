//! The `fit_stats` step.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;

use super::fitted::STATS_COLUMNS_KEY;
use super::params::names;
use super::ports::step_io;
use crate::backend::cpu::stats::{self, ColumnStats};
use crate::data::{Stream, Table, column_index, numeric_column};
use crate::error::{Error, Result, bail, ensure};
use crate::pipeline::step::{OpKind, Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Fit per-column statistics on (training) data (`kind = "fit_stats"`): count,
/// nulls, mean, population standard deviation, min, max and, when asked,
/// median and quartiles. One pass with f64 accumulation; quartiles need a
/// second, exact selection pass.
///
/// The output is a small table, one row per column. Fitting fails on a column
/// with NaN or infinite values, a variance beyond f64's range, or no
/// non-null value, naming it.
#[derive(Debug, Clone)]
pub struct FitStats {
    columns: Vec<String>,
    quantiles: bool,
}

impl FitStats {
    /// Fit `columns` (mean, std, min, max).
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        FitStats {
            columns: names(columns),
            quantiles: false,
        }
    }

    /// Also compute median and quartiles (needed for robust scaling).
    pub fn with_quantiles(mut self) -> Self {
        self.quantiles = true;
        self
    }

    fn schema(&self) -> SchemaRef {
        let f = |n: &str, t: DataType| Field::new(n, t, true);
        let metadata =
            HashMap::from([(STATS_COLUMNS_KEY.to_string(), self.columns.join("\u{1f}"))]);
        Arc::new(Schema::new_with_metadata(
            vec![
                Field::new("column", DataType::Utf8, false),
                f("count", DataType::Int64),
                f("nulls", DataType::Int64),
                f("mean", DataType::Float64),
                f("std", DataType::Float64),
                f("min", DataType::Float64),
                f("max", DataType::Float64),
                f("median", DataType::Float64),
                f("q1", DataType::Float64),
                f("q3", DataType::Float64),
            ],
            metadata,
        ))
    }
}

impl Step for FitStats {
    fn op_kind(&self) -> OpKind {
        OpKind::Fit
    }
    step_io!("fit_stats", ["data"], ["stats"]);
    fn params(&self) -> String {
        format!(
            "columns=[{}]{}",
            self.columns.join(", "),
            if self.quantiles { ", quantiles" } else { "" }
        )
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        ensure!(
            !self.columns.is_empty(),
            Error::InvalidParameter {
                step: ctx.name.into(),
                message: "no columns to fit; list at least one".into()
            }
        );
        for c in &self.columns {
            numeric_column(ctx.name, &inputs[0], c)?;
        }
        Ok(vec![self.schema()])
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let data = &inputs[0];
        let columns: Vec<(String, Vec<ArrayRef>)> = self
            .columns
            .iter()
            .map(|c| Ok((c.clone(), data.column(ctx.name, c)?)))
            .collect::<Result<_>>()?;
        let fitted = ctx.device.column_stats(&columns, ctx.notes)?;
        self.check(ctx, &fitted, data.num_rows())?;
        // Each column's quartiles on its own thread.
        let quartiles: Vec<Option<Vec<f64>>> = columns
            .par_iter()
            .map(|(_, chunks)| {
                if self.quantiles {
                    stats::quantiles(chunks, &[0.5, 0.25, 0.75])
                } else {
                    None
                }
            })
            .collect();
        self.table(&fitted, &quartiles)
    }
    fn columns_read(&self) -> Option<Vec<String>> {
        Some(self.columns.clone())
    }
    /// Without quantiles, statistics merge window by window.
    fn streams_input(&self) -> bool {
        !self.quantiles
    }
    fn run_stream(&self, ctx: StepContext, data: &Stream, side: &[Table]) -> Result<Vec<Table>> {
        if self.quantiles {
            return self.run(ctx, &[vec![data.collect()?], side.to_vec()].concat());
        }
        let indices = self
            .columns
            .iter()
            .map(|c| column_index(ctx.name, data.schema(), c))
            .collect::<Result<Vec<_>>>()?;
        let mut fitted = vec![ColumnStats::EMPTY; self.columns.len()];
        let mut rows = 0;
        for window in data.windows(FIT_WINDOW_BYTES)? {
            let window = window?;
            rows += window.iter().map(RecordBatch::num_rows).sum::<usize>();
            let columns: Vec<(String, Vec<ArrayRef>)> = self
                .columns
                .iter()
                .zip(&indices)
                .map(|(c, &i)| {
                    (
                        c.clone(),
                        window.iter().map(|b| Arc::clone(b.column(i))).collect(),
                    )
                })
                .collect();
            ctx.device
                .column_stats_onto(&mut fitted, &columns, ctx.notes)?;
        }
        self.check(ctx, &fitted, rows)?;
        self.table(&fitted, &vec![None; self.columns.len()])
    }
}

/// Bytes of rows a streamed fit reduces at once: enough blocks to keep
/// every core busy, few enough that a window stays a small part of memory.
const FIT_WINDOW_BYTES: usize = 16 << 20;

impl FitStats {
    /// Refuse statistics of a column with NaN or infinite values, values
    /// whose variance overflows, or no value at all, naming it and what to do.
    fn check(&self, ctx: StepContext, fitted: &[ColumnStats], rows: usize) -> Result<()> {
        for (name, s) in self.columns.iter().zip(fitted) {
            let problem = if s.nans > 0 {
                Some(format!(
                    "{} of {} values are NaN; replace them (e.g. derive `if_else({name} != {name}, 0.0, {name})`) or filter those rows before fitting",
                    s.nans, rows
                ))
            } else if s.finite_count() == 0 {
                Some(format!(
                    "no non-null values among {rows} rows; statistics are undefined, drop the column or fill it first"
                ))
            } else if s.min.is_infinite() || s.max.is_infinite() {
                Some(format!(
                    "its values include infinities (min {}, max {}), so its mean and spread are not finite; clip them (e.g. derive `clip({name}, -1e300, 1e300)`) or filter those rows before fitting",
                    s.min, s.max
                ))
            } else if !s.mean.is_finite() || !s.m2.is_finite() {
                Some(format!(
                    "its values (from {} to {}) are too large for a finite variance in f64; rescale them before fitting",
                    s.min, s.max
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                bail!(Error::Schema {
                    step: ctx.name.into(),
                    column: name.clone(),
                    message
                });
            }
        }
        Ok(())
    }

    /// The statistics table: a row per column.
    fn table(&self, fitted: &[ColumnStats], quartiles: &[Option<Vec<f64>>]) -> Result<Vec<Table>> {
        let q = |i: usize| -> Float64Array {
            quartiles.iter().map(|v| v.as_ref().map(|v| v[i])).collect()
        };
        let f = |g: fn(&ColumnStats) -> f64| -> ArrayRef {
            Arc::new(fitted.iter().map(|s| Some(g(s))).collect::<Float64Array>())
        };
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(&self.columns)),
            Arc::new(
                fitted
                    .iter()
                    .map(|s| Some(s.count as i64))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                fitted
                    .iter()
                    .map(|s| Some(s.nulls as i64))
                    .collect::<Int64Array>(),
            ),
            f(|s| s.mean),
            f(ColumnStats::std),
            f(|s| s.min),
            f(|s| s.max),
            Arc::new(q(0)),
            Arc::new(q(1)),
            Arc::new(q(2)),
        ];
        Ok(vec![Table::from_batch(RecordBatch::try_new(
            self.schema(),
            arrays,
        )?)])
    }
}

impl FromSpec for FitStats {
    /// `columns`; `quantiles` (default false).
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let fit = FitStats::new(spec.strings("columns")?);
        Ok(if spec.boolean("quantiles", false)? {
            fit.with_quantiles()
        } else {
            fit
        })
    }
}

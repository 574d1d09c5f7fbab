//! Data-preparation steps.
//!
//! Row-local steps ([`Derive`], [`Scale`], [`FillNull`], [`Encode`] with index
//! encoding, [`Filter`]) build expressions and run them as one fused kernel per
//! chunk. Steps that learn from data are split in two: a fit step computes a
//! small Arrow table ([`FitStats`], [`FitCategories`]), and an apply step reads
//! it, so the statistics of the training split can be applied to any other data.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    cast::AsArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::step::{RowLocal, Step, StepContext};
use crate::backend::cpu::CpuKernel;
use crate::backend::cpu::stats::{self, ColumnStats};
use crate::backend::{Kernel, Notes};
use crate::data::lineage;
use crate::data::splitmix64;
use crate::data::{Stream, Table, column_dtype, column_index, numeric_column};
use crate::error::{Error, Result, bail, ensure};
use crate::ir::{DType, Expr, Projection, col, lit};
use crate::pipeline::OpKind;

/// Re-raise an expression type error as a parameter error of `step`.
fn in_step(step: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Type { expr, message } => Error::InvalidParameter {
            step: step.to_string(),
            message: format!("expression `{expr}`: {message}"),
        },
        other => other.in_step(step),
    }
}

/// Schema after replacing or appending `exprs` (replaced columns keep their
/// position), with each computed column's lineage, and the projection computing them.
pub(crate) fn with_columns_schema(
    step: &str,
    input: &SchemaRef,
    exprs: &[(String, Expr)],
) -> Result<(SchemaRef, Projection)> {
    let projection = Projection::try_new(Arc::clone(input), exprs).map_err(in_step(step))?;
    let computed = projection.output_schema();
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (field, (_, expr)) in computed.fields().iter().zip(exprs) {
        let field = lineage::annotate(field.as_ref().clone(), &lineage::compose(expr, input)?);
        match fields.iter().position(|f| f.name() == field.name()) {
            Some(i) => fields[i] = field,
            None => fields.push(field),
        }
    }
    Ok((
        Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())),
        projection,
    ))
}

/// Evaluate `exprs` over every chunk with one fused kernel and replace or append
/// the resulting columns; untouched columns are passed through without copying.
fn with_columns(ctx: StepContext, input: &Table, exprs: &[(String, Expr)]) -> Result<Table> {
    let (schema, projection) = with_columns_schema(ctx.name, input.schema(), exprs)?;
    apply_kernel(ctx, input, &schema, &ctx.device.kernel(projection))
}

/// Run a row-local step on its own: its expressions as one kernel over its
/// data input (`inputs[0]`), the other inputs being its side tables.
fn run_row_local(step: &dyn RowLocal, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
    let exprs = step.row_exprs(ctx, inputs[0].schema(), &inputs[1..])?;
    Ok(vec![with_columns(ctx, &inputs[0], &exprs)?])
}

/// `input` with the columns `kernel` computes replaced or appended, as laid
/// out in `schema`; the other columns pass through without copying.
pub(crate) fn apply_kernel(
    ctx: StepContext,
    input: &Table,
    schema: &SchemaRef,
    kernel: &Kernel,
) -> Result<Table> {
    let batches = input
        .batches()
        .iter()
        .map(|batch| apply_batch(ctx.name, ctx.notes, batch, schema, kernel))
        .collect::<Result<Vec<_>>>()?;
    Table::try_new(Arc::clone(schema), batches)
}

/// One batch of [`apply_kernel`], for `step`, with fallback notes to `notes`.
pub(crate) fn apply_batch(
    step: &str,
    notes: &Notes,
    batch: &RecordBatch,
    schema: &SchemaRef,
    kernel: &Kernel,
) -> Result<RecordBatch> {
    let computed = kernel.evaluate(batch, notes).map_err(in_step(step))?;
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            computed
                .column_by_name(f.name())
                .or_else(|| batch.column_by_name(f.name()))
                .cloned()
                .expect("column planned")
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

macro_rules! step_io {
    ($kind:literal, [$($input:literal),*], [$($output:literal),*]) => {
        fn kind(&self) -> &str {
            $kind
        }
        fn inputs(&self) -> &[&str] {
            &[$($input),*]
        }
        fn outputs(&self) -> &[&str] {
            &[$($output),*]
        }
    };
}

/// Keep only the named columns, in the given order (`kind = "select"`).
#[derive(Debug, Clone)]
pub struct Select {
    columns: Vec<String>,
}

impl Select {
    /// Keep `columns`.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Select {
            columns: columns.into_iter().map(Into::into).collect(),
        }
    }

    fn indices(&self, step: &str, schema: &Schema) -> Result<Vec<usize>> {
        self.columns
            .iter()
            .map(|c| column_index(step, schema, c))
            .collect()
    }
}

impl Step for Select {
    step_io!("select", ["data"], ["out"]);
    fn params(&self) -> String {
        format!("columns=[{}]", self.columns.join(", "))
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![Arc::new(
            inputs[0].project(&self.indices(ctx.name, &inputs[0])?)?,
        )])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let indices = self.indices(ctx.name, inputs[0].schema())?;
        let schema = Arc::new(inputs[0].schema().project(&indices)?);
        let batches = inputs[0]
            .batches()
            .iter()
            .map(|b| b.project(&indices))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(vec![Table::try_new(schema, batches)?])
    }
    /// A projection fuses with the row-local steps before it, so that their
    /// kernel computes and writes only the columns it keeps.
    fn row_local(&self) -> Option<&dyn RowLocal> {
        Some(self)
    }
}

impl RowLocal for Select {
    fn row_exprs(&self, _: StepContext, _: &SchemaRef, _: &[Table]) -> Result<Vec<(String, Expr)>> {
        Ok(Vec::new())
    }
    fn keeps(&self) -> Option<&[String]> {
        Some(&self.columns)
    }
}

/// Rename columns (`kind = "rename"`).
#[derive(Debug, Clone)]
pub struct Rename {
    mapping: Vec<(String, String)>,
}

impl Rename {
    /// Rename each `(from, to)`.
    pub fn new<S: Into<String>>(mapping: impl IntoIterator<Item = (S, S)>) -> Self {
        Rename {
            mapping: mapping
                .into_iter()
                .map(|(a, b)| (a.into(), b.into()))
                .collect(),
        }
    }

    fn schema(&self, step: &str, input: &Schema) -> Result<SchemaRef> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (from, to) in &self.mapping {
            let i = column_index(step, input, from)?;
            // The renamed column still computes from the same sources.
            let lineage = lineage::of_field(&fields[i])?;
            fields[i] = lineage::annotate(fields[i].clone().with_name(to), &lineage);
        }
        let mut seen = BTreeSet::new();
        for f in &fields {
            ensure!(
                seen.insert(f.name().clone()),
                Error::Schema {
                    step: step.into(),
                    column: f.name().clone(),
                    message: "two columns would have this name after renaming".into()
                }
            );
        }
        Ok(Arc::new(Schema::new_with_metadata(
            fields,
            input.metadata().clone(),
        )))
    }
}

impl Step for Rename {
    step_io!("rename", ["data"], ["out"]);
    fn params(&self) -> String {
        let pairs: Vec<String> = self
            .mapping
            .iter()
            .map(|(a, b)| format!("{a}->{b}"))
            .collect();
        pairs.join(", ")
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![self.schema(ctx.name, &inputs[0])?])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let schema = self.schema(ctx.name, inputs[0].schema())?;
        let batches = inputs[0]
            .batches()
            .iter()
            .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(vec![Table::try_new(schema, batches)?])
    }
}

/// Keep the rows where a boolean expression is true; null counts as false
/// (`kind = "filter"`).
#[derive(Debug, Clone)]
pub struct Filter {
    predicate: Expr,
}

impl Filter {
    /// Keep rows where `predicate` holds.
    pub fn new(predicate: Expr) -> Self {
        Filter { predicate }
    }

    fn kernel(&self, step: &str, schema: &SchemaRef) -> Result<CpuKernel> {
        let projection = Projection::try_new(
            Arc::clone(schema),
            &[("keep".into(), self.predicate.clone())],
        )
        .map_err(in_step(step))?;
        let dtype = projection.output_schema().field(0).data_type().clone();
        ensure!(
            dtype == DataType::Boolean,
            Error::InvalidParameter {
                step: step.into(),
                message: format!(
                    "the filter predicate `{}` is {dtype}, it must be boolean",
                    self.predicate
                )
            }
        );
        Ok(CpuKernel::compile(projection))
    }
}

impl Step for Filter {
    step_io!("filter", ["data"], ["out"]);
    fn params(&self) -> String {
        format!("predicate={}", self.predicate)
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        self.kernel(ctx.name, &inputs[0])?;
        Ok(vec![Arc::clone(&inputs[0])])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let kernel = self.kernel(ctx.name, inputs[0].schema())?;
        let batches = inputs[0]
            .batches()
            .iter()
            .map(|b| {
                let keep = kernel.evaluate(b)?;
                let keep = keep.column(0).as_boolean();
                // A null predicate drops the row.
                let keep = if keep.null_count() > 0 {
                    arrow_select::filter::prep_null_mask_filter(keep)
                } else {
                    keep.clone()
                };
                Ok(arrow_select::filter::filter_record_batch(b, &keep)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![Table::try_new(
            Arc::clone(inputs[0].schema()),
            batches,
        )?])
    }
}

/// Add or replace columns computed by expressions, fused into one pass
/// (`kind = "derive"`).
#[derive(Debug, Clone)]
pub struct Derive {
    columns: Vec<(String, Expr)>,
}

impl Derive {
    /// Compute each `(name, expr)`; an existing column of that name is replaced in place.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = (S, Expr)>) -> Self {
        Derive {
            columns: columns.into_iter().map(|(n, e)| (n.into(), e)).collect(),
        }
    }
}

impl Step for Derive {
    step_io!("derive", ["data"], ["out"]);
    fn params(&self) -> String {
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|(n, e)| format!("{n}={e}"))
            .collect();
        parts.join(", ")
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![
            with_columns_schema(ctx.name, &inputs[0], &self.columns)?.0,
        ])
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn row_local(&self) -> Option<&dyn RowLocal> {
        Some(self)
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        run_row_local(self, ctx, inputs)
    }
}

impl RowLocal for Derive {
    fn row_exprs(&self, _: StepContext, _: &SchemaRef, _: &[Table]) -> Result<Vec<(String, Expr)>> {
        Ok(self.columns.clone())
    }
}

/// Schema metadata key listing the columns a statistics table covers.
const STATS_COLUMNS_KEY: &str = "fuseflow.stats.columns";

/// Fit per-column statistics on (training) data (`kind = "fit_stats"`): count,
/// nulls, mean, population standard deviation, min, max and, when asked,
/// median and quartiles. One pass with f64 accumulation; quartiles need a
/// second, exact selection pass.
///
/// The output is a small table, one row per column. Fitting fails on a column
/// with NaN values or without any non-null value, naming it.
#[derive(Debug, Clone)]
pub struct FitStats {
    columns: Vec<String>,
    quantiles: bool,
}

impl FitStats {
    /// Fit `columns` (mean, std, min, max).
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        FitStats {
            columns: columns.into_iter().map(Into::into).collect(),
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
        let quartiles: Vec<Option<Vec<f64>>> = columns
            .iter()
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
    /// Refuse statistics of a column with NaN values or no value at all,
    /// naming it and what to do.
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

/// The columns a statistics table covers, from its schema.
fn stats_columns(step: &str, stats: &Schema) -> Result<Vec<String>> {
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
fn fitted(step: &str, stats: &Table, statistic: &str) -> Result<HashMap<String, Option<f64>>> {
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
                        let (min, max) = (fitted(step, t, "min")?, fitted(step, t, "max")?);
                        let range = min
                            .iter()
                            .map(|(k, lo)| (k.clone(), lo.zip(max[k]).map(|(lo, hi)| hi - lo)))
                            .collect();
                        (min, range)
                    }
                    ScaleMethod::Robust => {
                        let (q1, q3) = (fitted(step, t, "q1")?, fitted(step, t, "q3")?);
                        let iqr = q1
                            .iter()
                            .map(|(k, lo)| (k.clone(), lo.zip(q3[k]).map(|(lo, hi)| hi - lo)))
                            .collect();
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

impl Step for Scale {
    step_io!("scale", ["data", "stats"], ["out"]);
    fn params(&self) -> String {
        format!("method={}", self.method.name())
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        let columns = stats_columns(ctx.name, &inputs[1])?;
        for c in &columns {
            numeric_column(ctx.name, &inputs[0], c)?;
        }
        Ok(vec![
            with_columns_schema(ctx.name, &inputs[0], &self.exprs(ctx.name, &columns, None)?)?.0,
        ])
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn row_local(&self) -> Option<&dyn RowLocal> {
        Some(self)
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        run_row_local(self, ctx, inputs)
    }
}

impl RowLocal for Scale {
    fn row_exprs(
        &self,
        ctx: StepContext,
        _: &SchemaRef,
        side: &[Table],
    ) -> Result<Vec<(String, Expr)>> {
        let stats = &side[0];
        let columns = stats_columns(ctx.name, stats.schema())?;
        self.exprs(ctx.name, &columns, Some(stats))
    }
}

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
            columns: columns.into_iter().map(Into::into).collect(),
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

impl Step for FillNull {
    fn kind(&self) -> &str {
        "fill_null"
    }
    fn inputs(&self) -> &[&str] {
        match self.value {
            FillValue::Constant(_) => &["data"],
            FillValue::Mean => &["data", "stats"],
        }
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        let value = match &self.value {
            FillValue::Constant(v) => v.to_string(),
            FillValue::Mean => "mean".into(),
        };
        format!("columns=[{}], value={value}", self.columns.join(", "))
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
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
        Ok(vec![
            with_columns_schema(ctx.name, &inputs[0], &self.exprs(ctx.name, None)?)?.0,
        ])
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn row_local(&self) -> Option<&dyn RowLocal> {
        Some(self)
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        run_row_local(self, ctx, inputs)
    }
}

impl RowLocal for FillNull {
    fn row_exprs(
        &self,
        ctx: StepContext,
        _: &SchemaRef,
        side: &[Table],
    ) -> Result<Vec<(String, Expr)>> {
        self.exprs(ctx.name, side.first())
    }
}

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
            columns: columns.into_iter().map(Into::into).collect(),
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
            let dtype = column_dtype(ctx.name, &inputs[0], c)?;
            ensure!(
                dtype == DType::Utf8,
                Error::Schema {
                    step: ctx.name.into(),
                    column: c.clone(),
                    message: format!("categories need a utf8 column, found {dtype}")
                }
            );
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
            let dtype = column_dtype(ctx.name, &inputs[0], c)?;
            ensure!(
                dtype == DType::Utf8,
                Error::Schema {
                    step: ctx.name.into(),
                    column: c.clone(),
                    message: format!("encoding needs a utf8 column, found {dtype}")
                }
            );
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

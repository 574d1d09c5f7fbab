//! The "prep+score" workload shared by `benches/fused_eval.rs` and
//! `benches/peers/prep_score.rs`; it mirrors `benches/peers/prep_score.py`.
//!
//! N rows of 32 Float32 columns `f0..f31`: normal values with a per-column mean
//! (uniform in [-10, 10)) and scale (uniform in [0.5, 5)); `f0..f7` each have
//! exactly 1% nulls at random rows (the value under a null is NaN, so a kernel
//! that ignores validity shows up as a wrong result). Everything is generated
//! from splitmix64 streams seeded with [`SEED`], one stream per column, so the
//! data does not depend on the number of threads. (The numbers differ from
//! numpy's generator, the distributions and null counts are the same.)
//!
//! - fit: `column_stats` over the 32 columns (mean, population std).
//! - apply: one projection with a single output
//!   `score = sigmoid(b + sum_j w_j * clip((fill_null(f_j, m_j) - m_j) * (1 / s_j), -5, 5))`
//!   (scaling multiplies by the reciprocal of the spread, as the `scale` step does)
//!   with `w_j = ((j % 7) - 3) / 10` and `b = 0.1`. The means and stds are f64
//!   literals; numeric literals are weak, so the computation stays in f32.
//!
//! [`OpByOp`] evaluates the same arithmetic one operator at a time, each
//! operator a single-op projection that materializes a full Arrow array, so
//! that comparing it with the fused kernel measures only the cost of
//! materializing intermediates.
#![allow(dead_code)]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, Float32Array, RecordBatch};
use arrow_buffer::{NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use fuseflow::backend::cpu::CpuKernel;
use fuseflow::backend::cpu::stats::{ColumnStats, column_stats};
use fuseflow::ir::{Expr, Projection, col, lit};
use rayon::prelude::*;

/// Number of feature columns.
pub const N_COLUMNS: usize = 32;
/// Columns `f0..f{N_NULLABLE-1}` carry nulls.
pub const N_NULLABLE: usize = 8;
/// Fraction of null rows in each nullable column (exact, rounded down).
pub const NULL_FRACTION: f64 = 0.01;
/// Seed of the data generator.
pub const SEED: u64 = 42;
/// Standardized values are clipped to `[-CLIP, CLIP]`.
pub const CLIP: f64 = 5.0;
/// The bias `b` of the linear model.
pub const BIAS: f64 = 0.1;
/// Default number of rows.
pub const DEFAULT_ROWS: usize = 10_000_000;
/// Rows per record batch: what a reader hands over. The kernel is as fast on
/// these as on one 10M-row batch (see `benches/peers/prep_score.rs`).
pub const DEFAULT_BATCH_ROWS: usize = 1_000_000;

/// Weight of column `j`.
pub fn weight(j: usize) -> f64 {
    ((j % 7) as f64 - 3.0) / 10.0
}

/// Name of column `j`.
pub fn column_name(j: usize) -> String {
    format!("f{j}")
}

/// Bytes the apply phase moves: every input column read once, the score written once.
pub fn apply_bytes(rows: usize) -> u64 {
    (rows * N_COLUMNS * 4 + rows * 4) as u64
}

/// Bytes the fit phase reads.
pub fn fit_bytes(rows: usize) -> u64 {
    (rows * N_COLUMNS * 4) as u64
}

/// The library's SplitMix64 stream with the draws the workload needs.
#[derive(Clone, Debug)]
pub struct SplitMix64(fuseflow::data::Rng);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(fuseflow::data::Rng::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1), 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Fill `out` with `mean + scale * N(0, 1)` (Box-Muller, both outputs used).
    pub fn fill_normal(&mut self, out: &mut [f32], mean: f64, scale: f64) {
        for pair in out.chunks_mut(2) {
            let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
            let u2 = self.next_f64();
            let r = (-2.0 * u1.ln()).sqrt();
            let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
            pair[0] = (mean + scale * r * c) as f32;
            if let Some(second) = pair.get_mut(1) {
                *second = (mean + scale * r * s) as f32;
            }
        }
    }
}

/// The generated data, as record batches of at most `batch_rows` rows.
pub struct Dataset {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// Per-column generator parameters (mean, scale), for reference only.
    pub params: Vec<(f64, f64)>,
}

/// The schema: `f0..f31`, Float32, nullable.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        (0..N_COLUMNS)
            .map(|j| Field::new(column_name(j), DataType::Float32, true))
            .collect::<Vec<_>>(),
    ))
}

/// Generate `rows` rows in batches of `batch_rows` rows (0: one batch).
/// Columns are generated in parallel, one seeded stream each.
pub fn generate(rows: usize, batch_rows: usize) -> Dataset {
    let batch_rows = if batch_rows == 0 {
        rows.max(1)
    } else {
        batch_rows
    };
    let mut master = SplitMix64::new(SEED);
    let params: Vec<(f64, f64)> = (0..N_COLUMNS)
        .map(|_| (master.uniform(-10.0, 10.0), master.uniform(0.5, 5.0)))
        .collect();
    let seeds: Vec<u64> = (0..N_COLUMNS).map(|_| master.next_u64()).collect();
    let ranges: Vec<(usize, usize)> = (0..rows)
        .step_by(batch_rows)
        .map(|s| (s, batch_rows.min(rows - s)))
        .collect();

    // Column-major generation: one column at a time per thread, cut into chunks.
    let chunks: Vec<Vec<ArrayRef>> = (0..N_COLUMNS)
        .into_par_iter()
        .map(|j| {
            let mut rng = SplitMix64::new(seeds[j]);
            let mut values = vec![0f32; rows];
            rng.fill_normal(&mut values, params[j].0, params[j].1);
            let mask = (j < N_NULLABLE).then(|| {
                let nulls = (rows as f64 * NULL_FRACTION) as usize;
                let mut is_null = vec![false; rows];
                let mut placed = 0;
                while placed < nulls {
                    let i = (rng.next_u64() % rows as u64) as usize;
                    if !is_null[i] {
                        is_null[i] = true;
                        values[i] = f32::NAN;
                        placed += 1;
                    }
                }
                is_null
            });
            ranges
                .iter()
                .map(|&(start, len)| {
                    let nulls = mask.as_ref().map(|m| {
                        NullBuffer::from(
                            m[start..start + len]
                                .iter()
                                .map(|&n| !n)
                                .collect::<Vec<_>>(),
                        )
                    });
                    let vals = ScalarBuffer::from(values[start..start + len].to_vec());
                    Arc::new(Float32Array::new(vals, nulls)) as ArrayRef
                })
                .collect()
        })
        .collect();

    let schema = schema();
    let batches = (0..ranges.len())
        .map(|c| {
            let columns = chunks.iter().map(|col| col[c].clone()).collect();
            RecordBatch::try_new(schema.clone(), columns).expect("generated batch matches schema")
        })
        .collect();
    Dataset {
        schema,
        batches,
        rows,
        params,
    }
}

impl Dataset {
    /// The input of `column_stats`: every column with its chunks.
    pub fn stat_columns(&self) -> Vec<(String, Vec<ArrayRef>)> {
        (0..N_COLUMNS)
            .map(|j| {
                (
                    column_name(j),
                    self.batches.iter().map(|b| b.column(j).clone()).collect(),
                )
            })
            .collect()
    }

    /// `(value, valid)` of column `j` at global row `row`.
    pub fn value(&self, j: usize, mut row: usize) -> (f32, bool) {
        for b in &self.batches {
            if row < b.num_rows() {
                let a = b.column(j).as_primitive::<Float32Type>();
                return (a.value(row), a.is_valid(row));
            }
            row -= b.num_rows();
        }
        panic!("row out of range")
    }
}

/// Per-column mean and population std, as the apply phase uses them.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
}

impl Fitted {
    /// Means and standard deviations of column statistics, in column order.
    pub fn from_stats(stats: &[ColumnStats]) -> Fitted {
        Fitted {
            means: stats.iter().map(|s| s.mean).collect(),
            stds: stats.iter().map(|s| s.std()).collect(),
        }
    }
}

/// The fit phase: `column_stats` over all 32 columns.
pub fn fit(columns: &[(String, Vec<ArrayRef>)]) -> Fitted {
    Fitted::from_stats(&column_stats(columns).expect("column_stats"))
}

/// `clip((fill_null(f_j, m_j) - m_j) * (1 / s_j), -5, 5)`.
pub fn standardized(j: usize, mean: f64, std: f64) -> Expr {
    ((col(column_name(j)).fill_null(mean) - mean) * (1.0 / std)).clip(-CLIP, CLIP)
}

/// `sigmoid(b + w_0 z_0 + w_1 z_1 + ...)`, summed left to right from the bias
/// (the order polars and the op-by-op variant use).
pub fn score_expr(fitted: &Fitted) -> Expr {
    let mut logit = lit(BIAS);
    for j in 0..N_COLUMNS {
        logit = logit + standardized(j, fitted.means[j], fitted.stds[j]) * weight(j);
    }
    logit.sigmoid()
}

/// The apply as one projection with one output, `score`.
pub fn score_projection(schema: &SchemaRef, fitted: &Fitted) -> Projection {
    Projection::try_new(schema.clone(), &[("score".to_string(), score_expr(fitted))])
        .expect("score projection type-checks")
}

/// The one-projection apply, compiled.
pub fn fused_kernel(schema: &SchemaRef, fitted: &Fitted) -> CpuKernel {
    CpuKernel::compile(score_projection(schema, fitted))
}

/// The apply phase: build and compile the projection, evaluate it on every batch.
pub fn apply_fused(data: &Dataset, fitted: &Fitted) -> Vec<ArrayRef> {
    let kernel = fused_kernel(&data.schema, fitted);
    data.batches
        .iter()
        .map(|b| kernel.evaluate(b).expect("evaluate").column(0).clone())
        .collect()
}

fn single(schema: SchemaRef, name: &str, expr: Expr) -> CpuKernel {
    CpuKernel::compile(
        Projection::try_new(schema, &[(name.to_string(), expr)]).expect("single-op projection"),
    )
}

fn f32_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Float32, true))
            .collect::<Vec<_>>(),
    ))
}

/// The same computation as [`score_expr`], one operator per kernel call: every
/// step reads the previous step's materialized Arrow array (a one-column
/// batch `x`, or `acc` and `x` for the accumulation) and materializes its own.
/// The f32 operations and their order are those of the fused kernel, so the
/// scores are bit-identical.
pub struct OpByOp {
    fill: Vec<CpuKernel>,
    sub: Vec<CpuKernel>,
    div: Vec<CpuKernel>,
    clip: CpuKernel,
    mul: Vec<CpuKernel>,
    /// `b + x` (first term).
    first: CpuKernel,
    /// `acc + x`.
    add: CpuKernel,
    sigmoid: CpuKernel,
    acc_x: SchemaRef,
}

impl OpByOp {
    /// Compile every single-op kernel (1 + 4 * 32 + 4 kernels).
    pub fn compile(schema: &SchemaRef, fitted: &Fitted) -> Self {
        let x = f32_schema(&["x"]);
        let acc = f32_schema(&["acc"]);
        let acc_x = f32_schema(&["acc", "x"]);
        let per_column = |f: &dyn Fn(usize) -> (SchemaRef, Expr)| -> Vec<CpuKernel> {
            (0..N_COLUMNS)
                .map(|j| {
                    let (s, e) = f(j);
                    single(s, "x", e)
                })
                .collect()
        };
        OpByOp {
            fill: per_column(&|j| {
                (
                    schema.clone(),
                    col(column_name(j)).fill_null(fitted.means[j]),
                )
            }),
            sub: per_column(&|j| (x.clone(), col("x") - fitted.means[j])),
            div: per_column(&|j| (x.clone(), col("x") * (1.0 / fitted.stds[j]))),
            clip: single(x.clone(), "x", col("x").clip(-CLIP, CLIP)),
            mul: per_column(&|j| (x.clone(), col("x") * weight(j))),
            first: single(x.clone(), "acc", lit(BIAS) + col("x")),
            add: single(acc_x.clone(), "acc", col("acc") + col("x")),
            sigmoid: single(acc, "score", col("acc").sigmoid()),
            acc_x,
        }
    }

    /// Score one batch, materializing every intermediate.
    pub fn evaluate(&self, batch: &RecordBatch) -> ArrayRef {
        let mut acc: Option<RecordBatch> = None;
        for j in 0..N_COLUMNS {
            let x = self.fill[j].evaluate(batch).expect("fill_null");
            let x = self.sub[j].evaluate(&x).expect("sub");
            let x = self.div[j].evaluate(&x).expect("div");
            let x = self.clip.evaluate(&x).expect("clip");
            let x = self.mul[j].evaluate(&x).expect("mul");
            acc = Some(match acc {
                None => self.first.evaluate(&x).expect("bias add"),
                Some(acc) => {
                    let both = RecordBatch::try_new(
                        self.acc_x.clone(),
                        vec![acc.column(0).clone(), x.column(0).clone()],
                    )
                    .expect("acc/x batch");
                    self.add.evaluate(&both).expect("add")
                }
            });
        }
        let acc = acc.expect("at least one column");
        self.sigmoid
            .evaluate(&acc)
            .expect("sigmoid")
            .column(0)
            .clone()
    }
}

/// The op-by-op apply: compile the single-op kernels, score every batch.
pub fn apply_op_by_op(data: &Dataset, fitted: &Fitted) -> Vec<ArrayRef> {
    let ops = OpByOp::compile(&data.schema, fitted);
    data.batches.iter().map(|b| ops.evaluate(b)).collect()
}

/// Naive scalar f64 score of global row `row`, given the fitted parameters.
pub fn reference_score(data: &Dataset, fitted: &Fitted, row: usize) -> f64 {
    let mut logit = BIAS;
    for j in 0..N_COLUMNS {
        let (v, valid) = data.value(j, row);
        let x = if valid { f64::from(v) } else { fitted.means[j] };
        let z = ((x - fitted.means[j]) / fitted.stds[j]).clamp(-CLIP, CLIP);
        logit += weight(j) * z;
    }
    1.0 / (1.0 + (-logit).exp())
}

/// Naive two-pass f64 mean and population std of every column (single-threaded).
pub fn reference_fit(data: &Dataset) -> Fitted {
    let mut means = Vec::with_capacity(N_COLUMNS);
    let mut stds = Vec::with_capacity(N_COLUMNS);
    for j in 0..N_COLUMNS {
        let valid_values = || {
            data.batches.iter().flat_map(move |b| {
                let a = b.column(j).as_primitive::<Float32Type>();
                a.iter().flatten().map(f64::from)
            })
        };
        let (mut n, mut sum) = (0u64, 0.0f64);
        for x in valid_values() {
            n += 1;
            sum += x;
        }
        let mean = sum / n as f64;
        let m2: f64 = valid_values().map(|x| (x - mean) * (x - mean)).sum();
        means.push(mean);
        stds.push((m2 / n as f64).sqrt());
    }
    Fitted { means, stds }
}

/// The scores of all batches as one f32 vector (validity checked: no nulls expected).
pub fn flatten_scores(scores: &[ArrayRef]) -> Vec<f32> {
    let mut out = Vec::new();
    for a in scores {
        assert_eq!(a.null_count(), 0, "the score has no nulls");
        out.extend_from_slice(a.as_primitive::<Float32Type>().values());
    }
    out
}

/// Rows from the environment variable `var`, else `default`.
pub fn rows_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

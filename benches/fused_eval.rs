//! Fused evaluation versus op-by-op materialization on the "prep+score"
//! workload (see `benches/common/mod.rs`), plus the fit phase.
//!
//! ```sh
//! FUSEFLOW_BENCH_ROWS=10000000 cargo bench --bench fused_eval
//! ```
//!
//! - `apply/fused`: one projection, one `CpuKernel` (compile + evaluate per batch).
//! - `apply/op_by_op`: the same f32 arithmetic with one single-op kernel per
//!   operator, each materializing a full Arrow array that the next one reads;
//!   the only difference from `fused` is the materialized intermediates.
//! - `fit/column_stats`: mean and std of the 32 columns.
//!
//! Throughput is the bytes the workload must move: N*32*4 read + N*4 written for
//! apply, N*32*4 read for fit. Rows default to 10,000,000 (`FUSEFLOW_BENCH_ROWS`
//! overrides); under `cargo test --benches` (no `--bench` argument) the default
//! is 100,000 so the smoke run stays quick.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

use common::{
    DEFAULT_BATCH_ROWS, DEFAULT_ROWS, Dataset, Fitted, apply_bytes, apply_fused, apply_op_by_op,
    fit, fit_bytes, flatten_scores, generate, rows_from_env,
};

fn rows() -> usize {
    let benching = std::env::args().any(|a| a == "--bench");
    rows_from_env(
        "FUSEFLOW_BENCH_ROWS",
        if benching { DEFAULT_ROWS } else { 100_000 },
    )
}

fn setup() -> (Dataset, Fitted) {
    let rows = rows();
    let data = generate(rows, DEFAULT_BATCH_ROWS);
    let fitted = fit(&data.stat_columns());
    // Same f32 operations in the same order: the two variants must agree bit for bit.
    let fused = flatten_scores(&apply_fused(&data, &fitted));
    let op_by_op = flatten_scores(&apply_op_by_op(&data, &fitted));
    let mismatches = fused
        .iter()
        .zip(&op_by_op)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        mismatches, 0,
        "fused and op-by-op scores differ in {mismatches} of {rows} rows"
    );
    (data, fitted)
}

fn bench(c: &mut Criterion) {
    let (data, fitted) = setup();
    let rows = data.rows;

    let mut apply = c.benchmark_group("apply");
    apply
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        // Each iteration is long (0.1 s to seconds): flat sampling runs the
        // minimum number of iterations instead of a 1..n ramp.
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(apply_bytes(rows)));
    apply.bench_function(format!("fused/{rows}"), |b| {
        b.iter(|| apply_fused(black_box(&data), black_box(&fitted)))
    });
    // About 8x slower than fused (4 s an iteration at 10M rows on 2 cores): give
    // its 10 samples the time they need rather than a warning.
    apply.measurement_time(Duration::from_secs(40));
    apply.bench_function(format!("op_by_op/{rows}"), |b| {
        b.iter(|| apply_op_by_op(black_box(&data), black_box(&fitted)))
    });
    apply.finish();

    let columns = data.stat_columns();
    let mut fit_group = c.benchmark_group("fit");
    fit_group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(fit_bytes(rows)));
    fit_group.bench_function(format!("column_stats/{rows}"), |b| {
        b.iter(|| fit(black_box(&columns)))
    });
    fit_group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

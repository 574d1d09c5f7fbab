//! Cold run vs warm re-run of an unchanged pipeline with a workspace.
//!
//! The pipeline is the "prep+score" workload as steps (see
//! `benches/common/mod.rs`): read an Arrow IPC file of N rows x 32 Float32
//! columns, fit statistics, fill nulls with the means, z-score, and derive a
//! clipped linear score through a sigmoid. Printed, in one run on one machine:
//!
//! - **no workspace**: the pipeline in memory, nothing hashed or stored;
//! - **cold**: a fresh workspace, so every output is hashed and stored;
//! - **cold, materialized**: the same under `CachePolicy::Materialized`:
//!   fill, scale and score run fused, and only the chain's end is stored;
//! - **warm**: the same pipeline again: every step is a cache hit;
//! - **hash source**: `hash_file` of the input alone, the floor a warm run
//!   cannot go below (a changed file must be noticed).
//!
//! ```sh
//! cargo bench --bench reuse                          # 10,000,000 rows
//! FUSEFLOW_BENCH_ROWS=1000000 cargo bench --bench reuse
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) it does one quick
//! pass on 100,000 rows. Times are the best of three for each line.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{DEFAULT_BATCH_ROWS, DEFAULT_ROWS, N_COLUMNS, column_name, generate, weight};
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::data::hash_file;
use fuseflow::ir::{Expr, col, lit};
use fuseflow::pipeline::io::Read;
use fuseflow::pipeline::prep::{Derive, FillNull, FillValue, FitStats, Scale, ScaleMethod};
use fuseflow::{CachePolicy, CacheUse, Pipeline, RunOptions, Table, Workspace};

fn pipeline(source: &std::path::Path) -> Pipeline {
    let columns: Vec<String> = (0..N_COLUMNS).map(column_name).collect();
    let linear = (0..N_COLUMNS).fold(lit(0.1), |acc: Expr, j| {
        acc + lit(weight(j)) * col(column_name(j)).clip(-5.0, 5.0)
    });
    let mut p = Pipeline::new("prep-score");
    p.add("raw", Read::new(source));
    p.add("stats", FitStats::new(columns.clone()))
        .input("data", "raw");
    p.add("filled", FillNull::new(columns, FillValue::Mean))
        .input("data", "raw")
        .input("stats", "stats");
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .input("data", "filled")
        .input("stats", "stats");
    p.add("scored", Derive::new([("score", linear.sigmoid())]))
        .input("data", "scaled");
    p
}

fn best_of(repeats: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..repeats).map(|_| f()).min().unwrap_or_default()
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let rows = if benching {
        common::rows_from_env("FUSEFLOW_BENCH_ROWS", DEFAULT_ROWS)
    } else {
        100_000
    };
    let repeats = if benching { 3 } else { 1 };
    let dir = tempfile::tempdir().expect("temporary directory");
    let source = dir.path().join("prep_score.arrow");
    let data = generate(rows, DEFAULT_BATCH_ROWS);
    let table = Table::try_new(data.schema.clone(), data.batches).expect("table");
    write_table(&table, &source, FileFormat::ArrowFile).expect("write the source");
    drop(table);
    let bytes = std::fs::metadata(&source).expect("source").len();
    let p = pipeline(&source);

    let timed = |options: &RunOptions| {
        let start = Instant::now();
        let run = p.run_with(options).expect("run");
        (start.elapsed(), run)
    };
    let plain = best_of(repeats, || timed(&RunOptions::default()).0);
    let mut workspaces = 0;
    let mut cold = |cache: CachePolicy| {
        best_of(repeats, || {
            workspaces += 1;
            let ws =
                Workspace::open(dir.path().join(format!("ws{workspaces}"))).expect("workspace");
            let options = RunOptions {
                cache,
                ..RunOptions::default().with_workspace(Arc::new(ws))
            };
            let (t, run) = timed(&options);
            assert!(run.steps.iter().all(|s| s.cache == CacheUse::Miss));
            t
        })
    };
    let cold_every_step = cold(CachePolicy::EveryStep);
    let cold_materialized = cold(CachePolicy::Materialized);
    let warm = best_of(repeats, || {
        // A new process's view: no memory tier, the workspace opened afresh.
        let ws = Workspace::open(dir.path().join("ws1")).expect("workspace");
        let (t, run) = timed(&RunOptions::default().with_workspace(Arc::new(ws)));
        assert!(
            run.steps
                .iter()
                .all(|s| matches!(s.cache, CacheUse::Hit { .. }))
        );
        t
    });
    let hash = best_of(repeats, || {
        let start = Instant::now();
        hash_file(&source).expect("hash");
        start.elapsed()
    });

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "reuse: {rows} rows x {N_COLUMNS} f32 columns, source {:.0} MiB (Arrow IPC), best of {repeats}",
        bytes as f64 / (1u64 << 20) as f64
    );
    println!("| run | ms | vs hashing the source |");
    println!("|---|---:|---:|");
    for (name, t) in [
        ("no workspace (in memory)", plain),
        (
            "cold (fresh workspace: hash + store every output)",
            cold_every_step,
        ),
        (
            "cold, `--cache materialized` (chain fused, its end stored)",
            cold_materialized,
        ),
        ("warm (unchanged: every step a cache hit)", warm),
        ("hash the source file only", hash),
    ] {
        println!("| {name} | {:.1} | {:.2}x |", ms(t), ms(t) / ms(hash));
    }
}

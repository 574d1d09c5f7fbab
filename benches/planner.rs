//! The "prep+score" workload (see `benches/common/mod.rs`) as a whole
//! pipeline: read a Parquet file, fit statistics, fill nulls with the means,
//! scale, score with the workload's linear model (a derived column), write
//! the scores; under `auto` placement, forced CPU, and each GPU that opens
//! forced (a software adapter too, labelled so: `auto` must leave it alone).
//! `auto` should never be slower than the better of CPU and GPU by more
//! than noise.
//!
//! ```sh
//! FUSEFLOW_BENCH_ROWS=2000000 cargo bench --bench planner
//! ```

#[path = "common/mod.rs"]
mod common;

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use fuseflow::backend::DeviceSet;
use fuseflow::backend::{DeviceChoice, DeviceKind};
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::ir::{Expr, col, lit};
use fuseflow::pipeline::Pipeline;
use fuseflow::pipeline::Table;
use fuseflow::pipeline::io::{Read, Write};
use fuseflow::pipeline::prep::{Derive, FillNull, FillValue, FitStats, Scale, ScaleMethod};
use fuseflow::{Error, RunOptions};

use common::{BIAS, CLIP, N_COLUMNS, N_NULLABLE, column_name, generate, weight};

/// `sigmoid(b + sum_j w_j * clip(f_j, -5, 5))` over the scaled columns.
fn score() -> Expr {
    let sum = (0..N_COLUMNS).fold(lit(BIAS), |acc, j| {
        acc + lit(weight(j)) * col(column_name(j)).clip(lit(-CLIP), lit(CLIP))
    });
    sum.sigmoid()
}

fn pipeline(dir: &Path) -> Pipeline {
    let columns: Vec<String> = (0..N_COLUMNS).map(column_name).collect();
    let nullable: Vec<String> = (0..N_NULLABLE).map(column_name).collect();
    let mut p = Pipeline::new("prep_score");
    p.add("read", Read::new(dir.join("data.parquet")));
    p.add("stats", FitStats::new(columns)).input("data", "read");
    p.add("filled", FillNull::new(nullable, FillValue::Mean))
        .inputs(["read", "stats"]);
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["filled", "stats"]);
    p.add("scored", Derive::new([("score", score())]))
        .input("data", "scaled");
    p.add("write", Write::new(dir.join("scores.parquet")))
        .input("data", "scored");
    p
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = generate(common::rows_from_env("FUSEFLOW_BENCH_ROWS", 1_000_000), 0);
    let table = Table::try_new(data.schema.clone(), data.batches).expect("the workload");
    write_table(
        &table,
        &dir.path().join("data.parquet"),
        FileFormat::Parquet,
    )
    .expect("the input file");
    let p = pipeline(dir.path());
    let devices = DeviceSet::probe([DeviceChoice::Auto]);
    let mut choices = vec![
        ("auto".to_string(), DeviceChoice::Auto),
        ("cpu".to_string(), DeviceChoice::On(DeviceKind::Cpu)),
    ];
    for gpu in devices.hardware_gpus().chain(devices.software_gpus()) {
        let info = gpu.info();
        let choice = info.kind.name().parse().expect("a device kind");
        let label = if info.software {
            format!("{} (software)", info.kind.name())
        } else {
            info.kind.name().to_string()
        };
        choices.push((label, choice));
    }
    let mut group = c.benchmark_group("planner_prep_score");
    group.sample_size(10);
    for (label, device) in choices {
        let options = RunOptions {
            device,
            devices: Some(devices.clone()),
            ..RunOptions::default()
        };
        group.bench_function(&label, |b| {
            b.iter(|| p.run_with(&options).expect("the pipeline runs"))
        });
    }
    group.finish();
    let plan: Result<_, Error> = p.plan(&RunOptions {
        devices: Some(devices),
        ..RunOptions::default()
    });
    if let Ok(plan) = plan {
        eprintln!("{plan}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

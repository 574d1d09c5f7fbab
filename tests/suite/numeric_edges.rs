//! Numeric edge cases through whole pipelines and every trainer (on every
//! device this machine has): empty batches between full ones, a handful of
//! rows, constant, all-null, subnormal, huge and infinite values. Each
//! either computes what the same data computes without the oddity, or fails
//! with an error naming the step and the column. The same edges through
//! statistics, scaling and every float function on each device are in
//! `parity.rs`.

use std::sync::Arc;

use arrow_array::{Array, BooleanArray, Float64Array, RecordBatch};

use crate::common::{assert_msg, f64_column, table};
use fuseflow::backend::{DeviceChoice, DeviceKind};
use fuseflow::exec::RunOptions;
use fuseflow::ir::col;
use fuseflow::ml::logistic::LogisticConfig;
use fuseflow::ml::mlp::MlpConfig;
use fuseflow::pipeline::io::MemorySource;
use fuseflow::pipeline::models::{Task, TrainLinear, TrainLogistic, TrainMlp, model_from_table};
use fuseflow::pipeline::prep::{Filter, FitStats, Scale, ScaleMethod};
use fuseflow::{Pipeline, Table, datasets};

/// Every output of the churn pipeline (prepare, train, score, evaluate).
const OUTPUTS: &[&str] = &[
    "split.train",
    "split.test",
    "features",
    "stats",
    "categories",
    "filled",
    "scaled",
    "encoded",
    "model",
    "scores",
    "evaluation.metrics",
];

fn outputs(data: Table) -> Vec<RecordBatch> {
    let run = datasets::churn_pipeline(data).run().unwrap();
    (OUTPUTS.iter())
        .map(|name| run.output(name).unwrap().concat().unwrap())
        .collect()
}

/// Empty batches before, between and after full ones change nothing: every
/// output of a whole pipeline, the model included, is bit for bit the one
/// of the same batches without them.
#[test]
fn empty_batches_between_full_ones_change_no_output() {
    let data = datasets::customers(3_000, 4);
    let full = [
        data.slice(0, 1_000),
        data.slice(1_000, 1),
        data.slice(1_001, 1_999),
    ];
    let empty = data.slice(0, 0);
    let with_empty = vec![
        empty.clone(),
        full[0].clone(),
        empty.clone(),
        empty.clone(),
        full[1].clone(),
        full[2].clone(),
        empty,
    ];
    let plain = outputs(Table::try_new(data.schema(), full.to_vec()).unwrap());
    let padded = outputs(Table::try_new(data.schema(), with_empty).unwrap());
    for ((name, a), b) in OUTPUTS.iter().zip(&plain).zip(&padded) {
        assert_eq!(a, b, "output {name}");
    }
}

/// A pipeline over too few rows to train on fails naming the step and why,
/// for every size from no rows up; none panics.
#[test]
fn too_few_rows_fail_naming_the_step() {
    for rows in [0, 1, 2, 3] {
        let data = datasets::customers(rows, 9);
        let err = match datasets::churn_pipeline(Table::from_batch(data)).run() {
            Ok(_) => panic!("{rows} rows: a model trained on them"),
            Err(e) => e,
        };
        let message = err.to_string();
        assert!(
            OUTPUTS
                .iter()
                .any(|step| message.contains(&format!("'{}'", step.split('.').next().unwrap()))),
            "{rows} rows: the error names no step: {message}"
        );
    }
}

/// Subnormal values keep their magnitude through statistics (no flush to
/// zero: the mean is the exact one); their spread underflows f64 to zero,
/// so z-scaling treats the column as constant and only centres it.
#[test]
fn subnormal_values_keep_their_mean_and_are_centred() {
    let values = [5e-324, 1e-310, 2.5e-308, -1e-315, 0.0, 4e-320];
    let data = table(vec![(
        "x",
        Arc::new(Float64Array::from(values.to_vec())) as _,
    )]);
    let mut p = Pipeline::new("subnormal");
    p.add("raw", MemorySource::new(data));
    p.add("stats", FitStats::new(["x"])).input("data", "raw");
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["raw", "stats"]);
    let run = p.run().unwrap();
    // Sums of subnormals are exact (fixed point below f64::MIN_POSITIVE).
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!(mean != 0.0 && mean.abs() < f64::MIN_POSITIVE);
    assert_eq!(
        f64_column(run.output("stats").unwrap(), "mean"),
        [Some(mean)]
    );
    let scaled = f64_column(run.output("scaled").unwrap(), "x");
    let centred: Vec<Option<f64>> = values.iter().map(|v| Some(v - mean)).collect();
    assert_eq!(scaled, centred);
}

/// An infinity, or values whose squares overflow f64, in a column to be
/// fitted is an error naming the step and the column and what to do, not
/// a scaled column of infinities and NaN.
#[test]
fn infinities_and_overflowing_values_are_refused_naming_the_column() {
    for (values, says) in [
        (vec![1.0, f64::INFINITY, 3.0], "infinities"),
        (vec![1.0, f64::NEG_INFINITY], "infinities"),
        (vec![-1e300, 1e300, 0.0], "too large"),
    ] {
        let data = table(vec![("x", Arc::new(Float64Array::from(values)) as _)]);
        let mut p = Pipeline::new("infinite");
        p.add("raw", MemorySource::new(data));
        p.add("stats", FitStats::new(["x"])).input("data", "raw");
        p.add("scaled", Scale::new(ScaleMethod::ZScore))
            .inputs(["raw", "stats"]);
        match p.run() {
            Err(err) => assert_msg(&err, &["'stats'", "'x'", says]),
            Ok(run) => {
                let scaled = run.output("scaled").unwrap().concat().unwrap();
                panic!("scaled {:?}", scaled.column(0).to_data());
            }
        }
    }
}

/// The devices to train on: the CPU, and each GPU present with f64 work
/// kept in f64 (on the CPU where the GPU lacks it) or narrowed to f32.
fn training_devices() -> Vec<(DeviceChoice, bool)> {
    let mut all = vec![(DeviceChoice::On(DeviceKind::Cpu), false)];
    let gpus = [
        (DeviceKind::Wgpu, crate::common::devices::wgpu().is_some()),
        (DeviceKind::Cuda, crate::common::devices::cuda().is_some()),
    ];
    for (kind, _) in gpus.into_iter().filter(|(_, present)| *present) {
        all.extend([false, true].map(|allow| (DeviceChoice::On(kind), allow)));
    }
    all
}

/// A trainer step reading `x` and the given feature.
type Trainer = fn(&str) -> Arc<dyn fuseflow::Step>;

/// Every trainer, on one row, on a constant, subnormal, all-null or
/// infinite feature: a model with finite weights or an error naming the
/// step (and, for a bad column, the column); none panics.
#[test]
fn every_trainer_on_edge_case_features_trains_finite_weights_or_names_the_problem() {
    let rows = 40;
    let x: Vec<f64> = (0..rows).map(|i| (i as f64 * 0.37).sin()).collect();
    let label: Vec<bool> = (0..rows).map(|i| (i * 7) % 5 < 2).collect();
    let target: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
    let edges: [(&str, Vec<Option<f64>>); 5] = [
        ("constant", vec![Some(3.0); rows]),
        (
            "subnormal",
            (0..rows).map(|i| Some(i as f64 * 5e-324)).collect(),
        ),
        ("all_null", vec![None; rows]),
        (
            "infinite",
            (0..rows)
                .map(|i| Some(if i == 7 { f64::INFINITY } else { 1.0 }))
                .collect(),
        ),
        (
            "huge",
            (0..rows)
                .map(|i| Some(if i % 2 == 0 { 1e300 } else { -1e300 }))
                .collect(),
        ),
    ];
    let trainers: Vec<(&str, Trainer)> = vec![
        ("linear", |f| {
            Arc::new(TrainLinear::new(["x", f], "target", 0.1))
        }),
        ("logistic", |f| {
            Arc::new(TrainLogistic::new(
                ["x", f],
                "label",
                LogisticConfig::default(),
            ))
        }),
        ("mlp", |f| {
            Arc::new(TrainMlp::new(
                ["x", f],
                "label",
                Task::Classification,
                MlpConfig::default(),
            ))
        }),
    ];
    let devices = training_devices();
    let (mut trained, mut refused, mut on_gpu) = (0, 0, 0);
    for (trainer, step) in &trainers {
        for (feature, values) in &edges {
            for rows in [1, x.len()] {
                let data = table(vec![
                    ("x", Arc::new(Float64Array::from(x[..rows].to_vec())) as _),
                    (
                        feature,
                        Arc::new(Float64Array::from(values[..rows].to_vec())) as _,
                    ),
                    (
                        "label",
                        Arc::new(BooleanArray::from(label[..rows].to_vec())) as _,
                    ),
                    (
                        "target",
                        Arc::new(Float64Array::from(target[..rows].to_vec())) as _,
                    ),
                ]);
                let mut p = Pipeline::new("edges");
                p.add("raw", MemorySource::new(data));
                p.add_shared("train", step(feature)).input("data", "raw");
                for &(device, allow_f32) in &devices {
                    let case = format!(
                        "{trainer} on {rows} rows with a {feature} feature on {device:?} (f32 allowed: {allow_f32})"
                    );
                    let options = RunOptions {
                        device,
                        allow_f32,
                        ..RunOptions::default()
                    };
                    match p.run_with(&options) {
                        Ok(run) => {
                            trained += 1;
                            let train = run.steps.iter().find(|s| s.name == "train").unwrap();
                            on_gpu += usize::from(train.device != "cpu");
                            let model =
                                model_from_table("train", run.output("train").unwrap()).unwrap();
                            for layer in &model.network.layers {
                                assert!(
                                    layer
                                        .weights
                                        .iter()
                                        .chain(&layer.bias)
                                        .all(|w| w.is_finite()),
                                    "{case}: weights {:?}",
                                    layer.weights
                                );
                            }
                        }
                        Err(err) => {
                            refused += 1;
                            let message = err.to_string();
                            assert!(message.contains("'train'"), "{case}: {message}");
                            if matches!(*feature, "all_null" | "infinite") && rows > 1 {
                                assert!(message.contains(feature), "{case}: {message}");
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "trainers on edge cases: {trained} trained finite weights ({on_gpu} on a GPU), {refused} refused naming the step"
    );
    assert!(trained > 0 && refused > 0);
    assert!(
        on_gpu > 0 || devices.len() == 1,
        "no model trained on a GPU"
    );
}

/// A filter over NaN, infinities, subnormals and nulls keeps exactly the
/// rows whose comparison is true (NaN compares false, null drops), and
/// quartiles of one row, of subnormals and of a constant column are that
/// row's value, exact.
#[test]
fn filters_and_quartiles_on_edge_values() {
    let values = vec![
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
        Some(5e-324),
        None,
        Some(-0.0),
        Some(1.0),
    ];
    let data = table(vec![("x", Arc::new(Float64Array::from(values)) as _)]);
    let mut p = Pipeline::new("filtered");
    p.add("raw", MemorySource::new(data));
    p.add("positive", Filter::new(col("x").gt(0.0)))
        .input("data", "raw");
    let run = p.run().unwrap();
    let kept = f64_column(run.output("positive").unwrap(), "x");
    assert_eq!(kept, [Some(f64::INFINITY), Some(5e-324), Some(1.0)]);

    for (what, values, median) in [
        ("one row", vec![2.5], 2.5),
        ("subnormals", vec![5e-324, 5e-324, 5e-324], 5e-324),
        ("a constant", vec![-7.0; 5], -7.0),
    ] {
        let data = table(vec![("x", Arc::new(Float64Array::from(values)) as _)]);
        let mut p = Pipeline::new("quartiles");
        p.add("raw", MemorySource::new(data));
        p.add("stats", FitStats::new(["x"]).with_quantiles())
            .input("data", "raw");
        let stats = p.run().unwrap();
        let stats = stats.output("stats").unwrap();
        for column in ["q1", "median", "q3"] {
            assert_eq!(
                f64_column(stats, column),
                [Some(median)],
                "{what}: {column}"
            );
        }
    }
}

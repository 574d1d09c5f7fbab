//! Whole pipelines give the same results fused and unfused, and on every
//! device: the shipped spec file and a prep + train + score + evaluate
//! pipeline run on the CPU fused (the reference: chains of row-local steps
//! as one kernel, each step's expressions as one kernel), then unfused
//! (`RunOptions::fuse = false`: every step on its own, its expressions op by
//! op), then on each GPU backend present, fused and unfused, and with f64
//! work narrowed to f32 where the device lacks f64. Every output that both
//! runs materialized is compared (outputs inside a fused chain exist only in
//! unfused runs).
//!
//! Tolerances: on the CPU, unfused evaluation rounds the same operations in
//! the same order, so it must agree bit for bit. On a GPU, each f32 operation
//! agrees with the CPU's within the conformance suite's bounds (2e-5
//! relative), but a pipeline compounds them: statistics fitted on the device
//! move the centre and scale of every standardized column, and a model trained
//! on those columns moves with them. Floats must therefore agree within
//! `1e-3 * max(1, |x|)`, which still catches any wrong operator, constant,
//! null or row (those differ by far more); everything else exactly.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use crate::common::devices;
use fuseflow::backend::{DeviceChoice, DeviceKind};
use fuseflow::exec::{RunOptions, RunOutput};
use fuseflow::pipeline::spec;
use fuseflow::{Pipeline, Table, datasets};

/// How a pipeline is run.
#[derive(Clone, Copy, Debug)]
struct Setup {
    device: DeviceChoice,
    fuse: bool,
    allow_f32: bool,
}

impl Setup {
    fn run(self, pipeline: &Pipeline) -> RunOutput {
        let options = RunOptions {
            device: self.device,
            fuse: self.fuse,
            allow_f32: self.allow_f32,
            ..RunOptions::default()
        };
        pipeline
            .run_with(&options)
            .unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

const CPU_FUSED: Setup = Setup {
    device: DeviceChoice::On(DeviceKind::Cpu),
    fuse: true,
    allow_f32: false,
};

/// The setups to compare with the fused CPU run: unfused CPU always; each GPU
/// backend present fused, unfused, and with f64 narrowed to f32.
fn setups() -> Vec<Setup> {
    let mut all = vec![Setup {
        fuse: false,
        ..CPU_FUSED
    }];
    let mut gpus = Vec::new();
    if devices::wgpu().is_some() {
        gpus.push(DeviceChoice::On(DeviceKind::Wgpu));
    }
    if devices::cuda().is_some() {
        gpus.push(DeviceChoice::On(DeviceKind::Cuda));
    }
    for device in gpus {
        for (fuse, allow_f32) in [(true, false), (false, false), (true, true)] {
            all.push(Setup {
                device,
                fuse,
                allow_f32,
            });
        }
    }
    all
}

/// Every output of `got` equals the reference's: bit for bit for an unfused
/// CPU run, within the stated tolerance on a GPU.
fn assert_same_outputs(setup: Setup, got: &RunOutput, want: &RunOutput) {
    let exact = setup.device == DeviceChoice::On(DeviceKind::Cpu);
    let mut names = want.output_names();
    names.sort_unstable();
    let mut got_names = got.output_names();
    got_names.sort_unstable();
    assert_eq!(got_names, names, "{setup:?}: outputs");
    let mut compared = 0;
    for name in names {
        // An output inside a fused chain exists only when the run was unfused.
        let (Ok(g), Ok(w)) = (got.output(name), want.output(name)) else {
            continue;
        };
        compared += 1;
        let (g, w) = (g.concat().unwrap(), w.concat().unwrap());
        let what = format!("{setup:?}: output '{name}'");
        if exact {
            assert_eq!(g, w, "{what}");
        } else {
            assert_close(&g, &w, &what);
        }
    }
    assert!(
        compared + fused_away(want) >= want.output_names().len(),
        "{setup:?}: only {compared} outputs compared"
    );
    let ran_on = |run: &RunOutput| -> Vec<String> {
        run.steps
            .iter()
            .filter(|s| s.device != "cpu")
            .map(|s| s.name.clone())
            .collect()
    };
    if !exact {
        assert!(
            !ran_on(got).is_empty(),
            "{setup:?}: no step was placed on the GPU"
        );
    }
}

fn assert_close(got: &RecordBatch, want: &RecordBatch, what: &str) {
    // Field metadata holds each column's lineage expression, with the fitted
    // constants in it: those differ within the tolerance too.
    let bare = |b: &RecordBatch| -> Vec<(String, DataType, bool)> {
        b.schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect()
    };
    assert_eq!(bare(got), bare(want), "{what}: schema");
    assert_eq!(got.num_rows(), want.num_rows(), "{what}: rows");
    for (field, (g, w)) in want
        .schema()
        .fields()
        .iter()
        .zip(got.columns().iter().zip(want.columns()))
    {
        assert_array_close(g, w, &format!("{what}, column '{}'", field.name()));
    }
}

/// Floats within the tolerance (inside lists too, such as a model's
/// weights), everything else and all validity exactly.
fn assert_array_close(g: &ArrayRef, w: &ArrayRef, what: &str) {
    assert_eq!(g.null_count(), w.null_count(), "{what}: nulls");
    let valid = |a: &dyn Array| (0..a.len()).map(|r| a.is_valid(r)).collect::<Vec<_>>();
    assert_eq!(valid(g.as_ref()), valid(w.as_ref()), "{what}: validity");
    let value = |a: &dyn Array, row: usize| match a.data_type() {
        DataType::Float32 => f64::from(a.as_primitive::<Float32Type>().value(row)),
        _ => a.as_primitive::<Float64Type>().value(row),
    };
    match w.data_type() {
        DataType::Float32 | DataType::Float64 => {
            for row in (0..w.len()).filter(|&r| w.is_valid(r)) {
                let (x, y) = (value(g.as_ref(), row), value(w.as_ref(), row));
                let agree = (x.is_nan() && y.is_nan())
                    || x == y
                    || (x - y).abs() <= 1e-3 * y.abs().max(1.0);
                assert!(agree, "{what}, row {row}: {x} vs {y}");
            }
        }
        DataType::List(_) => {
            let (g, w) = (g.as_list::<i32>(), w.as_list::<i32>());
            assert_eq!(g.offsets(), w.offsets(), "{what}: list lengths");
            assert_array_close(g.values(), w.values(), &format!("{what} (list values)"));
        }
        _ => assert_eq!(g, w, "{what}"),
    }
}

/// Steps whose outputs a run computed only inside fused chains, never held
/// (fetching them from the run computes them again).
fn fused_away(run: &RunOutput) -> usize {
    run.plan
        .nodes
        .iter()
        .filter(|n| matches!(n.materialized, fuseflow::plan::Materialized::Fused { .. }))
        .count()
}

fn check(pipeline: &Pipeline) {
    let reference = CPU_FUSED.run(pipeline);
    // The reference fuses across steps, so the comparison covers fusion of
    // whole chains as well as of each step's expressions.
    assert!(
        !reference.plan.groups.is_empty() && fused_away(&reference) > 0,
        "the reference run fused no chain of steps:\n{}",
        reference.plan
    );
    for setup in setups() {
        assert_same_outputs(setup, &setup.run(pipeline), &reference);
    }
}

#[test]
fn the_shipped_spec_agrees_fused_unfused_and_on_every_device() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prep.toml");
    check(&spec::load(&spec).unwrap());
}

/// Prepare, train, score and evaluate, as `examples/train_and_score.rs`
/// does, on a few thousand rows.
#[test]
fn a_training_pipeline_agrees_fused_unfused_and_on_every_device() {
    let p = datasets::churn_pipeline(Table::from_batch(datasets::customers(4001, 3)));
    check(&p);
}

/// Columns at the edges of the number line, each batch layout at once
/// (empty batches between full ones, a batch of one row): fitted, filled,
/// scaled and derived on every device as on the CPU. The fitted columns
/// hold subnormals (f64 and f32), a constant, nearly all nulls, values
/// beyond f32's range (1e39, which a device narrowing f64 to f32 must not
/// turn into infinities) and f32 values whose squares overflow f32; the
/// derived ones apply every float function to NaN, infinities, signed
/// zeros, subnormals and nulls. A GPU may flush subnormals to zero: those
/// results lie within the absolute part of the tolerance.
#[test]
fn numeric_edge_columns_agree_fused_unfused_and_on_every_device() {
    use std::sync::Arc;

    use arrow_array::{Float32Array, Float64Array};
    use fuseflow::ir::parse_expr;
    use fuseflow::pipeline::io::MemorySource;
    use fuseflow::pipeline::prep::{Derive, FillNull, FillValue, FitStats, Scale, ScaleMethod};

    let rows = 3_001;
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        5e-324,
        -1e-310,
        1.0,
        -2.5,
        1e300,
    ];
    let f64s = |f: &dyn Fn(usize) -> Option<f64>| -> ArrayRef {
        Arc::new((0..rows).map(f).collect::<Float64Array>())
    };
    let f32s = |f: &dyn Fn(usize) -> Option<f32>| -> ArrayRef {
        Arc::new((0..rows).map(f).collect::<Float32Array>())
    };
    let wave = |i: usize| ((i as f64) * 0.37).sin();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("subnormal", f64s(&|i| Some(wave(i) * 1e-310))),
        ("subnormal32", f32s(&|i| Some(wave(i) as f32 * 1e-40))),
        ("constant", f64s(&|_| Some(3.0))),
        ("sparse", f64s(&|i| (i % 97 == 5).then(|| wave(i)))),
        ("beyond_f32", f64s(&|i| Some(1e39 * (1.0 + wave(i))))),
        (
            "square_overflows_f32",
            f32s(&|i| Some(3e38 * wave(i) as f32)),
        ),
        (
            "specials",
            f64s(&|i| (i % 11 != 10).then(|| specials[i % 11 % 10])),
        ),
        (
            "specials32",
            f32s(&|i| (i % 13 != 12).then(|| specials[i % 13 % 10] as f32)),
        ),
    ];
    let data = crate::common::batch(columns);
    let batches = [0, 1_000, 0, 1, 1_999, 0].iter().scan(0, |start, &len| {
        let batch = data.slice(*start, len);
        *start += len;
        Some(batch)
    });
    let data = Table::try_new(data.schema(), batches.collect()).unwrap();
    let fitted = [
        "subnormal",
        "subnormal32",
        "constant",
        "sparse",
        "beyond_f32",
        "square_overflows_f32",
    ];
    let derived = [
        ("abs", "abs(specials)"),
        ("sqrt", "sqrt(specials)"),
        ("exp", "exp(specials)"),
        ("log", "log(specials)"),
        ("log1p", "log1p(specials32)"),
        ("sigmoid", "sigmoid(specials32 * 1e3)"),
        ("pow", "pow(specials, 0.5)"),
        ("minimum", "minimum(specials, specials32)"),
        ("clip", "clip(specials, -1.0, 1.0)"),
        ("ratio", "specials / (specials32 - specials32)"),
        ("tiny", "subnormal * 1e-10 + subnormal32"),
        (
            "picked",
            "if_else(specials > 0.0, specials, fill_null(specials32, -1.0))",
        ),
    ];
    let mut p = Pipeline::new("edges");
    p.add("raw", MemorySource::new(data));
    p.add("stats", FitStats::new(fitted)).input("data", "raw");
    p.add("filled", FillNull::new(fitted, FillValue::Mean))
        .inputs(["raw", "stats"]);
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["filled", "stats"]);
    let expressions = derived.map(|(name, text)| (name, parse_expr(text).unwrap()));
    p.add("derived", Derive::new(expressions))
        .input("data", "scaled");
    check(&p);

    // What left the device for the CPU, and why, is in the step's notes.
    if devices::wgpu().is_some() {
        let narrowing = Setup {
            device: DeviceChoice::On(DeviceKind::Wgpu),
            fuse: true,
            allow_f32: true,
        };
        let run = narrowing.run(&p);
        let notes = |step: &str| {
            let report = run.steps.iter().find(|s| s.name == step).unwrap();
            report.notes.join("\n")
        };
        for column in ["beyond_f32", "square_overflows_f32"] {
            let says = format!("statistics of '{column}' computed on the CPU");
            assert!(notes("stats").contains(&says), "{}", notes("stats"));
        }
        assert!(
            notes("derived").contains("is beyond f32's range"),
            "{}",
            notes("derived")
        );
    }
}

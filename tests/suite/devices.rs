//! Placing work on devices: the fallbacks to the CPU (through a backend that
//! fails on purpose, for kernels and for training), pinning in spec files, and what runs record.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{ArrayRef, RecordBatch};

use crate::common::faulty::{Faulty, TRAIN_KERNELS_BEFORE_FAILING};
use crate::common::*;
use fuseflow::DeviceFailure;
use fuseflow::backend::{Device, DeviceChoice, DeviceKind, Notes};
use fuseflow::ir::{Projection, col, lit};
use fuseflow::ml::logistic::LogisticConfig;
use fuseflow::ml::mlp::MlpConfig;
use fuseflow::pipeline::models::{Task, TrainLogistic, TrainMlp};
use fuseflow::{Step, StepContext, Table};

fn data(rows: usize) -> RecordBatch {
    let mut rng = Rng::new(11);
    batch(vec![
        ("x", f32_array(&gen_f32(&mut rng, rows))),
        ("y", f64_array(&gen_f64(&mut rng, rows))),
    ])
}

fn score(schema: &RecordBatch) -> Projection {
    let e = (col("x").fill_null(lit(0.5)) * lit(2.0)).clip(lit(-5.0), lit(5.0));
    Projection::try_new(schema.schema(), &[("z".into(), e)]).unwrap()
}

fn on_cpu(batch: &RecordBatch, p: &Projection) -> RecordBatch {
    Device::cpu()
        .kernel(p.clone())
        .evaluate(batch, &Notes::default())
        .unwrap()
}

/// Evaluate `p` through `device`, check the result is the CPU's, and return
/// the notes the evaluation left.
fn evaluate_on(device: &Device, batch: &RecordBatch, p: &Projection) -> Vec<String> {
    let notes = Notes::default();
    let out = device.kernel(p.clone()).evaluate(batch, &notes).unwrap();
    assert_eq!(out, on_cpu(batch, p));
    notes.take()
}

#[test]
fn out_of_memory_splits_the_batch_then_succeeds_on_the_device() {
    let batch = data(300_000);
    let p = score(&batch);
    let faulty = Faulty::new(100_000, None);
    let notes = evaluate_on(&Device::new(faulty.clone()), &batch, &p);
    let rows = faulty.launched_rows.lock().unwrap().clone();
    assert_eq!(
        rows.iter().sum::<usize>(),
        300_000,
        "every row ran on the device: {rows:?}"
    );
    assert!(rows.iter().all(|&r| r <= 100_000), "{rows:?}");
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn out_of_memory_even_in_pieces_runs_on_the_cpu_with_a_note() {
    let batch = data(200_000);
    let p = score(&batch);
    let faulty = Faulty::new(10, None);
    let notes = evaluate_on(&Device::new(faulty.clone()), &batch, &p);
    // The whole batch, then its first half, which is too small to split again.
    assert_eq!(faulty.launches(), 2);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("out of memory"), "{notes:?}");
}

#[test]
fn compile_and_launch_failures_run_on_the_cpu_with_a_note() {
    for failure in [DeviceFailure::Compile, DeviceFailure::Launch] {
        let batch = data(1000);
        let p = score(&batch);
        let faulty = Faulty::new(usize::MAX, Some(failure));
        let notes = evaluate_on(&Device::new(faulty.clone()), &batch, &p);
        assert_eq!(faulty.launches(), 1);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("ran on the CPU after cuda failed")
                && notes[0].contains(failure.reason()),
            "{notes:?}"
        );
    }
}

#[test]
fn a_type_the_device_lacks_runs_on_the_cpu_without_trying() {
    let batch = data(1000);
    let p = Projection::try_new(batch.schema(), &[("z".into(), col("y").sqrt())]).unwrap();
    let faulty = Faulty::new(usize::MAX, None);
    let notes = evaluate_on(&Device::new(faulty.clone()), &batch, &p);
    assert_eq!(faulty.launches(), 0);
    assert_eq!(
        notes,
        vec!["ran on the CPU: cuda cannot compute on f64".to_string()]
    );
}

#[test]
fn statistics_fall_back_per_column() {
    let batch = data(5000);
    let columns = vec![("x".to_string(), vec![batch.column(0).clone()])];
    let notes = Notes::default();
    let got = Device::new(Faulty::new(usize::MAX, None))
        .column_stats(&columns, &notes)
        .unwrap();
    let want = Device::cpu()
        .column_stats(&columns, &Notes::default())
        .unwrap();
    assert_eq!(format!("{got:?}"), format!("{want:?}"));
    assert!(notes.take()[0].contains("statistics of 'x' computed on the CPU"));
}

#[test]
fn device_choices_parse_and_the_cpu_always_opens() {
    for choice in DeviceChoice::ALL {
        assert_eq!(choice.name().parse::<DeviceChoice>().unwrap(), choice);
    }
    let err = "tpu".parse::<DeviceChoice>().unwrap_err();
    assert!(err.contains("auto, cpu, wgpu or cuda"), "{err}");
    assert!(Device::open(DeviceKind::Cpu).unwrap().is_cpu());
    assert_eq!(
        DeviceChoice::from(DeviceKind::Wgpu).kind(),
        Some(DeviceKind::Wgpu)
    );
    assert_eq!(DeviceChoice::Auto.kind(), None);
}

#[test]
fn a_spec_file_pins_steps_and_rejects_unknown_devices() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.csv");
    std::fs::write(&data, "x,y\n1.5,2\n,3\n-4,5\n").unwrap();
    let spec = |device: &str| {
        format!(
            "name = \"pinned\"\n\n[[steps]]\nname = \"read\"\nkind = \"read\"\npath = \"data.csv\"\n\n[[steps]]\nname = \"double\"\nkind = \"derive\"\ndevice = \"{device}\"\ninputs = {{ data = \"read\" }}\ncolumns = {{ z = \"fill_null(x, 0.0) * 2\" }}\n"
        )
    };
    let path = dir.path().join("p.toml");
    std::fs::write(&path, spec("cpu")).unwrap();
    let run = fuseflow::pipeline::spec::load(&path)
        .unwrap()
        .run()
        .unwrap();
    let double = run.steps.iter().find(|s| s.name == "double").unwrap();
    assert_eq!(double.device, "cpu");
    let z = f64_column(run.output("double").unwrap(), "z");
    assert_eq!(z, vec![Some(3.0), Some(0.0), Some(-8.0)]);

    std::fs::write(&path, spec("tpu")).unwrap();
    let err = fuseflow::pipeline::spec::load(&path).unwrap_err();
    assert_msg(
        &err,
        &["p.toml", "line", "device", "tpu", "auto, cpu, wgpu or cuda"],
    );
}

#[test]
fn unsupported_column_types_are_refused_by_name() {
    let batch = data(10);
    let p = Projection::try_new(batch.schema(), &[("z".into(), col("y") + lit(1.0))]).unwrap();
    let body = fuseflow::backend::codegen::fused_body(
        &p,
        fuseflow::ir::Lang::Wgsl,
        &[true, true],
        "wgpu: test",
    )
    .unwrap_err();
    assert_msg(&body, &["wgpu: test", "'z'", "f64", "cast"]);
}

/// An f64 chain with casts both ways: `y` is f64, `x` f32 widened to f64.
fn mixed_precision(batch: &RecordBatch) -> Projection {
    let e = ((col("y").fill_null(lit(0.25)) - col("x").cast(fuseflow::ir::DType::Float64))
        * lit(1.5))
    .clip(lit(-3.0), lit(3.0))
    .exp();
    Projection::try_new(batch.schema(), &[("z".into(), e)]).unwrap()
}

/// `batch` with its f64 values beyond f32's range (±1e300) made ±1e30.
fn within_f32(batch: &RecordBatch) -> RecordBatch {
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.as_primitive_opt::<Float64Type>() {
            Some(values) => {
                let clamp = |v: f64| {
                    if v.is_finite() {
                        v.clamp(-1e30, 1e30)
                    } else {
                        v
                    }
                };
                Arc::new(values.unary::<_, Float64Type>(clamp)) as ArrayRef
            }
            None => Arc::clone(c),
        });
    RecordBatch::try_new(batch.schema(), columns.collect()).unwrap()
}

#[test]
fn f64_work_runs_in_f32_on_the_device_only_when_accepted() {
    let batch = data(3001);
    let p = mixed_precision(&batch);
    let want = on_cpu(&batch, &p);

    // Refused by default: the CPU computes it, in f64.
    let faulty = Faulty::new(usize::MAX, None);
    let strict = Device::new(faulty.clone());
    let notes = evaluate_on(&strict, &batch, &p);
    assert_eq!(faulty.launches(), 0);
    assert!(notes[0].contains("cannot compute on f64"), "{notes:?}");

    // Accepted, but `y` holds ±1e300, beyond f32's range: narrowed, it
    // would become an infinity, so the batch stays on the CPU, in f64.
    let relaxed = Device::new(faulty.clone()).allowing_f32(true);
    assert!(relaxed.f64_as_f32());
    let notes = Notes::default();
    let got = relaxed.kernel(p.clone()).evaluate(&batch, &notes).unwrap();
    assert_eq!((faulty.launches(), &got), (0, &want));
    let said = notes.take();
    assert!(
        said[0].contains("1e300") && said[0].contains("beyond f32's range"),
        "{said:?}"
    );

    // Within f32's range: one launch on the device, of the projection
    // narrowed to f32, and the f64 column the step declared, within f32
    // rounding of the CPU.
    let batch = within_f32(&batch);
    let want = on_cpu(&batch, &p);
    let notes = Notes::default();
    let got = relaxed.kernel(p.clone()).evaluate(&batch, &notes).unwrap();
    assert_eq!(faulty.launches(), 1);
    assert_eq!(got.schema(), want.schema());
    let (got, want) = (f64_values(got.column(0)), f64_values(want.column(0)));
    let (x, y) = (f32_values(batch.column(0)), f64_values(batch.column(1)));
    assert_eq!(got.len(), want.len());
    let mut differs = 0;
    for (r, (g, w)) in got.iter().zip(&want).enumerate() {
        match (g, w) {
            (Some(g), Some(w)) if w.is_nan() => assert!(g.is_nan(), "row {r}"),
            (Some(g), Some(w)) => {
                // Tolerance: y rounded to f32 and each f32 operation add a few
                // ulps of |y| + |x| to the argument of exp (the difference can
                // cancel), and exp turns an absolute error on its argument into
                // the same relative error on its result.
                let size = y[r].unwrap_or(0.25).abs() + f64::from(x[r].unwrap_or(0.0).abs());
                let tolerance = 4.0 * f64::from(f32::EPSILON) * (1.5 * size + 3.0);
                assert!((g - w).abs() <= tolerance * w.abs(), "row {r}: {g} vs {w}");
                differs += usize::from(g != w);
            }
            (g, w) => assert_eq!(g, w, "row {r}: validity"),
        }
    }
    assert!(
        differs > 0,
        "the values were computed in f32, so some must differ from f64"
    );
    assert_eq!(
        notes.take(),
        vec!["f64 computed in f32 on cuda (f32 precision accepted)".to_string()]
    );

    // The precision is in the cache key and the description run records keep.
    assert_ne!(relaxed.numeric_mode(), strict.numeric_mode());
    assert!(relaxed.to_string().ends_with("[f64 computed in f32]"));
    // A device with f64 ignores the permission.
    assert!(!Device::cpu().allowing_f32(true).f64_as_f32());
}

#[test]
fn narrowing_a_projection_drops_widening_casts_and_keeps_names() {
    let batch = data(10);
    let p = mixed_precision(&batch);
    let narrow = p.with_f64_as_f32().unwrap();
    assert_eq!(
        narrow
            .input_schema()
            .field_with_name("y")
            .unwrap()
            .data_type(),
        &arrow_schema::DataType::Float32
    );
    assert_eq!(narrow.output_schema().field(0).name(), "z");
    assert_eq!(
        narrow.output_schema().field(0).data_type(),
        &arrow_schema::DataType::Float32
    );
    let arena = narrow.arena();
    assert!(
        arena
            .ids()
            .all(|id| arena.dtype(id) != fuseflow::ir::DType::Float64)
    );
    assert!(
        !arena
            .ids()
            .any(|id| matches!(arena.node(id), fuseflow::ir::Node::Cast(_))),
        "the f32 -> f64 cast of x became f32 -> f32 and was dropped"
    );
    // Nothing to narrow: no f64 anywhere.
    assert!(score(&batch).with_f64_as_f32().is_none());
}

#[test]
fn unfused_devices_launch_once_per_operator_and_agree_with_fused() {
    let batch = data(2049);
    let p = score(&batch);
    let steps = p.op_by_op().steps.len();
    // fill_null, *, clip: literals are read in place, not launched.
    assert_eq!(steps, 3);
    let faulty = Faulty::new(usize::MAX, None);
    let unfused = Device::new(faulty.clone()).fusing(false);
    assert!(!unfused.fuses());
    let got = unfused
        .kernel(p.clone())
        .evaluate(&batch, &Notes::default())
        .unwrap();
    assert_eq!(faulty.launches(), steps);
    assert_eq!(got, on_cpu(&batch, &p));
    // The CPU device op by op goes through the CPU backend's launches, and
    // must agree bit for bit with its fused kernel.
    let cpu = Device::cpu().fusing(false);
    assert_eq!(
        cpu.kernel(p.clone())
            .evaluate(&batch, &Notes::default())
            .unwrap(),
        on_cpu(&batch, &p)
    );
    assert_eq!(cpu.numeric_mode(), "cpu/unfused");
    assert_eq!(cpu.to_string(), "cpu [unfused]");
}

/// 300 rows of two features `x` and `z` and a noisy boolean label `y`.
pub(crate) fn training_table() -> Table {
    let mut rng = Rng::new(31);
    let rows = 300;
    let x: Vec<Option<f64>> = (0..rows).map(|_| Some(rng.range(-1.0, 1.0))).collect();
    let z: Vec<Option<f64>> = (0..rows).map(|_| Some(rng.range(-2.0, 2.0))).collect();
    // Noisy labels, so the classes overlap and the optimum is finite.
    let y: Vec<bool> = x
        .iter()
        .zip(&z)
        .map(|(a, b)| a.unwrap() + b.unwrap() + rng.range(-1.0, 1.0) > 0.3)
        .collect();
    Table::from_batch(batch(vec![
        ("x", f64_array(&x)),
        ("z", f64_array(&z)),
        (
            "y",
            Arc::new(arrow_array::BooleanArray::from(y)) as ArrayRef,
        ),
    ]))
}

#[test]
fn training_falls_back_to_the_cpu_when_the_device_fails() {
    let data = training_table();
    let steps: [(&str, Arc<dyn Step>); 2] = [
        (
            "logistic",
            Arc::new(TrainLogistic::new(
                ["x", "z"],
                "y",
                LogisticConfig::default(),
            )),
        ),
        (
            "mlp",
            Arc::new(TrainMlp::new(
                ["x", "z"],
                "y",
                Task::Classification,
                MlpConfig {
                    epochs: 2,
                    ..MlpConfig::default()
                },
            )),
        ),
    ];
    for (name, step) in steps {
        assert!(step.uses_device(), "{name}");
        let want = step
            .run(StepContext::new(name), std::slice::from_ref(&data))
            .unwrap();
        for failure in [
            DeviceFailure::Compile,
            DeviceFailure::Launch,
            DeviceFailure::OutOfMemory,
            DeviceFailure::Unsupported,
        ] {
            let backend = Faulty::failing_training(failure);
            let device = Device::new(backend.clone());
            let notes = Notes::default();
            let got = step
                .run(
                    StepContext::new(name).on(&device, &notes),
                    std::slice::from_ref(&data),
                )
                .unwrap();
            assert!(
                backend.train_calls.load(Ordering::SeqCst) > TRAIN_KERNELS_BEFORE_FAILING,
                "{name}: tried the device"
            );
            // Trained on the CPU: the same f64 model, bit for bit.
            assert_eq!(got[0].batches(), want[0].batches(), "{name}, {failure:?}");
            let notes = notes.take();
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(
                notes[0].contains("trained on the CPU after cuda failed")
                    && notes[0].contains(failure.reason())
                    && notes[0].contains("injected failure"),
                "{name}: {notes:?}"
            );
        }
        // A backend without training kernels (the default verb) also falls back.
        let notes = Notes::default();
        let device = Device::new(Faulty::new(usize::MAX, None));
        let got = step
            .run(
                StepContext::new(name).on(&device, &notes),
                std::slice::from_ref(&data),
            )
            .unwrap();
        assert_eq!(got[0].batches(), want[0].batches(), "{name}");
        assert!(notes.take()[0].contains("an unsupported type"), "{name}");
    }
}

#[test]
fn programs_take_a_device_from_their_arguments() {
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        DeviceChoice::from_args(args(&["prog", "--device", "wgpu"])).unwrap(),
        DeviceChoice::On(DeviceKind::Wgpu)
    );
    assert_eq!(
        DeviceChoice::from_args(args(&["prog"])).unwrap(),
        DeviceChoice::Auto
    );
    for bad in [&["prog", "--device"][..], &["prog", "--device", "tpu"]] {
        let err = DeviceChoice::from_args(args(bad)).unwrap_err();
        assert_msg(&err, &["--device", "auto, cpu, wgpu or cuda"]);
    }
}

//! Placing work on devices: the fallbacks to the CPU (through a backend that
//! fails on purpose, for kernels and for training), pinning in spec files, and what runs record.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch};

use common::*;
use fuseflow::backend::{
    Backend, ColumnStats, CpuBackend, Device, DeviceArray, DeviceChoice, DeviceInfo, DeviceKind,
    Matrix, Notes, TrainKernel,
};
use fuseflow::ir::{Projection, col, lit};
use fuseflow::ml::logistic::LogisticConfig;
use fuseflow::ml::mlp::MlpConfig;
use fuseflow::pipeline::models::{Task, TrainLogistic, TrainMlp};
use fuseflow::{DeviceFailure, Error};
use fuseflow::{Step, StepContext, Table};

/// A GPU that delegates to the CPU but fails as told: out of memory above a
/// row count, or every launch with a given failure.
#[derive(Debug)]
struct Faulty {
    info: DeviceInfo,
    /// Launches of more rows than this run out of memory.
    max_rows: usize,
    /// When set, every launch fails so.
    fail: Option<DeviceFailure>,
    launches: AtomicUsize,
    launched_rows: Mutex<Vec<usize>>,
}

impl Faulty {
    fn new(max_rows: usize, fail: Option<DeviceFailure>) -> Arc<Faulty> {
        Arc::new(Faulty {
            info: DeviceInfo {
                kind: DeviceKind::Cuda,
                name: "faulty test device".into(),
                software: true,
                api: "test".into(),
                f64: false,
                i64: false,
            },
            max_rows,
            fail,
            launches: AtomicUsize::new(0),
            launched_rows: Mutex::new(Vec::new()),
        })
    }
}

impl Backend for Faulty {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn upload(&self, array: &ArrayRef) -> fuseflow::Result<DeviceArray> {
        CpuBackend::shared().upload(array)
    }
    fn download(&self, array: &DeviceArray) -> fuseflow::Result<ArrayRef> {
        CpuBackend::shared().download(array)
    }
    fn launch(
        &self,
        projection: &Projection,
        inputs: &[Option<&DeviceArray>],
    ) -> fuseflow::Result<Vec<DeviceArray>> {
        self.launches.fetch_add(1, Ordering::SeqCst);
        let rows = inputs.iter().flatten().map(|a| a.len()).next().unwrap_or(0);
        if let Some(failure) = self.fail {
            return Err(Error::Device {
                device: "faulty".into(),
                failure,
                message: "injected".into(),
            });
        }
        if rows > self.max_rows {
            return Err(Error::Device {
                device: "faulty".into(),
                failure: DeviceFailure::OutOfMemory,
                message: format!("{rows} rows do not fit"),
            });
        }
        self.launched_rows.lock().unwrap().push(rows);
        CpuBackend::shared().launch(projection, inputs)
    }
    fn reduce(&self, _: &DeviceArray) -> fuseflow::Result<ColumnStats> {
        Err(Error::Device {
            device: "faulty".into(),
            failure: DeviceFailure::Launch,
            message: "injected reduce failure".into(),
        })
    }
    fn matmul(&self, a: Matrix<'_>, b: Matrix<'_>) -> fuseflow::Result<DeviceArray> {
        CpuBackend::shared().matmul(a, b)
    }
    fn synchronize(&self) -> fuseflow::Result<()> {
        Ok(())
    }
}

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

#[test]
fn out_of_memory_splits_the_batch_then_succeeds_on_the_device() {
    let batch = data(300_000);
    let p = score(&batch);
    let faulty = Faulty::new(100_000, None);
    let device = Device::new(faulty.clone());
    let notes = Notes::default();
    let out = device.kernel(p.clone()).evaluate(&batch, &notes).unwrap();
    assert_eq!(out, on_cpu(&batch, &p));
    let rows = faulty.launched_rows.lock().unwrap().clone();
    assert_eq!(
        rows.iter().sum::<usize>(),
        300_000,
        "every row ran on the device: {rows:?}"
    );
    assert!(rows.iter().all(|&r| r <= 100_000), "{rows:?}");
    assert!(notes.take().is_empty());
}

#[test]
fn out_of_memory_even_in_pieces_runs_on_the_cpu_with_a_note() {
    let batch = data(200_000);
    let p = score(&batch);
    let device = Device::new(Faulty::new(10, None));
    let notes = Notes::default();
    let out = device.kernel(p.clone()).evaluate(&batch, &notes).unwrap();
    assert_eq!(out, on_cpu(&batch, &p));
    let notes = notes.take();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("out of memory"), "{notes:?}");
}

#[test]
fn compile_and_launch_failures_run_on_the_cpu_with_a_note() {
    for failure in [DeviceFailure::Compile, DeviceFailure::Launch] {
        let batch = data(1000);
        let p = score(&batch);
        let faulty = Faulty::new(usize::MAX, Some(failure));
        let notes = Notes::default();
        let out = Device::new(faulty.clone())
            .kernel(p.clone())
            .evaluate(&batch, &notes)
            .unwrap();
        assert_eq!(out, on_cpu(&batch, &p));
        assert_eq!(faulty.launches.load(Ordering::SeqCst), 1);
        let notes = notes.take();
        assert!(
            notes[0].contains("ran on the CPU after cuda failed"),
            "{notes:?}"
        );
    }
}

#[test]
fn a_type_the_device_lacks_runs_on_the_cpu_without_trying() {
    let batch = data(1000);
    let p = Projection::try_new(batch.schema(), &[("z".into(), col("y").sqrt())]).unwrap();
    let faulty = Faulty::new(usize::MAX, None);
    let notes = Notes::default();
    let out = Device::new(faulty.clone())
        .kernel(p.clone())
        .evaluate(&batch, &notes)
        .unwrap();
    assert_eq!(out, on_cpu(&batch, &p));
    assert_eq!(faulty.launches.load(Ordering::SeqCst), 0);
    assert_eq!(
        notes.take(),
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
fn device_choices_parse_and_auto_is_the_cpu() {
    for choice in DeviceChoice::ALL {
        assert_eq!(choice.name().parse::<DeviceChoice>().unwrap(), choice);
    }
    let err = "tpu".parse::<DeviceChoice>().unwrap_err();
    assert!(err.contains("auto, cpu, wgpu or cuda"), "{err}");
    assert!(Device::open(DeviceChoice::Auto).unwrap().is_cpu());
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

/// A GPU whose training kernels fail with `failure` (and which counts its
/// attempts); everything else runs on the CPU.
#[derive(Debug)]
struct FailingTrainer {
    info: DeviceInfo,
    failure: DeviceFailure,
    attempts: AtomicUsize,
}

impl Backend for FailingTrainer {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn upload(&self, array: &ArrayRef) -> fuseflow::Result<DeviceArray> {
        CpuBackend::shared().upload(array)
    }
    fn download(&self, array: &DeviceArray) -> fuseflow::Result<ArrayRef> {
        CpuBackend::shared().download(array)
    }
    fn launch(
        &self,
        projection: &Projection,
        inputs: &[Option<&DeviceArray>],
    ) -> fuseflow::Result<Vec<DeviceArray>> {
        CpuBackend::shared().launch(projection, inputs)
    }
    fn reduce(&self, array: &DeviceArray) -> fuseflow::Result<ColumnStats> {
        CpuBackend::shared().reduce(array)
    }
    fn matmul(&self, a: Matrix<'_>, b: Matrix<'_>) -> fuseflow::Result<DeviceArray> {
        CpuBackend::shared().matmul(a, b)
    }
    fn train(&self, kernel: TrainKernel<'_>) -> fuseflow::Result<Vec<DeviceArray>> {
        // The first kernels succeed, so a failure midway through training
        // also falls back cleanly.
        if self.attempts.fetch_add(1, Ordering::SeqCst) < 3 {
            return CpuBackend::shared().train(kernel);
        }
        Err(Error::Device {
            device: "failing".into(),
            failure: self.failure,
            message: format!("injected failure of `{}`", kernel.name()),
        })
    }
    fn synchronize(&self) -> fuseflow::Result<()> {
        Ok(())
    }
}

fn training_table() -> Table {
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
            let backend = Arc::new(FailingTrainer {
                info: Faulty::new(0, None).info.clone(),
                failure,
                attempts: AtomicUsize::new(0),
            });
            let device = Device::new(backend.clone());
            let notes = Notes::default();
            let got = step
                .run(
                    StepContext::new(name).on(&device, &notes),
                    std::slice::from_ref(&data),
                )
                .unwrap();
            assert!(
                backend.attempts.load(Ordering::SeqCst) > 3,
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

//! Placing work on devices: the fallbacks to the CPU (through a backend that
//! fails on purpose), pinning in spec files, and what runs record.

mod common;

use arrow_array::RecordBatch;

use common::faulty::Faulty;
use common::*;
use fuseflow::DeviceFailure;
use fuseflow::backend::{Device, DeviceChoice, Notes};
use fuseflow::ir::{Projection, col, lit};

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
        assert_eq!(faulty.launches(), 1);
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
    assert_eq!(faulty.launches(), 0);
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

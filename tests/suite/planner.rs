//! The planner: fusion across steps, cost-based placement (with a fake GPU,
//! so this GPU-less machine tests it), the executor following the plan and
//! falling back, device-resident reuse, calibration, and rendered plans
//! compared with the snapshots in `tests/snapshots/` (set
//! `UPDATE_SNAPSHOTS=1` to rewrite them after an intended change).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::common::faulty::Faulty;
use crate::common::*;
use fuseflow::backend::DeviceSet;
use fuseflow::backend::DeviceTier;
use fuseflow::backend::{Device, DeviceChoice, DeviceKind, Notes};
use fuseflow::ir::{Projection, col, lit};
use fuseflow::pipeline::io::MemorySource;
use fuseflow::pipeline::prep::{Derive, FillNull, FillValue, FitStats, Scale, ScaleMethod};
use fuseflow::pipeline::{Pipeline, Step, StepContext, Table};
use fuseflow::plan::{CALIBRATION_FILE, Calibration, GpuProfile, Work, calibrate};
use fuseflow::{DeviceFailure, RunOptions, Workspace};

// ================================================================ fixtures

/// `x` and `y` with nulls, no NaN (statistics refuse it).
pub(crate) fn raw(rows: usize) -> Table {
    let x: Vec<Option<f32>> = (0..rows)
        .map(|i| (i % 7 != 3).then_some((i % 1000) as f32 * 0.01 - 5.0))
        .collect();
    let y: Vec<Option<f32>> = (0..rows)
        .map(|i| (i % 11 != 5).then_some((i % 13) as f32 * 0.5))
        .collect();
    table(vec![("x", f32_array(&x)), ("y", f32_array(&y))])
}

/// A source of a declared size that is only planned, never run.
#[derive(Debug)]
struct Sized {
    bytes: u64,
    schema: SchemaRef,
}

impl Sized {
    fn new(bytes: u64, dtype: DataType) -> Self {
        Sized {
            bytes,
            schema: Arc::new(Schema::new(vec![
                Field::new("x", dtype.clone(), true),
                Field::new("y", dtype, true),
            ])),
        }
    }
}

impl Step for Sized {
    fn kind(&self) -> &str {
        "sized"
    }
    fn inputs(&self) -> &[&str] {
        &[]
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        format!("bytes={}", self.bytes)
    }
    fn output_schemas(&self, _: StepContext, _: &[SchemaRef]) -> fuseflow::Result<Vec<SchemaRef>> {
        Ok(vec![Arc::clone(&self.schema)])
    }
    fn run(&self, _: StepContext, _: &[Table]) -> fuseflow::Result<Vec<Table>> {
        Ok(vec![Table::empty(Arc::clone(&self.schema))])
    }
    fn size_hint(&self) -> Option<u64> {
        Some(self.bytes)
    }
    fn op_kind(&self) -> fuseflow::pipeline::OpKind {
        fuseflow::pipeline::OpKind::Io
    }
}

/// raw -> stats; raw -> filled -> scaled -> feats (row-local chain).
pub(crate) fn prep(source: impl Step + 'static) -> Pipeline {
    let mut p = Pipeline::new("prep");
    p.add("raw", source);
    p.add("stats", FitStats::new(["x", "y"]))
        .input("data", "raw");
    p.add("filled", FillNull::new(["x"], FillValue::Mean))
        .inputs(["raw", "stats"]);
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["filled", "stats"]);
    p.add(
        "feats",
        Derive::new([("z", col("x") * col("y") + lit(1.0))]),
    )
    .input("data", "scaled");
    p
}

pub(crate) fn options(devices: DeviceSet) -> RunOptions {
    RunOptions {
        devices: Some(devices),
        calibration: Some(Calibration::default()),
        ..RunOptions::default()
    }
}

fn fake_gpu() -> (Arc<Faulty>, Device) {
    let gpu = Faulty::hardware(usize::MAX, None);
    let device = Device::new(gpu.clone());
    (gpu, device)
}

// ================================================================ snapshots

#[test]
fn a_cpu_plan_fuses_the_row_local_chain_and_says_there_is_no_gpu() {
    let plan = prep(MemorySource::new(raw(10_000)))
        .plan(&options(DeviceSet::cpu_only()))
        .unwrap();
    assert_eq!(plan.groups.len(), 1);
    snapshot("prep_cpu.txt", &plan.to_string());
    snapshot("prep_cpu.dot", &plan.to_dot());
}

#[test]
fn a_large_chain_goes_to_a_gpu_only_over_a_link_faster_than_the_cpu() {
    let (_, gpu) = fake_gpu();
    let pipeline = prep(Sized::new(4_000_000_000, DataType::Float32));
    let feats_on = |calibration: Calibration| {
        let plan = pipeline
            .plan(&RunOptions {
                calibration: Some(calibration),
                ..options(DeviceSet::with([gpu.clone()]))
            })
            .unwrap();
        let feats = plan.nodes.iter().find(|n| n.name == "feats").unwrap();
        (feats.placement.device, plan)
    };
    // The defaults: the CPU streams host memory (20 GB/s) faster than PCIe
    // carries it to the GPU (12 GB/s), so streaming prep stays on the CPU.
    let (device, _) = feats_on(Calibration::default());
    assert_eq!(device, DeviceKind::Cpu);
    // A coherent link (NVLink-C2C class, 400 GB/s) turns that around.
    let mut fast_link = Calibration::default();
    fast_link.cuda.link_gbs = 400.0;
    fast_link.source = "defaults, with a 400 GB/s link".into();
    let (device, plan) = feats_on(fast_link);
    assert_eq!(device, DeviceKind::Cuda);
    snapshot("prep_gpu.txt", &plan.to_string());
    assert!(plan.notices.is_empty(), "{:?}", plan.notices);
}

#[test]
fn caching_every_step_keeps_every_output_so_nothing_fuses() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        workspace: Some(Arc::new(Workspace::open(dir.path()).unwrap())),
        cache: fuseflow::CachePolicy::EveryStep,
        ..options(DeviceSet::cpu_only())
    };
    let plan = prep(MemorySource::new(raw(10_000))).plan(&opts).unwrap();
    assert!(plan.groups.is_empty());
    snapshot("prep_workspace.txt", &plan.to_string());
}

#[test]
fn a_pin_a_request_or_a_second_consumer_ends_a_fused_chain() {
    let mut p = prep(MemorySource::new(raw(1000)));
    p.add("pinned", Derive::new([("w", col("z") * lit(2.0))]))
        .input("data", "feats")
        .device(DeviceChoice::On(DeviceKind::Cpu));
    let plan = p.plan(&options(DeviceSet::cpu_only())).unwrap();
    assert_eq!(plan.groups.len(), 1);
    let members: Vec<&str> = plan.groups[0]
        .members
        .iter()
        .map(|&m| plan.node(m).unwrap().name.as_str())
        .collect();
    assert_eq!(members, ["filled", "scaled", "feats"], "{plan}");

    let kept = RunOptions {
        keep: vec!["scaled".into()],
        ..options(DeviceSet::cpu_only())
    };
    let plan = p.plan(&kept).unwrap();
    let names = |g: &fuseflow::plan::FusedGroup| -> Vec<String> {
        g.members
            .iter()
            .map(|&m| plan.node(m).unwrap().name.clone())
            .collect()
    };
    assert_eq!(names(&plan.groups[0]), ["filled", "scaled"], "{plan}");
    assert!(
        plan.to_string().contains("materialized: requested"),
        "{plan}"
    );
}

// ================================================================ the cost model

fn placement_of(plan: &fuseflow::plan::PhysicalPlan, step: &str) -> fuseflow::plan::Placement {
    plan.nodes
        .iter()
        .find(|n| n.name == step)
        .unwrap()
        .placement
        .clone()
}

#[test]
fn small_work_stays_on_the_cpu_where_the_gpu_loses() {
    let (_, gpu) = fake_gpu();
    let plan = prep(Sized::new(100_000, DataType::Float32))
        .plan(&options(DeviceSet::with([gpu])))
        .unwrap();
    let feats = placement_of(&plan, "feats");
    assert_eq!(feats.device, DeviceKind::Cpu);
    assert!(
        feats.reason.starts_with("auto: cpu, est.") && feats.reason.contains("vs cuda"),
        "{}",
        feats.reason
    );
}

#[test]
fn a_slow_link_keeps_even_large_work_on_the_cpu() {
    let (_, gpu) = fake_gpu();
    let slow = Calibration {
        cuda: GpuProfile {
            link_gbs: 0.5,
            ..Calibration::default().cuda
        },
        ..Calibration::default()
    };
    let opts = RunOptions {
        calibration: Some(slow),
        ..options(DeviceSet::with([gpu]))
    };
    let plan = prep(Sized::new(4_000_000_000, DataType::Float32))
        .plan(&opts)
        .unwrap();
    assert_eq!(placement_of(&plan, "feats").device, DeviceKind::Cpu);
}

#[test]
fn a_software_adapter_is_never_chosen_by_auto() {
    let software = Device::new(Faulty::new(usize::MAX, None));
    let plan = prep(Sized::new(4_000_000_000, DataType::Float32))
        .plan(&options(DeviceSet::with([software])))
        .unwrap();
    assert_eq!(placement_of(&plan, "feats").device, DeviceKind::Cpu);
    assert_eq!(placement_of(&plan, "feats").reason, "auto: cpu (no GPU)");
    assert_eq!(plan.notices[0], "no GPU: CPU plan");
    assert!(
        plan.notices[1].contains("software adapter"),
        "{:?}",
        plan.notices
    );
}

#[test]
fn f64_work_stays_off_a_device_without_f64() {
    let mut gpu = Faulty::hardware(usize::MAX, None);
    Arc::get_mut(&mut gpu).unwrap().info.f64 = false;
    let plan = prep(Sized::new(4_000_000_000, DataType::Float64))
        .plan(&options(DeviceSet::with([Device::new(gpu.clone())])))
        .unwrap();
    let feats = placement_of(&plan, "feats");
    assert_eq!(feats.device, DeviceKind::Cpu);
    assert_eq!(feats.reason, "auto: cpu (cuda cannot compute on f64)");

    // With f32 accepted for f64 work, the device is a candidate again.
    let relaxed = RunOptions {
        allow_f32: true,
        ..options(DeviceSet::with([Device::new(gpu)]))
    };
    let plan = prep(Sized::new(4_000_000_000, DataType::Float64))
        .plan(&relaxed)
        .unwrap();
    let feats = placement_of(&plan, "feats");
    assert!(feats.reason.contains("vs cuda"), "{}", feats.reason);
}

#[test]
fn a_missing_device_asked_for_leaves_its_steps_on_the_cpu_with_the_reason() {
    let opts = RunOptions {
        device: DeviceChoice::On(DeviceKind::Cuda),
        ..options(DeviceSet::cpu_only())
    };
    let run = prep(MemorySource::new(raw(1000))).run_with(&opts).unwrap();
    let feats = run.steps.iter().find(|s| s.name == "feats").unwrap();
    assert_eq!(feats.device, "cpu");
    assert!(
        feats
            .notes
            .iter()
            .any(|n| n.contains("run device cuda, unavailable")),
        "{:?}",
        feats.notes
    );
}

// ================================================================ execution

#[test]
fn a_fused_group_runs_as_one_kernel_and_agrees_with_step_by_step() {
    let data = raw(20_000);
    let (gpu, device) = fake_gpu();
    let on_gpu = RunOptions {
        device: DeviceChoice::On(DeviceKind::Cuda),
        ..options(DeviceSet::with([device]))
    };
    let fused = prep(MemorySource::new(data.clone()))
        .run_with(&on_gpu)
        .unwrap();
    assert_eq!(gpu.launches(), 1, "one launch for three steps");
    let unfused = prep(MemorySource::new(data))
        .run_with(&RunOptions {
            fuse: false,
            ..on_gpu.clone()
        })
        .unwrap();
    // Unfused, each step runs on its own and its expressions op by op: at
    // least one launch per step, one per operator.
    assert!(gpu.launches() > 1 + 3, "{} launches", gpu.launches());
    let (a, b) = (
        fused.output("feats").unwrap().concat().unwrap(),
        unfused.output("feats").unwrap().concat().unwrap(),
    );
    assert_eq!(a, b);

    let tail = fused.steps.iter().find(|s| s.name == "feats").unwrap();
    assert!(
        tail.notes
            .iter()
            .any(|n| n.contains("ran fused with 'filled', 'scaled'"))
    );
    let filled = fused.steps.iter().find(|s| s.name == "filled").unwrap();
    assert!(
        filled
            .notes
            .iter()
            .any(|n| n.contains("fused into 'feats'"))
    );
    // Never held, yet fetchable from the run: computed again from the
    // group's input.
    assert_eq!(
        fused.output("filled").unwrap().concat().unwrap(),
        unfused.output("filled").unwrap().concat().unwrap()
    );
}

#[test]
fn a_requested_intermediate_is_materialized() {
    let opts = RunOptions {
        keep: vec!["filled".into()],
        ..options(DeviceSet::cpu_only())
    };
    let run = prep(MemorySource::new(raw(1000))).run_with(&opts).unwrap();
    assert_eq!(run.output("filled").unwrap().num_rows(), 1000);
    let plan = |step: &str| {
        &run.plan
            .node(run.plan.nodes.iter().position(|n| n.name == step).unwrap())
            .unwrap()
            .materialized
    };
    assert_eq!(*plan("filled"), fuseflow::plan::Materialized::Requested);
    assert!(matches!(
        plan("scaled"),
        fuseflow::plan::Materialized::Fused { .. }
    ));
}

#[test]
fn no_gpu_means_a_cpu_plan_with_a_notice_and_a_note_per_step() {
    let run = prep(MemorySource::new(raw(1000)))
        .run_with(&options(DeviceSet::cpu_only()))
        .unwrap();
    assert_eq!(run.plan.notices, ["no GPU: CPU plan"]);
    let stats = run.steps.iter().find(|s| s.name == "stats").unwrap();
    assert_eq!(stats.notes, ["placed: auto: cpu (no GPU)"]);
}

#[test]
fn a_launch_failure_in_a_run_falls_back_to_the_cpu_and_show_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::open(dir.path()).unwrap());
    let faulty = Device::new(Faulty::hardware(usize::MAX, Some(DeviceFailure::Launch)));
    let opts = RunOptions {
        workspace: Some(Arc::clone(&ws)),
        device: DeviceChoice::On(DeviceKind::Cuda),
        ..options(DeviceSet::with([faulty]))
    };
    let data = raw(5000);
    let run = prep(MemorySource::new(data.clone()))
        .run_with(&opts)
        .unwrap();
    let cpu = prep(MemorySource::new(data))
        .run_with(&options(DeviceSet::cpu_only()))
        .unwrap();
    assert_eq!(
        run.output("feats").unwrap().concat().unwrap(),
        cpu.output("feats").unwrap().concat().unwrap()
    );
    let shown = fuseflow::track::render_run(&ws.runs().run("latest").unwrap());
    assert!(
        shown.contains("ran on the CPU after cuda failed"),
        "{shown}"
    );
    assert!(
        shown.contains("statistics of 'x' computed on the CPU"),
        "{shown}"
    );
}

#[test]
fn out_of_memory_in_a_run_retries_in_chunks_on_the_device() {
    let gpu = Faulty::hardware(100_000, None);
    let opts = RunOptions {
        device: DeviceChoice::On(DeviceKind::Cuda),
        ..options(DeviceSet::with([Device::new(gpu.clone())]))
    };
    let data = Table::from_batch(raw(300_000).concat().unwrap());
    let run = prep(MemorySource::new(data)).run_with(&opts).unwrap();
    let rows = gpu.launched_rows.lock().unwrap().clone();
    assert_eq!(rows.iter().sum::<usize>(), 300_000, "{rows:?}");
    assert!(rows.iter().all(|&r| r <= 100_000), "{rows:?}");
    let feats = run.steps.iter().find(|s| s.name == "feats").unwrap();
    assert!(
        !feats.notes.iter().any(|n| n.contains("ran on the CPU")),
        "{:?}",
        feats.notes
    );
}

// ================================================================ device-resident reuse

fn projection(batch: &RecordBatch) -> Projection {
    Projection::try_new(batch.schema(), &[("z".into(), col("x") * lit(3.0))]).unwrap()
}

#[test]
fn a_second_run_does_not_upload_the_same_column_again() {
    let batch = raw(10_000).concat().unwrap();
    let (gpu, device) = fake_gpu();
    let notes = Notes::default();
    let first = device
        .kernel(projection(&batch))
        .evaluate(&batch, &notes)
        .unwrap();
    assert_eq!(gpu.uploads(), 1, "only x is read");
    // A new kernel, as a re-run compiles one, over equal data in other buffers.
    let copy = raw(10_000).concat().unwrap();
    let second = device
        .kernel(projection(&copy))
        .evaluate(&copy, &notes)
        .unwrap();
    assert_eq!(gpu.uploads(), 1, "resident by content hash");
    assert_eq!(first, second);
}

#[test]
fn the_device_tier_keeps_to_its_budget() {
    let (gpu, device) = fake_gpu();
    let a = raw(1000).concat().unwrap().column(0).clone();
    let b = raw(2000).concat().unwrap().column(0).clone();
    let tier = DeviceTier::new(a.get_array_memory_size() + 16);
    tier.upload(&device, &a).unwrap();
    tier.upload(&device, &a).unwrap();
    assert_eq!(gpu.uploads(), 1);
    tier.upload(&device, &b).unwrap();
    assert_eq!(gpu.uploads(), 2, "too large to keep: uploaded, not cached");
    assert_eq!(tier.resident_bytes(), a.get_array_memory_size());
    tier.set_budget(0);
    assert_eq!(tier.resident_bytes(), 0);
    tier.upload(&device, &a).unwrap();
    assert_eq!(gpu.uploads(), 3);
}

#[test]
fn steps_uploading_the_same_column_at_once_keep_one_copy_and_count_it_once() {
    let (gpu, device) = fake_gpu();
    let tier = DeviceTier::new(64 << 20);
    let threads = 8;
    // Equal content in separate buffers, as concurrent steps would read it.
    let copies: Vec<_> = (0..threads)
        .map(|_| raw(50_000).concat().unwrap().column(0).clone())
        .collect();
    let start = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        for copy in &copies {
            let (tier, device, start) = (&tier, &device, &start);
            s.spawn(move || {
                start.wait();
                tier.upload(device, copy).unwrap();
            });
        }
    });
    assert!(gpu.uploads() >= 1);
    assert_eq!(tier.resident_bytes(), copies[0].get_array_memory_size());
    // Every copy now maps to the one resident column.
    for copy in &copies {
        tier.upload(&device, copy).unwrap();
    }
    assert_eq!(tier.resident_bytes(), copies[0].get_array_memory_size());
    tier.set_budget(0);
    assert_eq!(tier.resident_bytes(), 0);
}

// ================================================================ calibration

#[test]
fn calibration_is_measured_stored_and_read_back_by_runs() {
    let dir = tempfile::tempdir().unwrap();
    let measured = calibrate(&DeviceSet::cpu_only()).unwrap();
    assert!(measured.cpu_gbs > 0.0 && measured.cpu_launch_us > 0.0);
    assert!(
        measured.source.starts_with("measured: cpu"),
        "{}",
        measured.source
    );
    assert_eq!(measured.cuda, Calibration::default().cuda);
    measured.store(dir.path()).unwrap();
    assert_eq!(Calibration::load(dir.path()).unwrap(), measured);

    let ws = Arc::new(Workspace::open(dir.path()).unwrap());
    let opts = RunOptions {
        workspace: Some(ws),
        devices: Some(DeviceSet::cpu_only()),
        ..RunOptions::default()
    };
    let plan = prep(MemorySource::new(raw(100))).plan(&opts).unwrap();
    assert_eq!(plan.calibration, measured.source);
}

#[test]
fn a_damaged_calibration_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        Calibration::load(dir.path()).unwrap(),
        Calibration::default()
    );
    std::fs::write(dir.path().join(CALIBRATION_FILE), "cpu_gbs = \"fast\"").unwrap();
    let err = Calibration::load(dir.path()).unwrap_err();
    assert_msg(&err, &[CALIBRATION_FILE, "fuseflow calibrate"]);
    let mut bad = Calibration::default();
    bad.cuda.link_gbs = 0.0;
    bad.store(dir.path()).unwrap();
    let err = Calibration::load(dir.path()).unwrap_err();
    assert_msg(&err, &["cuda.link_gbs", "positive"]);
    // A run planned with it: regressions::a_run_that_cannot_be_planned_leaves_no_run_behind.
}

// ================================================================ the CLI

fn fuseflow(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fuseflow"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    (text(&out.stdout), text(&out.stderr))
}

#[test]
fn cli_calibrates_and_explains_the_plan_as_text_and_dot() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().to_str().unwrap();
    let spec = "examples/prep.toml";
    let (text, _) = fuseflow(&["--workspace", ws, "explain", spec, "--device", "cpu"]);
    assert!(text.contains("(costs: defaults)"), "{text}");
    assert!(text.contains("not materialized (fused into"), "{text}");
    let (every, _) = fuseflow(&[
        "--workspace",
        ws,
        "explain",
        spec,
        "--device",
        "cpu",
        "--cache",
        "every-step",
    ]);
    assert!(every.contains("materialized: cached by policy"), "{every}");
    let (dot, _) = fuseflow(&[
        "--workspace",
        ws,
        "explain",
        spec,
        "--dot",
        "--no-workspace",
    ]);
    assert!(
        dot.starts_with("digraph \"") && dot.trim_end().ends_with('}'),
        "{dot}"
    );

    let (out, _) = fuseflow(&["--workspace", ws, "calibrate"]);
    assert!(out.contains("calibration (measured: cpu"), "{out}");
    assert!(dir.path().join(CALIBRATION_FILE).exists());
    let (text, _) = fuseflow(&["--workspace", ws, "explain", spec, "--device", "cpu"]);
    assert!(text.contains("(costs: measured: cpu"), "{text}");
}

#[test]
fn the_default_costs_keep_streaming_prep_on_the_cpu_and_send_training_to_the_gpu() {
    let costs = Calibration::default();
    let faster = |bytes: u64, flops: f64, launches: f64| {
        let work = Work {
            bytes_in: bytes,
            bytes_out: bytes / 1000,
            flops,
            launches,
        };
        let cpu = costs.estimate(DeviceKind::Cpu, &work);
        let cuda = costs.estimate(DeviceKind::Cuda, &work);
        if cpu.seconds <= cuda.seconds {
            DeviceKind::Cpu
        } else {
            DeviceKind::Cuda
        }
    };
    // Statistics over 4 GB of host data: a few operations per value.
    let gb4 = 4_000_000_000;
    assert_eq!(faster(gb4, 4.0 * gb4 as f64 / 4.0, 1.0), DeviceKind::Cpu);
    // Newton on 1M rows x 32 columns (128 MB): 20 passes of 2 d² per row.
    let rows = 1_000_000.0;
    let training = 20.0 * rows * 2.0 * 32.0 * 32.0;
    assert_eq!(faster(128_000_000, training, 100.0), DeviceKind::Cuda);
    // The same training on 1000 rows is too small to pay for its launches.
    assert_eq!(faster(128_000, training / 1000.0, 100.0), DeviceKind::Cpu);
}

#[test]
fn auto_trains_large_data_on_a_gpu_and_small_data_on_the_cpu() {
    let (_, gpu) = fake_gpu();
    let placed = |bytes: u64| {
        let mut p = Pipeline::new("train");
        p.add("raw", Sized::new(bytes, DataType::Int32));
        p.add(
            "model",
            fuseflow::pipeline::models::TrainLogistic::new(
                ["x"],
                "y",
                fuseflow::ml::logistic::LogisticConfig::default(),
            ),
        )
        .input("data", "raw");
        let plan = p.plan(&options(DeviceSet::with([gpu.clone()]))).unwrap();
        let model = plan.nodes.iter().find(|n| n.name == "model").unwrap();
        (model.placement.device, model.placement.reason.clone())
    };
    let (device, reason) = placed(1_280_000_000);
    assert_eq!(device, DeviceKind::Cuda, "{reason}");
    let (device, reason) = placed(1_000_000);
    assert_eq!(device, DeviceKind::Cpu, "{reason}");
}

#[test]
fn a_step_that_holds_data_over_the_memory_budget_gets_a_notice() {
    let budget = |fuse: bool| RunOptions {
        memory_budget: 1 << 10,
        fuse,
        ..options(DeviceSet::cpu_only())
    };
    let holding = |plan: &fuseflow::plan::PhysicalPlan| -> Vec<String> {
        plan.notices
            .iter()
            .filter(|n| n.contains("memory budget"))
            .cloned()
            .collect()
    };
    let pipeline = prep(MemorySource::new(raw(10_000)));
    // Fused, the chain streams and the fit merges window by window.
    let fused = pipeline.plan(&budget(true)).unwrap();
    assert_eq!(holding(&fused), Vec::<String>::new(), "{fused}");
    // Unfused, each row-local step holds a whole table.
    let unfused = pipeline.plan(&budget(false)).unwrap();
    let notices = holding(&unfused);
    assert!(
        notices
            .iter()
            .any(|n| n.starts_with("'filled' (fill_null) holds its data whole")),
        "{notices:?}"
    );
    assert!(
        !notices.iter().any(|n| n.contains("'stats'")),
        "{notices:?}"
    );
    // Within the budget, nothing to say.
    let roomy = RunOptions {
        fuse: false,
        ..options(DeviceSet::cpu_only())
    };
    assert_eq!(
        holding(&pipeline.plan(&roomy).unwrap()),
        Vec::<String>::new()
    );
}

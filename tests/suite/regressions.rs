//! One test for each fixed bug, named after it, with what went wrong and the
//! commit that fixed it. A bug fixed from now on gets its test here.
//!
//! Fixed bugs whose tests live elsewhere, beside the code or the property
//! they belong to:
//! - register aliasing in the CPU kernel and `Filter` on a predicate without
//!   nulls (c4f111f): `cpu_kernel`'s random expression trees and
//!   `prep_steps::filter_drops_rows_where_the_predicate_is_false_or_null`;
//! - a recomputed producer failing the run on a duplicate record, and reused
//!   steps loading every output (aba370b): the `reuse` tests that found them,
//!   `a_corrupt_cached_input_is_removed_recomputed_and_reported` among them;
//! - f32 one-hot features scored with weights rounded to f32 (bc317af):
//!   `models::lineage_pipeline_with_one_hot_region_scores_raw_rows`;
//! - block statistics over infinities and NaN (6d9bbd5): the unit tests in
//!   `src/backend/cpu/stats.rs`, and `backend_conformance`;
//! - GPU kernels disagreeing with the CPU (wgpu: b790e59, and the clip fix of
//!   8938044; CUDA casts: dbe65d9): `backend_conformance` and `cuda_backend`,
//!   which compare every operator on every device.
//!
//! `.ci/run` runs this module a second time with `FUSEFLOW_FUSE=0`, so a test
//! here that needs fusion asks for it.

use std::process::Command;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use fuseflow::backend::DeviceSet;
use fuseflow::backend::cpu::CpuKernel;
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::ir::{DType, Projection, col};
use fuseflow::ml::logistic::{self, LogisticConfig};
use fuseflow::ml::mlp::{Activation, DenseLayer, Head, Mlp};
use fuseflow::ml::model::Model;
use fuseflow::ml::score::Scorer;
use fuseflow::pipeline::io::{MemorySource, Read};
use fuseflow::pipeline::models::TrainLogistic;
use fuseflow::pipeline::prep::{
    Encode, EncodeMethod, FillNull, FillValue, FitCategories, FitStats, Scale, ScaleMethod,
    UnknownCategory,
};
use fuseflow::plan::Calibration;
use fuseflow::{Error, Pipeline, RunOptions, Table, Workspace, datasets};

use crate::common::steps::TestStep;
use crate::common::{self, *};
use crate::cpu_kernel::{Layout, dataset, long_chains, named, on_thread};
use crate::io_formats::{all_types, assert_same_values, read};
use crate::models::{
    assert_close, design, logistic_data, separable, sigmoid, small_logistic_model, train,
    unpenalized,
};
use crate::pipeline_graph::{Behavior, Custom, data};
use crate::planner::{options, prep, raw};
use crate::spec_files::fuseflow;

/// Casting 2^63 (f64 or f32) to i64 gave i64::MAX instead of null: the
/// range check compared with `i64::MAX as f64`, which rounds up to 2^63
/// (cdabe3a).
#[test]
fn cast_float_to_i64_out_of_range_at_two_to_the_63() {
    let two63 = 9_223_372_036_854_775_808.0f64;
    let x = [Some(two63), Some(-two63), Some(two63 * 2.0), Some(9.2e18)];
    let f = [
        Some(two63 as f32),
        Some(-two63 as f32),
        Some(1e19f32),
        Some(9.2e18f32),
    ];
    let b = batch(vec![("x", f64_array(&x)), ("f", f32_array(&f))]);
    let out = CpuKernel::compile(
        Projection::try_new(
            b.schema(),
            &named(vec![
                col("x").cast(DType::Int64),
                col("f").cast(DType::Int64),
            ]),
        )
        .unwrap(),
    )
    .evaluate(&b)
    .unwrap();
    let expected = vec![None, Some(i64::MIN), None, Some(9_200_000_000_000_000_000)];
    assert_eq!(i64_values(out.column(0).as_ref()), expected, "f64 -> i64");
    let f_expected = vec![
        None,
        Some(i64::MIN),
        None,
        Some(f64::from(9.2e18f32) as i64),
    ];
    assert_eq!(i64_values(out.column(1).as_ref()), f_expected, "f32 -> i64");
}

/// A float cast to i32 was range-checked before truncating, so 2147483647.5
/// (which truncates to i32::MAX) and -2147483648.5 became null (cdabe3a).
#[test]
fn cast_float_to_i32_range_check_applies_to_the_truncated_value() {
    // "Float to integer truncates toward zero; NaN or out-of-range values become
    // null": the truncated value is in range here (as num-traits' `to_i32`,
    // used by arrow-rs and polars casts, also decides).
    let x = [
        Some(2147483647.5),
        Some(-2147483648.5),
        Some(2147483647.99),
        Some(2147483648.0),
    ];
    let b = batch(vec![("x", f64_array(&x))]);
    let out = CpuKernel::compile(
        Projection::try_new(b.schema(), &named(vec![col("x").cast(DType::Int32)])).unwrap(),
    )
    .evaluate(&b)
    .unwrap();
    assert_eq!(
        i32_values(out.column(0).as_ref()),
        vec![Some(i32::MAX), Some(i32::MIN), Some(i32::MAX), None]
    );
}

/// `Read::batch_rows` was ignored for Arrow IPC files and streams: a file
/// written as one 10 007-row batch came back as one batch (cdabe3a).
#[test]
fn arrow_ipc_is_read_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let n = 10_007;
    let original = all_types(n, 1, 6, false);
    for (file, format) in [
        ("big.arrow", FileFormat::ArrowFile),
        ("big.arrows", FileFormat::ArrowStream),
    ] {
        let path = dir.path().join(file);
        write_table(&original, &path, format).unwrap();
        let back = read(Read::new(&path).batch_rows(1000)).unwrap();
        let sizes: Vec<usize> = back.batches().iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes.iter().sum::<usize>(), n, "{file}");
        assert!(
            sizes.iter().all(|&s| s <= 1000),
            "{file}: chunk sizes {sizes:?}"
        );
        assert_same_values(&back, &original, file);
    }
}

/// A panic in a step's `output_schemas` (called by `validate`, and by the
/// scheduler for schemas known only at run time) unwound out of
/// `Pipeline::validate` / `run` instead of becoming an error naming the step
/// (cdabe3a).
#[test]
fn a_step_panicking_while_planning_becomes_an_error_naming_it() {
    let mut p = Pipeline::new("panic");
    p.add("src", MemorySource::new(data()));
    p.add(
        "planner",
        Custom::new(&["data"], &["out"], Behavior::PanicInSchema),
    )
    .input("data", "src");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.validate()));
    let Ok(result) = result else {
        panic!("validate() panicked instead of returning an error naming 'planner'")
    };
    let err = expect_err(result, "panicking output_schemas");
    assert_msg(&err, &["'planner'", "schema planning exploded"]);

    // Downstream of a one-hot encoding, schemas are planned while running.
    let mut p = Pipeline::new("panic");
    p.add("src", MemorySource::new(data()));
    p.add("cats", FitCategories::new(["s"]))
        .input("data", "src");
    p.add(
        "enc",
        Encode::new(EncodeMethod::OneHot, UnknownCategory::Ignore),
    )
    .input("data", "src")
    .input("categories", "cats");
    p.add(
        "planner",
        Custom::new(&["data"], &["out"], Behavior::PanicInSchema),
    )
    .input("data", "enc");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.run()));
    let Ok(result) = result else {
        panic!("run() panicked instead of returning an error naming 'planner'")
    };
    let err = expect_err(result, "panicking output_schemas at run time");
    assert_msg(&err, &["'planner'", "schema planning exploded"]);
}

/// Type-checking a 200-operator expression overflowed a default 2 MiB
/// thread stack in unoptimized builds (~13 KiB a nesting level in
/// `ExprArena::lower`) and aborted the process (b3fa174).
#[test]
fn a_200_op_chain_fits_in_a_default_thread_stack() {
    // A stack overflow aborts the whole process, so the work runs in a child
    // process (this test binary, re-run with only this test) and the parent
    // checks that it exited cleanly. Scheduler workers and test threads get
    // 2 MiB; the expression parser accepts up to 500 nesting levels.
    const CHILD: &str = "FUSEFLOW_TEST_CHAIN_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &common::test_name(
                    module_path!(),
                    "a_200_op_chain_fits_in_a_default_thread_stack",
                ),
                "--include-ignored",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("re-run the test binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the 200-op chain crashed the process ({}):\n{stderr}",
            output.status
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("1 passed"));
        return;
    }
    on_thread(2 << 20, || {
        let (b, _) = dataset(6, 100, Layout::Plain);
        for e in long_chains() {
            let k = CpuKernel::compile(
                Projection::try_new(b.schema(), &[("o".to_string(), e)]).unwrap(),
            );
            assert_eq!(k.evaluate(&b).unwrap().num_rows(), 100);
        }
    });
}

/// `logistic::fit` with collinear features and l2 = 0 returned one of
/// infinitely many optima as converged (the Newton step's 1e-12 diagonal
/// damping made the singular system solvable: with `a` duplicated the weights
/// came out 0.49 / 0.49 instead of 0.98 for `a`) instead of the documented
/// error (bc317af).
#[test]
fn collinear_logistic_features_without_l2_are_an_error() {
    let (x, y) = logistic_data(5_000, &[1.0, -1.0], 0.2, 50);
    let a = x.column(0).to_vec();
    let b = x.column(1).to_vec();
    let twice: Vec<f64> = a.iter().map(|v| 2.0 * v).collect();
    let sum: Vec<f64> = a.iter().zip(&b).map(|(a, b)| a + b).collect();
    for (name, extra) in [("duplicate", a.clone()), ("twice", twice), ("sum", sum)] {
        let err = expect_err(
            logistic::fit("t", &design(&[&a, &b, &extra]), &y, 2, &unpenalized()),
            name,
        );
        assert!(
            matches!(err, Error::InvalidParameter { .. }),
            "{name}: {err:?}"
        );
        assert_msg(&err, &["linearly dependent", "l2 > 0"]);
    }
}

/// Separable data with l2 = 0, whose likelihood has no maximum, was reported
/// converged with an arbitrary weight (about 173 here, a training log-loss of
/// ~6e-10) instead of the documented error (bc317af).
#[test]
fn perfectly_separable_data_without_l2_is_an_error() {
    let (x, y) = separable();
    match logistic::fit("t", &x, &y, 2, &unpenalized()) {
        Err(err) => {
            assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
            assert_msg(&err, &["separate the classes perfectly", "l2 > 0"]);
        }
        // Acceptable alternative: a fit that says it did not converge.
        Ok(fit) => assert!(
            !fit.converged,
            "separable data reported as converged: {fit:?}"
        ),
    }
}

/// `Model::from_batch` accepted a network whose layer i+1 does not take
/// layer i's outputs, which then scored silently wrong values (bc317af).
#[test]
fn model_from_batch_rejects_layers_that_do_not_chain() {
    let mut model = small_logistic_model();
    model.info.kind = "mlp".into();
    model.network = Mlp {
        layers: vec![
            DenseLayer {
                inputs: 2,
                outputs: 3,
                weights: vec![0.1; 6],
                bias: vec![0.0; 3],
            },
            // Should take 3 inputs.
            DenseLayer {
                inputs: 4,
                outputs: 1,
                weights: vec![0.1; 4],
                bias: vec![0.0],
            },
        ],
        activation: Activation::Relu,
        head: Head::Sigmoid,
    };
    let err = expect_err(
        Model::from_batch(&model.to_batch().unwrap()),
        "layers that do not chain",
    );
    assert_msg(&err, &["not a valid fuseflow model", "layer 1"]);
}

/// `Model::from_batch` accepted classes that do not fit the head (one class
/// for a sigmoid), and fused scoring then predicted "" (bc317af).
#[test]
fn model_from_batch_rejects_outputs_that_do_not_match_the_classes() {
    let mut model = small_logistic_model();
    // A sigmoid head needs exactly two classes; give it one.
    model.info.classes = vec!["only".into()];
    let err = expect_err(
        Model::from_batch(&model.to_batch().unwrap()),
        "one class for a sigmoid head",
    );
    assert_msg(&err, &["not a valid fuseflow model"]);
}

/// Training accepted a bool feature (and picked one when no feature list was
/// given), but fused scoring of the model failed to type-check `lit(w) * bool`
/// (bc317af).
#[test]
#[expect(
    clippy::needless_range_loop,
    reason = "row i of two columns and the scores"
)]
fn a_model_with_a_bool_feature_scores() {
    let raw = datasets::customers(2_000, 7);
    let data = raw.project(&[2, 5, 6]).unwrap(); // visits, premium, churned
    let model = train(
        &TrainLogistic::new(["visits", "premium"], "churned", LogisticConfig::default()),
        Table::from_batch(data.clone()),
    )
    .unwrap();
    let scorer = Scorer::new("score", model.clone(), &data.schema(), &[]).unwrap();
    let scored = scorer.score(&data).unwrap();
    let layer = &model.network.layers[0];
    let visits = data.column(0).as_primitive::<Int64Type>();
    let premium = data.column(1).as_boolean();
    let p = f64_values(scored.column(0).as_ref());
    for i in 0..data.num_rows() {
        let z = layer.bias[0]
            + layer.weights[0] * visits.value(i) as f64
            + layer.weights[1] * f64::from(u8::from(premium.value(i)));
        assert_close(p[i].unwrap(), sigmoid(z), 1e-12, &format!("row {i}"));
    }
}

/// A chain fused after a step whose schema is known only at run time had its
/// tail planned against the head's data input alone, so a tail with side
/// inputs (Scale reading its statistics) panicked while planning (d126051).
#[test]
fn a_fused_chain_after_a_data_dependent_schema_runs_like_the_unfused_steps() {
    // raw -> opaque; the chain filled -> scaled reads opaque, whose schema is
    // known only at run time, so the schemas are checked then. The chain's
    // tail has a side input (the statistics), which the check must not miss.
    let mut p = Pipeline::new("late");
    p.add("raw", MemorySource::new(raw(10_000)));
    // Hands its data on unchanged, but declares its schema known only after running.
    let opaque = TestStep::new("opaque", |_, inputs| Ok(vec![inputs[0].clone()]));
    p.add("opaque", opaque.schema_depends_on_data())
        .input("data", "raw");
    p.add("stats", FitStats::new(["x", "y"]))
        .input("data", "opaque");
    p.add("filled", FillNull::new(["x"], FillValue::Mean))
        .inputs(["opaque", "stats"]);
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["filled", "stats"]);
    // Fused whatever FUSEFLOW_FUSE says (.ci/run runs this module with it at 0).
    let fused = RunOptions {
        fuse: true,
        ..options(DeviceSet::cpu_only())
    };
    assert_eq!(p.plan(&fused).unwrap().groups.len(), 1);
    let unfused = RunOptions {
        fuse: false,
        ..options(DeviceSet::cpu_only())
    };
    let got = p.run_with(&fused).unwrap();
    let want = p.run_with(&unfused).unwrap();
    let scaled = |r: &fuseflow::RunOutput| r.output("scaled").unwrap().concat().unwrap();
    assert_eq!(scaled(&got), scaled(&want));
}

/// Another process that reused a fused chain's tail from a run still in
/// flight failed with "run X has no step 'clipped'": the run recorded the
/// tail before its members, and the reuse looks up the members' records in
/// it (1 run in 100 of `workspace_processes::concurrent_runs_on_one_fresh_workspace`
/// under load). Now the members are recorded first, in the run store's order.
#[test]
fn a_fused_chain_records_its_members_before_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::open(dir.path()).unwrap());
    let mut p = Pipeline::new("order");
    p.add("raw", MemorySource::new(raw(1000)));
    p.add("stats", FitStats::new(["x", "y"]))
        .input("data", "raw");
    p.add("filled", FillNull::new(["x"], FillValue::Mean))
        .inputs(["raw", "stats"]);
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["filled", "stats"]);
    let opts = RunOptions {
        fuse: true,
        workspace: Some(Arc::clone(&ws)),
        ..options(DeviceSet::cpu_only())
    };
    assert_eq!(p.plan(&opts).unwrap().groups.len(), 1);
    for _ in 0..2 {
        // Cold (the chain computes), then warm (the tail is reused).
        let run = p.run_with(&opts).unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("runs.sqlite")).unwrap();
        let seq = |step: &str| -> i64 {
            conn.query_row(
                "SELECT seq FROM step_runs WHERE run = ?1 AND step = ?2",
                [run.run_id.as_ref().unwrap().as_str(), step],
                |row| row.get(0),
            )
            .unwrap()
        };
        assert!(seq("filled") < seq("scaled"), "the member after its tail");
    }
}

/// A run whose planning failed (a damaged `calibration.toml`) was left
/// recorded as running (d126051: the run is planned before it is recorded).
#[test]
fn a_run_that_cannot_be_planned_leaves_no_run_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Calibration::default();
    bad.cuda.link_gbs = 0.0;
    bad.store(dir.path()).unwrap();

    // A run that cannot be planned fails with that error and leaves no run behind.
    let ws = Arc::new(Workspace::open(dir.path()).unwrap());
    let opts = RunOptions {
        workspace: Some(Arc::clone(&ws)),
        devices: Some(DeviceSet::cpu_only()),
        ..RunOptions::default()
    };
    let err = prep(MemorySource::new(raw(100)))
        .run_with(&opts)
        .unwrap_err();
    assert_msg(&err, &["cuda.link_gbs", "positive"]);
    assert!(ws.runs().runs(None).unwrap().is_empty());
}

/// A training step's output (a model with `List(Float64)` weights) could not
/// be content-hashed, so no spec with training ran with a workspace (1f696fc).
/// Now: cold, warm with every step a hit, `why`, the model fetched and scoring
/// a file by itself.
#[test]
fn training_output_with_list_column_is_cacheable() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let ws = ws.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = fuseflow(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let steps = |table: &str, status: &str| -> Vec<String> {
        ["logistic", "mlp", "logistic_scores", "mlp_scores", "stats"]
            .into_iter()
            .filter(|s| {
                !table
                    .lines()
                    .any(|l| l.starts_with(&format!("{s} ")) && l.contains(status))
            })
            .map(String::from)
            .collect()
    };
    let cold = run(&["run", "examples/train.toml", "--workspace", ws]);
    assert_eq!(steps(&cold, "miss"), Vec::<String>::new(), "cold:\n{cold}");
    let warm = run(&["run", "examples/train.toml", "--workspace", ws]);
    assert_eq!(steps(&warm, "hit ("), Vec::<String>::new(), "warm:\n{warm}");

    let why = run(&["why", "latest", "logistic", "--workspace", ws]);
    assert!(why.contains("cache hit"), "{why}");
    let model = dir.path().join("model.arrow");
    let model = model.to_str().unwrap();
    run(&[
        "output",
        "latest",
        "logistic",
        "-o",
        model,
        "--workspace",
        ws,
    ]);
    let scored = dir.path().join("scores.parquet");
    run(&[
        "score",
        model,
        "examples/data/customers.csv",
        scored.to_str().unwrap(),
        "--workspace",
        ws,
    ]);
    let mut check = fuseflow::Pipeline::new("check");
    check.add("scores", fuseflow::pipeline::io::Read::new(&scored));
    let run = check.run().unwrap();
    assert_eq!(run.output("scores").unwrap().num_rows(), 400);
}

/// `fuseflow` panicked ("failed printing to stdout: Broken pipe") when the
/// reader of its output went away, as `| head` does (b57a00a: SIGPIPE has
/// its default action again, so the process ends as other tools do).
#[cfg(unix)]
#[test]
fn the_cli_ends_quietly_when_its_output_pipe_closes() {
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().unwrap();
    // A pipe whose reader is gone before the CLI starts: its first write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_fuseflow"))
        .arg("--workspace")
        .arg(dir.path())
        .args(["explain", "examples/prep.toml", "--device", "cpu"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{}: {stderr}",
        out.status
    );
}

//! Pipelines from TOML spec files, and the `fuseflow` command line.

use std::path::Path;
use std::process::Command;

use crate::common;

use fuseflow::Error;
use fuseflow::backend::{DeviceChoice, DeviceKind};
use fuseflow::exec::RunOptions;
use fuseflow::pipeline::spec;

fn parse_err(text: &str) -> Error {
    spec::parse(text, Path::new("bad.toml")).expect_err("the spec must be rejected")
}

#[test]
fn shipped_example_spec_runs_end_to_end() {
    let pipeline = spec::load(Path::new("examples/prep.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Same pipeline, but written into a temporary directory.
    let text = std::fs::read_to_string("examples/prep.toml")
        .unwrap()
        .replace(
            "../target/customers-prepared.parquet",
            &dir.path().join("out.parquet").display().to_string(),
        );
    let copy = spec::parse(&text, Path::new("examples/prep.toml")).unwrap();
    assert_eq!(pipeline.step_names().count(), copy.step_names().count());
    let run = copy.run().unwrap();
    let model_input = run.output("model_input").unwrap();
    assert!(
        model_input.num_rows() > 50,
        "about a quarter of 400 rows is the test split"
    );
    assert_eq!(model_input.schema().fields().len(), 10);
    assert!(dir.path().join("out.parquet").exists());
}

#[test]
fn malformed_toml_names_the_line() {
    let err = parse_err("name = \"x\"\n\n[[steps]]\nname = \"a\"\nkind = = \"read\"\n");
    let Error::Spec { line, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*line, Some(5), "{err}");
    assert!(err.to_string().starts_with("bad.toml line 5"), "{err}");
}

#[test]
fn unknown_key_names_the_key_and_the_step_line() {
    let err = parse_err(
        "name = \"x\"\n[[steps]]\nname = \"s\"\nkind = \"select\"\ncolums = [\"a\"]\ncolumns = [\"a\"]\ninput = \"raw\"\n",
    );
    let text = err.to_string();
    assert!(
        text.contains("line 2") && text.contains("'colums'") && text.contains("'s'"),
        "{text}"
    );
}

#[test]
fn unknown_kind_lists_the_known_kinds() {
    let text =
        parse_err("name = \"x\"\n[[steps]]\nname = \"s\"\nkind = \"normalise\"\n").to_string();
    assert!(
        text.contains("unknown kind 'normalise'") && text.contains("fit_stats"),
        "{text}"
    );
}

#[test]
fn wrong_value_type_names_the_key() {
    let text = parse_err("name = \"x\"\n[[steps]]\nname = \"s\"\nkind = \"split\"\ninput = \"r\"\ntest_fraction = \"big\"\n").to_string();
    assert!(
        text.contains("'test_fraction'") && text.contains("a number"),
        "{text}"
    );
}

#[test]
fn reuse_and_version_keys_reach_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "x\n1.0\n2.0\n").unwrap();
    let text = "name = \"keys\"\n\
                [[steps]]\nname = \"raw\"\nkind = \"read\"\npath = \"d.csv\"\nversion = \"2026-q4\"\n\
                [[steps]]\nname = \"sel\"\nkind = \"select\"\ninput = \"raw\"\ncolumns = [\"x\"]\nreuse = false\n";
    let pipeline = spec::parse(text, &dir.path().join("keys.toml")).unwrap();
    let ws = std::sync::Arc::new(fuseflow::Workspace::open(dir.path().join("ws")).unwrap());
    let options = fuseflow::RunOptions::default().with_workspace(ws.clone());
    pipeline.run_with(&options).unwrap();
    let run = pipeline.run_with(&options).unwrap();
    let cache = |step: &str| {
        run.steps
            .iter()
            .find(|s| s.name == step)
            .unwrap()
            .cache
            .clone()
    };
    assert!(matches!(cache("raw"), fuseflow::CacheUse::Hit { .. }));
    assert_eq!(cache("sel"), fuseflow::CacheUse::Off, "reuse = false");
    let raw = ws.runs().step_run("latest", "raw").unwrap();
    assert!(raw.record.notes.unwrap().contains("version '2026-q4'"));

    let err = parse_err(
        "name = \"x\"\n[[steps]]\nname = \"a\"\nkind = \"read\"\npath = \"d.csv\"\nreuse = \"no\"\n",
    );
    assert!(err.to_string().contains("reuse"), "{err}");
}

#[test]
fn bad_expression_names_the_key_and_position() {
    let text = parse_err("name = \"x\"\n[[steps]]\nname = \"d\"\nkind = \"derive\"\ninput = \"r\"\ncolumns = { y = \"log1p(x\" }\n").to_string();
    assert!(
        text.contains("columns.y") && text.contains("log1p(x"),
        "{text}"
    );
}

#[test]
fn missing_required_key_is_reported() {
    let text = parse_err("name = \"x\"\n[[steps]]\nname = \"r\"\nkind = \"read\"\n").to_string();
    assert!(text.contains("missing key 'path'"), "{text}");
}

pub(crate) fn fuseflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fuseflow"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_explain_and_run() {
    let explain = fuseflow(&["explain", "examples/prep.toml"]);
    assert!(
        explain.status.success(),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    let text = String::from_utf8_lossy(&explain.stdout);
    let (split, stats) = (
        text.find(". split [split]").unwrap(),
        text.find(". stats [fit_stats]").unwrap(),
    );
    assert!(split < stats, "dependency order: {text}");

    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("p.toml");
    std::fs::copy("examples/data/customers.csv", dir.path().join("c.csv")).unwrap();
    std::fs::write(
        &spec_path,
        "name = \"t\"\n[[steps]]\nname = \"raw\"\nkind = \"read\"\npath = \"c.csv\"\n[[steps]]\nname = \"out\"\nkind = \"write\"\ninput = \"raw\"\npath = \"o.arrow\"\n",
    )
    .unwrap();
    let run = fuseflow(&["run", spec_path.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("raw"));
    assert!(dir.path().join("o.arrow").exists());
}

#[test]
fn cli_reports_errors_with_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("p.toml");
    std::fs::write(
        &spec_path,
        "name = \"t\"\n[[steps]]\nname = \"raw\"\nkind = \"read\"\npath = \"missing.csv\"\n",
    )
    .unwrap();
    let out = fuseflow(&["run", spec_path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.csv") && err.contains("cannot open"),
        "{err}"
    );
}

/// The float score columns of `step`'s output, one after the other, as f64
/// (nulls kept as `None`, so a null on one side only is a difference).
fn scores(run: &fuseflow::RunOutput, step: &str) -> Vec<Option<f64>> {
    let batch = run.output(step).unwrap().concat().unwrap();
    batch
        .columns()
        .iter()
        .filter(|c| c.data_type().is_floating())
        .flat_map(|c| {
            let c = arrow_cast::cast(c, &arrow_schema::DataType::Float64).unwrap();
            common::f64_values(c.as_ref())
        })
        .collect()
}

#[test]
fn shipped_training_spec_scores_the_same_on_wgpu_as_on_the_cpu() {
    let Some(_) = common::devices::wgpu() else {
        return;
    };
    let pipeline = spec::load(Path::new("examples/train.toml")).unwrap();
    let run_on = |device: DeviceChoice| {
        pipeline
            .run_with(&RunOptions {
                device,
                ..RunOptions::default()
            })
            .unwrap()
    };
    let (cpu, gpu) = (
        run_on(DeviceChoice::On(DeviceKind::Cpu)),
        run_on(DeviceChoice::On(DeviceKind::Wgpu)),
    );
    for step in ["logistic", "mlp"] {
        let report = gpu.steps.iter().find(|s| s.name == step).unwrap();
        assert!(
            report.notes.iter().any(|n| n.contains("in f32")),
            "{step} trained on the GPU: {:?}",
            report.notes
        );
    }
    // f32 training on the device: the same probabilities within 1e-3 (Newton
    // ends within f32 resolution of the optimum; the MLP's five epochs of
    // Adam move by f32 rounding only).
    for step in ["logistic_scores", "mlp_scores"] {
        let (want, got) = (scores(&cpu, step), scores(&gpu, step));
        assert_eq!(want.len(), got.len());
        assert!(want.len() > 50, "{step}: the test split has about 100 rows");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let (g, w) = (g.expect("a score"), w.expect("a score"));
            assert!((g - w).abs() <= 1e-3, "{step}, row {i}: {g} vs {w}");
        }
    }
}

#[test]
fn a_fused_step_output_is_recomputed_on_fetch_and_equals_the_stored_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("examples/data/customers.csv", dir.path().join("c.csv")).unwrap();
    let spec = dir.path().join("chain.toml");
    std::fs::write(
        &spec,
        r#"name = "chain"
[[steps]]
name = "raw"
kind = "read"
path = "c.csv"
[[steps]]
name = "stats"
kind = "fit_stats"
input = "raw"
columns = ["age", "income"]
[[steps]]
name = "filled"
kind = "fill_null"
inputs = { data = "raw", stats = "stats" }
columns = ["age", "income"]
value = "mean"
[[steps]]
name = "scaled"
kind = "scale"
inputs = { data = "filled", stats = "stats" }
method = "zscore"
[[steps]]
name = "scored"
kind = "derive"
input = "scaled"
columns = { s = "age * 0.5 - income" }
[[steps]]
name = "save"
kind = "write"
input = "scored"
path = "out.parquet"
"#,
    )
    .unwrap();
    let spec = spec.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = fuseflow(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let fetched = |ws: &str, step: &str| {
        let file = dir.path().join(format!("{step}-{}.arrow", ws.len()));
        let (ok, _, err) = run(&[
            "output",
            "latest",
            step,
            "-o",
            file.to_str().unwrap(),
            "--workspace",
            ws,
        ]);
        assert!(ok, "output {step} from {ws}: {err}");
        let table = fuseflow::pipeline::io::Read::new(&file);
        let mut p = fuseflow::Pipeline::new("back");
        p.add("t", table);
        p.run().unwrap().output("t").unwrap().concat().unwrap()
    };
    let every = dir.path().join("every");
    let fused = dir.path().join("fused-ws");
    let (every, fused) = (every.to_str().unwrap(), fused.to_str().unwrap());
    let (ok, _, err) = run(&["run", spec, "--workspace", every, "--quiet"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["run", spec, "--workspace", fused, "--cache", "materialized"]);
    assert!(ok, "{err}");
    if std::env::var("FUSEFLOW_FUSE").as_deref() == Ok("0") {
        return; // unfused, every step's output is stored anyway
    }
    assert!(out.contains("fused into"), "the chain ran fused:\n{out}");
    // Members inside the chain (one never stored under either policy's
    // fusion, 'scored' piped into the writer) equal every-step's stored tables.
    for step in ["filled", "scaled", "scored"] {
        assert_eq!(fetched(fused, step), fetched(every, step), "{step}");
    }
    // A recorded spec that no longer says what ran is refused, not replayed.
    let db = rusqlite::Connection::open(Path::new(fused).join("runs.sqlite")).unwrap();
    db.execute(
        "UPDATE pipelines SET spec = replace(spec, 'age * 0.5', 'age * 0.7')",
        [],
    )
    .unwrap();
    let file = dir.path().join("tampered.arrow");
    let (ok, _, err) = run(&[
        "output",
        "latest",
        "scored",
        "-o",
        file.to_str().unwrap(),
        "--workspace",
        fused,
    ]);
    assert!(
        !ok && err.contains("another cache key") && err.contains("params"),
        "{err}"
    );
    assert!(!file.exists());
}

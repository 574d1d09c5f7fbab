//! Pipeline parameters: `[params]` in spec files, `${name}` references,
//! values from the API and the command line, per-step cache keys, and the
//! run record.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuseflow::exec::{CachePolicy, CacheUse, RunOptions};
use fuseflow::pipeline::params::ParamValues;
use fuseflow::pipeline::spec;
use fuseflow::{Error, Workspace};

use crate::common::assert_msg;
use crate::spec_files::fuseflow;

const SPEC: &str = r#"name = "params"

[params.min_x]
type = "float"
default = 0.0
description = "the smallest x kept"
range = [-100.0, 100.0]

[params.factor]
type = "int"
default = 2

[params.fill]
type = "float"
default = -1.0

[params.method]
type = "string"
default = "zscore"
allowed = ["zscore", "minmax"]

[[steps]]
name = "raw"
kind = "read"
path = "data.csv"

[[steps]]
name = "scaled_y"
kind = "derive"
input = "raw"
columns = { y2 = "y * ${factor}" }

[[steps]]
name = "shifted"
kind = "derive"
input = "scaled_y"
columns = { x2 = "x + ${min_x}" }

[[steps]]
name = "save"
kind = "write"
input = "shifted"
path = "out.parquet"

[[steps]]
name = "kept"
kind = "filter"
input = "raw"
predicate = "x >= ${min_x}"

[[steps]]
name = "filled"
kind = "fill_null"
input = "raw"
columns = ["x"]
value = "${fill}"
"#;

/// A directory with the spec (as `p.toml`) and its data.
fn setup(spec: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.csv"), "x,y\n1.5,2\n,3\n-4,5\n3,1\n").unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, spec).unwrap();
    (dir, path)
}

/// `fuseflow ARGS`'s standard output; the command must succeed.
fn ok(args: &[&str]) -> String {
    let out = fuseflow(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn load(path: &Path, values: ParamValues) -> fuseflow::Result<fuseflow::Pipeline> {
    spec::load_with(path, &values).map(|(p, _)| p)
}

fn column(run: &fuseflow::RunOutput, step: &str, name: &str) -> Vec<Option<f64>> {
    let table = run.output(step).unwrap().concat().unwrap();
    let column = table.column_by_name(name).unwrap();
    let column = arrow_cast::cast(column, &arrow_schema::DataType::Float64).unwrap();
    arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Float64Type>(&column)
        .iter()
        .collect()
}

#[test]
fn references_take_the_defaults_or_the_given_values() {
    let (_dir, path) = setup(SPEC);
    let (pipeline, recorded) = spec::load_with(&path, &ParamValues::new()).unwrap();
    let run = pipeline.run().unwrap();
    assert_eq!(
        column(&run, "scaled_y", "y2"),
        [Some(4.0), Some(6.0), Some(10.0), Some(2.0)]
    );
    assert_eq!(column(&run, "kept", "x"), [Some(1.5), Some(3.0)]);
    // A whole-value reference keeps the parameter's type: a float fill.
    assert_eq!(
        column(&run, "filled", "x"),
        [Some(1.5), Some(-1.0), Some(-4.0), Some(3.0)]
    );
    assert_eq!(
        recorded,
        [
            ("factor".to_string(), "2".to_string()),
            ("fill".into(), "-1.0".into()),
            ("method".into(), "\"zscore\"".into()),
            ("min_x".into(), "0.0".into()),
        ]
    );

    let values = ParamValues::new()
        .assignment("factor=3")
        .unwrap()
        .value("min_x", 2.0)
        .assignment("fill = 7")
        .unwrap();
    let run = load(&path, values).unwrap().run().unwrap();
    assert_eq!(
        column(&run, "scaled_y", "y2"),
        [Some(6.0), Some(9.0), Some(15.0), Some(3.0)]
    );
    assert_eq!(column(&run, "kept", "x"), [Some(3.0)]);
    assert_eq!(column(&run, "filled", "x")[1], Some(7.0));
}

#[test]
fn bad_values_name_the_parameter_and_its_line() {
    let (_dir, path) = setup(SPEC);
    let line_of = |key: &str| SPEC.lines().position(|l| l == key).unwrap() + 1;
    let err = |values: ParamValues| load(&path, values).expect_err("must be rejected");

    let e = err(ParamValues::new().assignment("nope=1").unwrap());
    assert_msg(
        &e,
        &["unknown parameter 'nope'", "factor, fill, method, min_x"],
    );

    let e = err(ParamValues::new().assignment("factor=2.5").unwrap());
    assert_msg(&e, &["parameter 'factor' takes an int", "'2.5'"]);
    assert!(
        matches!(&e, Error::Spec { line: Some(l), .. } if *l == line_of("[params.factor]")),
        "{e}"
    );

    let e = err(ParamValues::new().value("min_x", 1000.0));
    assert_msg(&e, &["'min_x' is 1000.0", "range [-100, 100]"]);
    let e = err(ParamValues::new().assignment("method=robust").unwrap());
    assert_msg(
        &e,
        &["'method' is \"robust\"", "allowed: \"zscore\", \"minmax\""],
    );
    assert!(ParamValues::new().assignment("factor").is_err());

    // A required parameter, and a reference to one not declared.
    let required = SPEC.replace("default = 2\n", "");
    let (_dir2, path2) = setup(&required);
    let e = load(&path2, ParamValues::new()).unwrap_err();
    assert_msg(
        &e,
        &["parameter 'factor' has no default", "--param factor=VALUE"],
    );
    let undeclared = SPEC.replace("${min_x}", "${minimum}");
    let (_dir3, path3) = setup(&undeclared);
    let e = load(&path3, ParamValues::new()).unwrap_err();
    assert_msg(
        &e,
        &["'${minimum}' refers to no declared parameter", "min_x"],
    );
    let step_line = SPEC
        .lines()
        .position(|l| l == "name = \"shifted\"")
        .unwrap();
    assert!(
        matches!(&e, Error::Spec { line: Some(l), .. } if *l == step_line),
        "{e}"
    );
}

#[test]
fn changing_a_parameter_runs_again_only_the_steps_that_read_it() {
    let (dir, path) = setup(SPEC);
    let ws = Arc::new(Workspace::open(dir.path().join("w")).unwrap());
    let run = |values: ParamValues| {
        let (pipeline, params) = spec::load_with(&path, &values).unwrap();
        // Every step keyed and stored on its own: a fused chain runs as a
        // whole when any of its members changes.
        let options = RunOptions {
            workspace: Some(Arc::clone(&ws)),
            params,
            spec: Some(SPEC.to_string()),
            cache: CachePolicy::EveryStep,
            ..RunOptions::default()
        };
        let out = pipeline.run_with(&options).unwrap();
        let ran = |step: &str| {
            let report = out.steps.iter().find(|s| s.name == step).unwrap();
            !matches!(report.cache, CacheUse::Hit { .. })
        };
        ["scaled_y", "shifted", "kept", "filled"].map(ran)
    };
    assert_eq!(run(ParamValues::new()), [true; 4]);
    assert_eq!(run(ParamValues::new()), [false; 4]);
    // `fill` is read by `filled` alone; `min_x` by `shifted` (after
    // `scaled_y`, which does not read it) and `kept`.
    let fill = || ParamValues::new().value("fill", 5.0);
    assert_eq!(run(fill()), [false, false, false, true]);
    assert_eq!(run(fill().value("min_x", 2.0)), [false, true, true, false]);
    // `method` is read by no step: changing it reruns nothing.
    let method = fill().value("min_x", 2.0).value("method", "minmax");
    assert_eq!(run(method), [false; 4]);
}

#[test]
fn the_cli_takes_parameters_records_them_and_recomputes_with_them() {
    let (dir, path) = setup(SPEC);
    let ws = dir.path().join("w");
    let ws = ws.to_str().unwrap();
    let spec = path.to_str().unwrap();
    let params = dir.path().join("values.toml");
    std::fs::write(&params, "factor = 3\nmin_x = -10\n").unwrap();
    let params = params.to_str().unwrap();
    ok(&[
        "--workspace",
        ws,
        "run",
        spec,
        "--params",
        params,
        "--param",
        "fill=4",
        "-q",
    ]);
    let show = ok(&["--workspace", ws, "show", "latest"]);
    assert!(
        show.contains("factor = 3") && show.contains("fill = 4.0"),
        "{show}"
    );
    let runs = ok(&["--workspace", ws, "runs"]);
    assert!(runs.contains("PARAMS"), "{runs}");
    assert!(
        runs.contains("factor=3, fill=4.0, method=\"zscore\", min_x=-10.0"),
        "{runs}"
    );
    // `scaled_y` ran fused into `shifted`, so fetching it computes it again,
    // with the parameters the run had (its recorded key must match).
    let fetched = dir.path().join("scaled_y.csv");
    ok(&[
        "--workspace",
        ws,
        "output",
        "latest",
        "scaled_y",
        "--output",
        fetched.to_str().unwrap(),
    ]);
    let fetched = std::fs::read_to_string(&fetched).unwrap();
    assert!(fetched.contains(",15"), "y2 = 5 * 3: {fetched}");

    // `why` names the parameter that changed.
    ok(&[
        "--workspace",
        ws,
        "run",
        spec,
        "--params",
        params,
        "--param",
        "factor=4",
        "-q",
    ]);
    let why = ok(&["--workspace", ws, "why", "latest", "scaled_y"]);
    assert!(why.contains("parameter 'factor': 3 -> 4"), "{why}");
    let why = ok(&["--workspace", ws, "why", "latest", "kept"]);
    assert!(why.contains("cache hit"), "kept reads min_x only: {why}");

    let bad = fuseflow(&["--workspace", ws, "run", spec, "--param", "factor=x"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("p.toml line ") && stderr.contains("'factor'"),
        "{stderr}"
    );
}

#[test]
fn a_clone_records_its_origin_and_reuses_what_its_changes_leave_alone() {
    let (dir, path) = setup(SPEC);
    let ws = dir.path().join("w");
    let ws = ws.to_str().unwrap();
    let clone = dir.path().join("tripled.toml");
    let (spec, clone) = (path.to_str().unwrap(), clone.to_str().unwrap());
    ok(&["--workspace", ws, "run", spec, "-q"]);
    ok(&[
        "clone",
        spec,
        "-o",
        clone,
        "--set",
        "params.factor=3",
        "--set",
        "filled.value=9",
    ]);
    let text = std::fs::read_to_string(clone).unwrap();
    assert!(
        text.contains("name = \"tripled\"") && text.contains("[origin]"),
        "{text}"
    );
    ok(&["--workspace", ws, "run", clone, "-q"]);
    let show = ok(&["--workspace", ws, "show", "latest"]);
    assert!(show.contains("origin    cloned from 'params'"), "{show}");
    assert!(show.contains("params.factor=3, filled.value=9"), "{show}");
    // `kept` reads neither change: the clone reused it from the first run.
    let why = ok(&["--workspace", ws, "why", "latest", "kept"]);
    assert!(why.contains("cache hit"), "{why}");
    let why = ok(&["--workspace", ws, "why", "latest", "filled"]);
    assert!(why.contains("ran"), "{why}");
    let runs = ok(&["--workspace", ws, "runs", "tripled"]);
    assert_eq!(runs.lines().count(), 2, "one run of the clone: {runs}");
    // `runs` shows which pipeline a clone came from.
    let header: Vec<&str> = runs.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&header[..3], ["RUN", "PIPELINE", "FROM"], "{runs}");
    let row: Vec<&str> = runs.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[1..3], ["tripled", "params"], "{runs}");
    let all = ok(&["--workspace", ws, "runs"]);
    let source_row = all
        .lines()
        .find(|l| l.contains(" params ") && !l.contains("tripled"));
    assert!(source_row.is_some_and(|l| l.contains(" - ")), "{all}");

    // A template with a required parameter clones too.
    let template = dir.path().join("template.toml");
    std::fs::write(&template, SPEC.replace("default = 2\n", "")).unwrap();
    let (template, copy) = (template.to_str().unwrap(), dir.path().join("copy.toml"));
    ok(&[
        "clone",
        template,
        "-o",
        copy.to_str().unwrap(),
        "--set",
        "filled.value=1",
    ]);
    let err = fuseflow(&["run", copy.to_str().unwrap(), "--no-workspace"]);
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(stderr.contains("'factor' has no default"), "{stderr}");
    let bad = fuseflow(&["clone", spec, "-o", clone, "--set", "filled.kind=bogus"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("unknown kind 'bogus'"),
        "{stderr}"
    );

    let bad = fuseflow(&["clone", spec, "-o", clone, "--set", "nope.key=1"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("no step 'nope'"),
        "{stderr}"
    );
}

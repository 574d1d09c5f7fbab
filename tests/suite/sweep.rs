//! Variant sweeps: a spec's `[sweep]` compiled into one pipeline whose
//! distinct step instances run once, variants that fail alone, re-runs
//! that compute only what is new, results from the run store and the CLI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuseflow::exec::{CacheUse, RunOptions};
use fuseflow::ml::logistic::LogisticConfig;
use fuseflow::pipeline::io::Read;
use fuseflow::pipeline::models::TrainLogistic;
use fuseflow::pipeline::params::ParamValues;
use fuseflow::pipeline::prep::{FillNull, FillValue, FitStats, Scale, ScaleMethod, Split};
use fuseflow::pipeline::spec;
use fuseflow::pipeline::sweep::{Assignment, Sweep};
use fuseflow::track::{SweepResults, VariantStatus};
use fuseflow::{Pipeline, Workspace};

use crate::common::assert_msg;
use crate::spec_files::fuseflow;

/// The shipped customers data, prepared, scaled three ways, and a model
/// with two feature sets and three L2 values: 3 x 3 x 2 = 18 variants.
fn spec(l2: &str) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/customers.csv");
    format!(
        r#"name = "sweep"

[params.l2]
type = "float"
default = 1.0

[sweep.params]
l2 = {l2}

[sweep.steps.scaled]
zscore = {{ method = "zscore" }}
minmax = {{ method = "minmax" }}
robust = {{ method = "robust" }}

[sweep.steps.model]
all = {{ features = ["age", "income_log", "visits", "premium"] }}
few = {{ features = ["age", "visits"] }}

[[steps]]
name = "raw"
kind = "read"
path = "{}"

[[steps]]
name = "prepared"
kind = "derive"
input = "raw"
columns = {{ income_log = "log1p(income)" }}

[[steps]]
name = "split"
kind = "split"
input = "prepared"
test_fraction = 0.25
seed = 7

[[steps]]
name = "stats"
kind = "fit_stats"
input = "split.train"
columns = ["age", "income_log", "visits"]
quantiles = true

[[steps]]
name = "filled"
kind = "fill_null"
inputs = {{ data = "split.train", stats = "stats" }}
columns = ["age", "income_log"]
value = "mean"

[[steps]]
name = "scaled"
kind = "scale"
inputs = {{ data = "filled", stats = "stats" }}

[[steps]]
name = "model"
kind = "train_logistic"
input = "scaled"
label = "churned"
features = ["age"]
l2 = "${{l2}}"

[[steps]]
name = "scores"
kind = "score"
inputs = {{ model = "model", data = "split.test" }}
keep = ["churned"]

[[steps]]
name = "quality"
kind = "evaluate"
input = "scores"
label = "churned"
"#,
        data.display()
    )
}

fn write_spec(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load(path: &Path) -> Pipeline {
    spec::load(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Steps that ran (neither reused nor off the cache).
fn ran(run: &fuseflow::RunOutput) -> Vec<String> {
    let mut names: Vec<String> = run
        .steps
        .iter()
        .filter(|s| !matches!(s.cache, CacheUse::Hit { .. }))
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names
}

#[test]
fn a_3x3x2_sweep_runs_each_distinct_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = load(&write_spec(dir.path(), &spec("[0.1, 1.0, 10.0]")));
    let variants = pipeline.variants();
    assert_eq!(variants.len(), 18);
    assert_eq!(variants[0].name, "l2=0.1,scaled=zscore,model=all");
    assert_eq!(variants[17].name, "l2=10.0,scaled=robust,model=few");
    // raw, prepared, split, stats, filled once; scaled 3 times; model,
    // scores and quality once per variant: 5 + 3 + 3 * 18, where running
    // the 18 one by one would take 18 * 9.
    assert_eq!(pipeline.step_names().count(), 5 + 3 + 3 * 18);
    let run = pipeline.run().unwrap();
    assert_eq!(run.steps.len(), 62, "every instance ran once");
    assert!(run.failed.is_empty());
    let v = &variants[4];
    assert_eq!(v.instance("raw"), Some("raw"));
    assert_eq!(v.instance("scaled"), Some("scaled[scaled=robust]"));
    assert_eq!(
        v.instance("model"),
        Some("model[l2=0_1,scaled=robust,model=all]")
    );
    // Each variant's model saw its own scaling, feature set and penalty.
    let with_l2 = |l2: &str, scaled: &str| {
        let name = format!("l2={l2},scaled={scaled},model=all");
        let v = variants.iter().find(|v| v.name == name).unwrap();
        run.output(&format!("{}.metrics", v.instance("quality").unwrap()))
            .unwrap()
    };
    assert_ne!(
        with_l2("0.1", "zscore").concat().unwrap(),
        with_l2("10.0", "zscore").concat().unwrap()
    );
}

#[test]
fn a_failing_variant_fails_alone_and_the_others_complete() {
    let dir = tempfile::tempdir().unwrap();
    // The 'none' filter keeps no rows, so its models cannot train.
    let text = spec("[0.1, 1.0]")
        .replace(
            "[sweep.steps.model]\n",
            "[sweep.steps.kept]\nall = { predicate = \"age > 0\" }\nnone = { predicate = \"age > 1000\" }\n\n[sweep.steps.model]\n",
        )
        .replace(
            "input = \"scaled\"\nlabel",
            "input = \"kept\"\nlabel",
        )
        .replace(
            "[[steps]]\nname = \"model\"",
            "[[steps]]\nname = \"kept\"\nkind = \"filter\"\ninput = \"scaled\"\npredicate = \"age > 0\"\n\n[[steps]]\nname = \"model\"",
        );
    let pipeline = load(&write_spec(dir.path(), &text));
    assert_eq!(pipeline.variants().len(), 2 * 3 * 2 * 2);
    let ws = Arc::new(Workspace::open(dir.path().join("ws")).unwrap());
    let options = RunOptions {
        workspace: Some(Arc::clone(&ws)),
        ..RunOptions::default()
    };
    let run = pipeline.run_with(&options).unwrap();
    // 2 penalties x 3 scalings x 2 feature sets train on no rows.
    assert_eq!(run.failed.len(), 12);
    for e in &run.failed {
        assert_msg(e, &["kept=none", "no rows"]);
    }
    let id = run.run_id.clone().unwrap();
    let results = SweepResults::of(
        &ws.runs().run(id.as_str()).unwrap(),
        ws.runs().variants(&id).unwrap(),
    )
    .unwrap();
    for row in &results.rows {
        let none = row.variant.value("kept") == Some("none");
        match &row.status {
            VariantStatus::Failed { step, .. } => {
                assert!(none, "{} failed", row.variant.name);
                assert!(step.starts_with("model["), "{step}");
            }
            VariantStatus::Succeeded => {
                assert!(!none, "{} succeeded", row.variant.name);
                let auc = results.metrics.iter().position(|m| m == "roc_auc").unwrap();
                assert!(row.metrics[auc] > 0.0);
            }
            VariantStatus::Incomplete => panic!("{} incomplete", row.variant.name),
        }
    }
    let summary = &ws.runs().run(id.as_str()).unwrap().summary;
    assert_eq!(summary.status.to_string(), "failed");
    assert!(
        summary
            .error
            .as_deref()
            .unwrap()
            .starts_with("12 steps failed")
    );
}

#[test]
fn one_more_value_runs_only_the_new_variants_new_steps() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::open(dir.path().join("ws")).unwrap());
    let options = RunOptions {
        workspace: Some(Arc::clone(&ws)),
        ..RunOptions::default()
    };
    let first = load(&write_spec(dir.path(), &spec("[0.1, 1.0]")));
    assert_eq!(
        ran(&first.run_with(&options).unwrap()).len(),
        5 + 3 + 3 * 12
    );
    let second = load(&write_spec(dir.path(), &spec("[0.1, 1.0, 10.0]")));
    let run = second.run_with(&options).unwrap();
    let new = ran(&run);
    // Only l2 = 10's 6 models, their scores and evaluations.
    assert_eq!(new.len(), 3 * 6, "{new:?}");
    assert!(new.iter().all(|s| s.contains("l2=10_0")), "{new:?}");
    // The reused evaluations' metrics are in the new run's record too.
    let id = run.run_id.unwrap();
    let results = SweepResults::of(
        &ws.runs().run(id.as_str()).unwrap(),
        ws.runs().variants(&id).unwrap(),
    )
    .unwrap();
    let auc = results.metrics.iter().position(|m| m == "roc_auc").unwrap();
    assert!(results.rows.iter().all(|r| r.metrics[auc] > 0.0));
    assert_eq!(results.rows[0].hits, results.rows[0].steps);
}

#[test]
fn bad_sweeps_name_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let err = |text: &str, values: ParamValues| {
        let path = write_spec(dir.path(), text);
        spec::load_with(&path, &values).expect_err("an error")
    };
    let base = spec("[0.1, 1.0]");
    assert_msg(
        &err(&base, ParamValues::new().value("l2", 3.0)),
        &["'l2' is swept", "line"],
    );
    assert_msg(
        &err(
            &base.replace("[sweep.steps.model]", "[sweep.steps.modle]"),
            ParamValues::new(),
        ),
        &["sweep.steps.modle", "no step named 'modle'"],
    );
    assert_msg(
        &err(
            &base.replace("l2 = [0.1, 1.0]", "l2 = [0.1, -1.0]\nalpha = [1]"),
            ParamValues::new(),
        ),
        &["unknown parameter 'alpha'"],
    );
    let ranged = base.replace("default = 1.0", "default = 1.0\nrange = [0.0, 5.0]");
    assert_msg(
        &err(
            &ranged.replace("[0.1, 1.0]", "[0.1, 7.0]"),
            ParamValues::new(),
        ),
        &[
            "sweep variant 'l2=7.0,scaled=zscore,model=all'",
            "outside its range",
        ],
    );
    assert_msg(
        &err(
            &base.replace(
                "[sweep.params]",
                "[sweep]\nzip = [[\"l2\", \"scaled\"]]\n\n[sweep.params]",
            ),
            ParamValues::new(),
        ),
        &["sweep.zip", "'l2' has 2, 'scaled' has 3"],
    );
    let named = |template: &str| {
        base.replace(
            "[sweep.params]",
            &format!("[sweep]\nname = \"{template}\"\n\n[sweep.params]"),
        )
    };
    assert_msg(
        &err(&named("{scaled}-{l2}"), ParamValues::new()),
        &[
            "gives variants l2=0.1,scaled=zscore,model=all and l2=0.1,scaled=zscore,model=few the same name 'zscore-0.1'",
        ],
    );
    // A template naming every dimension names the variants.
    let path = write_spec(dir.path(), &named("{scaled}/{model}/l2={l2}"));
    let pipeline = load(&path);
    let names: Vec<&str> = pipeline
        .variants()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names.len(), 12);
    assert_eq!(names[0], "zscore/all/l2=0.1");
    assert!(names.contains(&"robust/few/l2=1.0"), "{names:?}");
}

#[test]
fn the_cli_runs_a_sweep_and_compares_its_variants() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_spec(dir.path(), &spec("[0.1, 10.0]"));
    let ws = dir.path().join("ws");
    let (path, ws) = (path.to_str().unwrap(), ws.to_str().unwrap());
    // `fuseflow --workspace WS ARGS`'s standard output; it must succeed.
    let ok = |args: &[&str]| {
        let out = fuseflow(&[&["--workspace", ws], args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stdout = ok(&["run", path]);
    assert!(stdout.contains("sweep results of run"), "{stdout}");
    assert!(!stdout.contains("metrics of 'quality"), "{stdout}");
    let csv = dir.path().join("results.csv");
    let parquet = dir.path().join("results.parquet");
    let (csv_path, parquet_path) = (csv.to_str().unwrap(), parquet.to_str().unwrap());
    let text = ok(&[
        "sweep",
        "results",
        "latest",
        "--sort",
        "log_loss",
        "-o",
        csv_path,
        "-o",
        parquet_path,
    ]);
    assert!(text.contains("12 variants"), "{text}");
    let table = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 13);
    assert!(
        lines[0].starts_with("variant,l2,scaled,model,status,error,"),
        "{}",
        lines[0]
    );
    // Sorted by log loss, ascending.
    let header: Vec<&str> = lines[0].split(',').collect();
    let c = header.iter().position(|h| *h == "log_loss").unwrap();
    let losses: Vec<f64> = lines[1..]
        .iter()
        .map(|l| {
            l.rsplit(',')
                .nth(header.len() - 1 - c)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{losses:?}");
    let read = fuseflow::data::files::BatchReader::open(&parquet, None, 1024).unwrap();
    assert_eq!(read.map(|b| b.unwrap().num_rows()).sum::<usize>(), 12);
    let unknown = fuseflow(&[
        "--workspace",
        ws,
        "sweep",
        "results",
        "latest",
        "--sort",
        "auc",
    ]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no metric 'auc'; its metrics: rows, accuracy")
    );
}

#[test]
fn sweep_results_draw_charts_as_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_spec(dir.path(), &spec("[0.1, 10.0]"));
    let ws = dir.path().join("ws");
    let (path, ws) = (path.to_str().unwrap(), ws.to_str().unwrap());
    let cli = |args: &[&str]| fuseflow(&[&["--workspace", ws], args].concat());
    assert!(cli(&["run", path]).status.success());
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (svg, png, against) = (file("loss.svg"), file("loss.png"), file("l2.png"));
    let drawn = cli(&[
        "sweep", "results", "latest", "--sort", "log_loss", "--chart", &svg, "--chart", &png,
    ]);
    assert!(
        drawn.status.success(),
        "{}",
        String::from_utf8_lossy(&drawn.stderr)
    );
    let stdout = String::from_utf8_lossy(&drawn.stdout);
    assert!(
        stdout.contains("drew log_loss of 12 variants to"),
        "{stdout}"
    );
    // The SVG names every variant and the metric; its text is real text.
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    assert!(text.contains("log_loss by variant"));
    assert!(text.contains("l2=10.0,scaled=minmax,model=few"), "{text}");
    assert_eq!(text.matches("<circle").count(), 12, "a dot per variant");
    // A PNG of the stated size: 900 wide, taller with more variants.
    let size = |path: &str| {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{path} is not a PNG");
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    };
    assert_eq!(size(&png), (900, 140 + 26 * 12));
    // Against a numeric dimension: a line per assignment of the others.
    let drawn = cli(&[
        "sweep",
        "results",
        "latest",
        "--chart",
        &against,
        "--metric",
        "accuracy",
        "--against",
        "l2",
    ]);
    assert!(
        drawn.status.success(),
        "{}",
        String::from_utf8_lossy(&drawn.stderr)
    );
    assert_eq!(size(&against), (900, 560));
    // Bad requests name what is wrong.
    let fails = |args: &[&str], expected: &str| {
        let out = cli(&[&["sweep", "results", "latest"], args].concat());
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    };
    fails(
        &["--chart", &svg, "--metric", "auc"],
        "no metric 'auc'; its metrics: rows, accuracy",
    );
    fails(
        &["--chart", &svg, "--against", "depth"],
        "no dimension 'depth'; its dimensions: l2, scaled, model",
    );
    fails(
        &["--chart", &file("loss.jpg")],
        "name the file .svg or .png",
    );
}

/// The customers data read, split, scaled by `method` and modelled with
/// `l2`: one variant of a sweep built in Rust.
fn rust_variant(variant: &Assignment) -> fuseflow::Result<Pipeline> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/customers.csv");
    let method = match variant.value("method")? {
        "zscore" => ScaleMethod::ZScore,
        "minmax" => ScaleMethod::MinMax,
        other => {
            return Err(fuseflow::Error::execution(
                "scaled",
                format!("no method {other}"),
            ));
        }
    };
    let config = LogisticConfig {
        l2: variant.parse("l2")?,
        ..LogisticConfig::default()
    };
    let features = ["age", "visits", "premium"];
    let mut p = Pipeline::new("rust-sweep");
    p.add("raw", Read::new(data));
    p.add("split", Split::new(0.25, 7)).inputs(["raw"]);
    p.add("stats", FitStats::new(["age", "visits"]))
        .inputs(["split.train"]);
    p.add("filled", FillNull::new(["age"], FillValue::Mean))
        .inputs(["split.train", "stats"]);
    p.add("scaled", Scale::new(method))
        .inputs(["filled", "stats"]);
    p.add("model", TrainLogistic::new(features, "churned", config))
        .inputs(["scaled"]);
    Ok(p)
}

#[test]
fn a_sweep_built_in_rust_shares_steps_and_reuses_them() {
    let sweep = Sweep::new()
        .dimension("method", ["zscore", "minmax"])
        .dimension("l2", [0.1, 1.0, 10.0])
        .exclude(|a| a.pairs()[0].1 == "minmax" && a.pairs()[1].1 == "10");
    let pipeline = sweep.build("rust-sweep", rust_variant).unwrap();
    let names: Vec<&str> = pipeline
        .variants()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "method=zscore,l2=0.1",
            "method=zscore,l2=1",
            "method=zscore,l2=10",
            "method=minmax,l2=0.1",
            "method=minmax,l2=1"
        ]
    );
    // raw, split, stats, filled once; scaled twice; a model per variant.
    assert_eq!(pipeline.step_names().count(), 4 + 2 + 5);
    let v = &pipeline.variants()[3];
    assert_eq!(v.instance("scaled"), Some("scaled[method=minmax]"));
    assert_eq!(v.instance("model"), Some("model[method=minmax,l2=0_1]"));
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::open(dir.path().join("ws")).unwrap());
    let options = RunOptions {
        workspace: Some(Arc::clone(&ws)),
        ..RunOptions::default()
    };
    let run = pipeline.run_with(&options).unwrap();
    assert_eq!(ran(&run).len(), 11);
    let recorded = ws.runs().variants(&run.run_id.unwrap()).unwrap();
    assert_eq!(&recorded, pipeline.variants());
    // The same sweep again: every step a cache hit. One more value: only
    // its models run.
    assert!(ran(&pipeline.run_with(&options).unwrap()).is_empty());
    let wider = Sweep::new()
        .dimension("method", ["zscore", "minmax"])
        .dimension("l2", [0.1, 1.0, 10.0, 100.0]);
    let run = wider
        .build("rust-sweep", rust_variant)
        .unwrap()
        .run_with(&options)
        .unwrap();
    assert_eq!(
        ran(&run),
        [
            "model[method=minmax,l2=100]",
            "model[method=minmax,l2=10]",
            "model[method=zscore,l2=100]"
        ]
    );
    // Bad sweeps and bad lookups name what is wrong.
    let err = |sweep: Sweep| sweep.build("s", rust_variant).unwrap_err().to_string();
    assert!(err(Sweep::new()).contains("needs a dimension"));
    assert!(err(Sweep::new().dimension("l2", Vec::<f64>::new())).contains("'l2' has no values"));
    assert!(
        err(Sweep::new().dimension("method", ["zscore"]))
            .contains("no dimension 'l2'; its dimensions: method")
    );
    let unparsable = Sweep::new()
        .dimension("method", ["zscore"])
        .dimension("l2", ["strong"]);
    assert!(err(unparsable).contains("dimension 'l2': value 'strong' does not parse as f64"));
}

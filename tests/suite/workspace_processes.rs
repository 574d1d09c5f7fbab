//! Workspaces shared by processes: the `fuseflow` command line end to end
//! (history, outputs, `why`, cache trimming), several processes running on
//! one workspace at once, a process killed mid-run, a full disk and an
//! unwritable workspace directory.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};

use crate::common::steps::TestStep;
use fuseflow::cache::{Lookup, ObjectStore};
use fuseflow::data::ContentHash;
use fuseflow::data::files::BatchReader;
use fuseflow::pipeline::io::MemorySource;
use fuseflow::pipeline::prep::{Rename, Select};
use fuseflow::track::RunStatus;
use fuseflow::{CacheUse, Pipeline, RunOptions, Table, Workspace};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_fuseflow");

// ------------------------------------------------------------------ helpers

/// `fuseflow ARGS` run in `cwd`, with no workspace inherited from the
/// environment of the test run.
pub(crate) fn fuseflow_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove(fuseflow::workspace::ENV_VAR)
        .output()
        .unwrap()
}

/// Write the spec `dir/NAME.toml`: pipeline `name`, a `read` step `raw`
/// of `source` (a path relative to `dir`), then one step `then` reading it
/// (its TOML keys after `[[steps]]`, `input = "raw"` included).
pub(crate) fn read_then_spec(dir: &Path, name: &str, source: &str, then: &str) -> PathBuf {
    let spec = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[[steps]]\nname = \"raw\"\nkind = \"read\"\npath = \"{source}\"\n[[steps]]\n{then}"
    );
    std::fs::write(&spec, text).unwrap();
    spec
}

/// `fuseflow --workspace WS ARGS...` in `cwd`.
pub(crate) fn fuseflow_ws(cwd: &Path, ws: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--workspace", ws.to_str().unwrap()];
    all.extend_from_slice(args);
    fuseflow_in(cwd, &all)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stdout of a command that must succeed.
#[track_caller]
pub(crate) fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "expected success, got {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The stderr of a command that must fail.
#[track_caller]
fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got success\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// The shipped example pipeline, copied with its data into `dir`, writing its
/// result into `dir` too. Returns the spec file.
pub(crate) fn example_in(dir: &Path) -> PathBuf {
    let path = shipped_example_in(dir, "prep.toml");
    let spec = std::fs::read_to_string(&path).unwrap();
    assert!(spec.contains("../target/customers-prepared.parquet"));
    assert!(spec.contains("method = \"robust\""));
    let spec = spec.replace("../target/customers-prepared.parquet", "out.parquet");
    std::fs::write(&path, spec).unwrap();
    path
}

/// The shipped example `name` (prep.toml, train.toml, sweep.toml), copied
/// into `dir` beside the data it reads.
pub(crate) fn shipped_example_in(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(
        "examples/data/customers.csv",
        dir.join("data/customers.csv"),
    )
    .unwrap();
    let spec = dir.join(name);
    std::fs::copy(Path::new("examples").join(name), &spec).unwrap();
    spec
}

/// A one-step pipeline (read the example CSV, copied into `dir`); its spec file.
fn read_only_spec_in(dir: &Path) -> PathBuf {
    std::fs::copy("examples/data/customers.csv", dir.join("c.csv")).unwrap();
    let spec = dir.join("p.toml");
    std::fs::write(
        &spec,
        "name = \"t\"\n[[steps]]\nname = \"raw\"\nkind = \"read\"\npath = \"c.csv\"\n",
    )
    .unwrap();
    spec
}

/// Run ids listed by `fuseflow runs`, newest first.
fn run_ids(runs_stdout: &str) -> Vec<String> {
    let mut lines = runs_stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("RUN "), "{runs_stdout}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// One row of the step table of `fuseflow show`.
#[derive(Debug)]
struct ShownStep {
    step: String,
    kind: String,
    cache: String,
    reused_from: String,
    rows: u64,
}

fn shown_steps(show_stdout: &str) -> Vec<ShownStep> {
    let mut lines = show_stdout.lines().skip_while(|l| !l.starts_with("STEP "));
    assert!(lines.next().is_some(), "no step table in:\n{show_stdout}");
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            // STEP KIND DEVICE CACHE REUSED-FROM MS ROWS BYTES (BYTES has a unit)
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert!(cells.len() >= 8, "unexpected step row {l:?}");
            ShownStep {
                step: cells[0].to_string(),
                kind: cells[1].to_string(),
                cache: cells[3].to_string(),
                reused_from: cells[4].to_string(),
                // One figure per output, joined by `/`.
                rows: cells[6].split('/').map(|r| r.parse::<u64>().unwrap()).sum(),
            }
        })
        .collect()
}

/// Rows of a file fuseflow can read (Parquet, Arrow, CSV).
fn rows_in(path: &Path) -> usize {
    BatchReader::open(path, None, 4096)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum()
}

/// Every object in the store, each verified by reading it back.
#[track_caller]
pub(crate) fn verify_all_objects(ws: &Path) -> Vec<ContentHash> {
    let store = ObjectStore::open(ws).unwrap();
    let objects = store.list().unwrap();
    for o in &objects {
        match store.get(&o.hash).unwrap() {
            Lookup::Hit(_) => {}
            other => panic!("object {} does not verify: {other:?}", o.path.display()),
        }
    }
    objects.into_iter().map(|o| o.hash).collect()
}

/// Entries left in the workspace's `tmp/`.
pub(crate) fn temp_files(ws: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(ws.join("tmp")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot list {}: {e}", ws.join("tmp").display()),
    }
}

pub(crate) fn integrity_check(ws: &Path) {
    let check: String = rusqlite::Connection::open(ws.join("runs.sqlite"))
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

// ------------------------------------------------------- 1. CLI history

#[test]
fn cli_history_outputs_why_and_cache_trimming() {
    let dir = tempfile::tempdir().unwrap();
    let spec = example_in(dir.path());
    let ws = dir.path().join("W");
    let (cwd, spec_s, ws_s) = (dir.path(), spec.to_str().unwrap(), ws.to_str().unwrap());
    let ff = |args: &[&str]| fuseflow_ws(cwd, &ws, args);

    // Two runs: the second reuses every step but the write.
    ok(ff(&["run", spec_s, "--cache", "every-step"]));
    ok(ff(&["run", spec_s, "--cache", "every-step"]));
    assert!(dir.path().join("out.parquet").is_file());
    let ids = run_ids(&ok(ff(&["runs"])));
    assert_eq!(ids.len(), 2, "{ids:?}");
    let (first, second) = (ids[1].clone(), ids[0].clone());
    assert_ne!(first, second);

    let show = ok(ff(&["show", "latest"]));
    assert!(show.starts_with(&format!("run       {second}\n")), "{show}");
    let steps = shown_steps(&show);
    assert_eq!(steps.len(), 11, "{show}");
    // The write step too: its file still holds what the first run wrote.
    for s in &steps {
        assert_eq!(s.cache, "hit", "step {} in:\n{show}", s.step);
        assert_eq!(s.reused_from, first, "step {} in:\n{show}", s.step);
    }
    // The same through the library.
    let workspace = Workspace::open(&ws).unwrap();
    let detail = workspace.runs().run(&second).unwrap();
    assert_eq!(detail.summary.status, RunStatus::Succeeded);
    assert_eq!(detail.summary.hits, 11);

    // Outputs of a past run, in two formats, have the step's rows.
    let scaled_rows = steps.iter().find(|s| s.step == "scaled").unwrap().rows;
    assert!(scaled_rows > 50, "about a quarter of 400 rows");
    assert_eq!(
        workspace
            .runs()
            .step_run("latest", "scaled")
            .unwrap()
            .record
            .rows,
        scaled_rows
    );
    for file in ["x.parquet", "x.csv", "x.arrow"] {
        let stdout = ok(ff(&["output", "latest", "scaled", "-o", file]));
        assert!(
            stdout.contains(&format!("wrote {scaled_rows} rows of 'scaled'")),
            "{stdout}"
        );
        assert_eq!(
            rows_in(&dir.path().join(file)),
            scaled_rows as usize,
            "{file}"
        );
    }
    let csv = std::fs::read_to_string(dir.path().join("x.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        scaled_rows as usize + 1,
        "header + rows"
    );
    // By id prefix, too.
    ok(ff(&[
        "output",
        &first[..first.len() - 2],
        "scaled",
        "-o",
        "y.csv",
    ]));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("y.csv")).unwrap(),
        csv
    );

    // Change one parameter: `why` names it, and the changed input downstream.
    let edited = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("method = \"robust\"", "method = \"zscore\"");
    std::fs::write(&spec, edited).unwrap();
    ok(ff(&["run", spec_s, "--cache", "every-step"]));
    let ids = run_ids(&ok(ff(&["runs"])));
    assert_eq!(ids.len(), 3);
    let third = ids[0].clone();

    let why = ok(ff(&["why", "latest", "scaled"]));
    assert!(why.contains("cache miss"), "{why}");
    assert!(why.contains(&format!("differs from run {second}")), "{why}");
    assert!(
        why.contains("params: method=robust -> method=zscore"),
        "{why}"
    );
    assert!(
        !why.contains("input '"),
        "only the parameter changed: {why}"
    );

    let why = ok(ff(&["why", "latest", "encoded"]));
    assert!(why.contains("cache miss"), "{why}");
    let change = why
        .lines()
        .find(|l| l.trim_start().starts_with("input 'data': "))
        .unwrap_or_else(|| panic!("no changed input 'data' in:\n{why}"));
    let (before, after) = change
        .trim_start()
        .trim_start_matches("input 'data': ")
        .split_once(" -> ")
        .unwrap();
    assert_ne!(before, after);
    assert!(!why.contains("params:"), "{why}");

    for unchanged in ["stats", "filled"] {
        let why = ok(ff(&["why", &third, unchanged]));
        assert!(
            why.contains(&format!("cache hit, reused the outputs of run {first}")),
            "{why}"
        );
    }

    // FUSEFLOW_WORKSPACE is honoured when no flag is given; the flag wins over it.
    let elsewhere = tempfile::tempdir().unwrap();
    let via_env = |var: &Path, args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(elsewhere.path())
            .env(fuseflow::workspace::ENV_VAR, var)
            .output()
            .unwrap()
    };
    assert_eq!(run_ids(&ok(via_env(&ws, &["runs"]))), ids);
    let why = ok(via_env(&ws, &["why", &third, "scaled"]));
    assert!(why.contains("method=robust -> method=zscore"), "{why}");
    let other = elsewhere.path().join("other-ws");
    assert_eq!(
        run_ids(&ok(via_env(&other, &["--workspace", ws_s, "runs"]))),
        ids
    );
    assert!(!other.exists(), "the flag must win over the variable");
    assert!(
        !elsewhere.path().join(".fuseflow").exists(),
        "the default workspace must not be used"
    );

    // The cache: list, empty, and what that does to outputs and runs.
    let listed = ok(ff(&["cache", "ls"]));
    let objects = verify_all_objects(&ws);
    assert!(!objects.is_empty());
    for hash in &objects {
        assert!(listed.contains(&hash.to_string()), "{hash} in:\n{listed}");
    }
    assert!(
        listed
            .lines()
            .last()
            .unwrap()
            .starts_with(&format!("{} objects, ", objects.len())),
        "{listed}"
    );
    let gc = ok(ff(&["cache", "gc", "--max-size", "0"]));
    assert!(
        gc.starts_with(&format!("removed {} objects", objects.len())),
        "{gc}"
    );
    assert!(
        ok(ff(&["cache", "ls"])).starts_with("0 objects, "),
        "the cache is empty"
    );
    assert!(verify_all_objects(&ws).is_empty());

    let err = fails(ff(&["output", "latest", "scaled", "-o", "gone.parquet"]));
    assert!(err.contains("no longer in the cache"), "{err}");
    assert!(err.contains("run the pipeline again"), "{err}");
    assert!(!dir.path().join("gone.parquet").exists());

    // The history survives; the next run recomputes everything but the
    // write, whose recomputed input is the same (early cutoff) and whose
    // file still holds what it wrote.
    assert_eq!(run_ids(&ok(ff(&["runs"]))).len(), 3);
    let stdout = ok(ff(&["run", spec_s, "--cache", "every-step"]));
    assert_eq!(stdout.matches("hit (").count(), 1, "{stdout}");
    let show = ok(ff(&["show", "latest"]));
    for s in shown_steps(&show).iter().filter(|s| s.kind != "write") {
        assert_eq!(
            (s.cache.as_str(), s.reused_from.as_str()),
            ("miss", "-"),
            "{show}"
        );
    }
    let stdout = ok(ff(&["output", "latest", "scaled", "-o", "again.csv"]));
    assert!(
        stdout.contains(&format!("wrote {scaled_rows} rows")),
        "{stdout}"
    );
    assert!(!verify_all_objects(&ws).is_empty());

    // Unknown runs are named, with a pointer to `fuseflow runs`.
    for args in [
        &["show", "nosuchrun"][..],
        &["why", "nosuchrun", "scaled"],
        &["output", "nosuchrun", "scaled", "-o", "n.csv"],
    ] {
        let err = fails(ff(args));
        assert!(
            err.contains("nosuchrun") && err.contains("fuseflow runs"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.path().join("n.csv").exists());
}

// ------------------------------------- 2. concurrent processes, one workspace

#[test]
fn cli_caching_only_materialized_outputs_fuses_and_still_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let spec = example_in(dir.path());
    let ws = dir.path().join("W");
    let (cwd, spec_s) = (dir.path(), spec.to_str().unwrap());
    let ff = |args: &[&str]| fuseflow_ws(cwd, &ws, args);
    let materialized = ["run", spec_s, "--cache", "materialized"];

    let plan = ok(ff(&["explain", spec_s, "--cache", "materialized"]));
    assert!(plan.contains("fused group 1: filled -> scaled"), "{plan}");
    let plan = ok(ff(&[
        "explain",
        spec_s,
        "--cache",
        "materialized",
        "--keep",
        "filled",
    ]));
    // Kept, `filled` ends the chain before it instead of fusing into it
    // (the select at the end still fuses with the derive before it).
    assert!(!plan.contains("fused group 1: filled"), "{plan}");
    assert!(plan.contains("materialized: requested"), "{plan}");

    let first = ok(ff(&materialized));
    assert!(first.contains("fused"), "{first}");
    ok(ff(&materialized));
    let show = ok(ff(&["show", "latest"]));
    let steps = shown_steps(&show);
    assert_eq!(steps.len(), 11, "{show}");
    for s in steps.iter().filter(|s| s.kind != "write") {
        assert_eq!(s.cache, "hit", "step {} in:\n{show}", s.step);
    }
    // The table inside the chain was never stored, the chain's end was;
    // fetching the one inside computes it again from the chain's input.
    let file = dir.path().join("filled.arrow");
    let wrote = ok(ff(&[
        "output",
        "latest",
        "filled",
        "-o",
        file.to_str().unwrap(),
    ]));
    assert!(wrote.contains("rows of 'filled'"), "{wrote}");
    let file = dir.path().join("scaled.arrow");
    ok(ff(&[
        "output",
        "latest",
        "scaled",
        "-o",
        file.to_str().unwrap(),
    ]));
    assert!(rows_in(&file) > 0);
    assert_eq!(rows_in(&dir.path().join("filled.arrow")), rows_in(&file));

    let err = fails(ff(&["run", spec_s, "--cache", "some"]));
    assert!(err.contains("every-step or materialized"), "{err}");
}

#[test]
fn concurrent_runs_on_one_fresh_workspace() {
    const PROCESSES: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let spec = example_in(dir.path());
    let ws = dir.path().join("W");
    assert!(!ws.exists());

    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(BIN)
                .args(["--workspace", ws.to_str().unwrap(), "run", "-q"])
                .arg(&spec)
                .current_dir(dir.path())
                .env_remove(fuseflow::workspace::ENV_VAR)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(child.wait_with_output().unwrap());
    }

    let objects = verify_all_objects(&ws);
    assert!(!objects.is_empty());
    assert_eq!(temp_files(&ws), Vec::<PathBuf>::new(), "stray temp files");
    integrity_check(&ws);

    let workspace = Workspace::open(&ws).unwrap();
    let runs = workspace.runs().runs(None).unwrap();
    assert_eq!(runs.len(), PROCESSES);
    for r in &runs {
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        assert_eq!(r.steps, 11, "{r:?}");
    }
    let scaled: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            workspace
                .runs()
                .find_output(r.id.as_str(), "scaled", None)
                .unwrap()
        })
        .collect();
    assert!(scaled.iter().all(|o| *o == scaled[0]), "{scaled:?}");
    // Every output of every step is the same in every run, and stored.
    let details: Vec<_> = runs
        .iter()
        .map(|r| workspace.runs().run(r.id.as_str()).unwrap())
        .collect();
    for step in &details[0].steps {
        let outputs = &step.record.outputs;
        for d in &details[1..] {
            let other = d
                .steps
                .iter()
                .find(|s| s.record.step == step.record.step)
                .unwrap();
            assert_eq!(&other.record.outputs, outputs, "step {}", step.record.step);
        }
        // Files a step wrote are recorded by their hashes, not stored.
        for (_, hex) in outputs
            .iter()
            .filter(|(port, _)| !port.starts_with("file:"))
        {
            let hash: ContentHash = hex.parse().unwrap();
            // A read step's output is a reference to its file, not a copy.
            let referenced = workspace.objects().reference_path(&hash).is_file();
            assert!(
                objects.contains(&hash) || referenced,
                "output {hex} is not stored"
            );
        }
    }
    assert_eq!(
        rows_in(&dir.path().join("out.parquet")),
        details[0]
            .steps
            .iter()
            .find(|s| s.record.step == "model_input")
            .unwrap()
            .record
            .rows as usize
    );
}

// ---------------------------------------------------- 3. SIGKILL midway

/// Set (to a workspace directory) in the child of [`a_run_killed_midway_is_interrupted_and_resumable`].
const KILL_WS_ENV: &str = "FUSEFLOW_TEST_KILLED_WORKSPACE";
/// When `1`, [`gate`] never finishes.
const HANG_ENV: &str = "FUSEFLOW_TEST_HANG";

/// Passes its input through, or blocks forever when [`HANG_ENV`] is `1`.
fn gate() -> TestStep {
    TestStep::new("gate", |_, inputs| {
        if std::env::var(HANG_ENV).as_deref() == Ok("1") {
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Ok(vec![inputs[0].clone()])
    })
}

/// raw -> picked -> gate -> renamed, over a fixed table.
fn gated_pipeline() -> Pipeline {
    let n = 1000;
    let x: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..n).map(|i| i as f64 * 0.5),
    ));
    let y: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
    let z: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * 3)));
    let batch = RecordBatch::try_from_iter([("x", x), ("y", y), ("z", z)]).unwrap();
    let mut p = Pipeline::new("gated");
    p.add("raw", MemorySource::new(Table::from_batch(batch)));
    p.add("picked", Select::new(["x", "y"]))
        .input("data", "raw");
    p.add("gate", gate()).input("data", "picked");
    p.add("renamed", Rename::new([("x", "x2")]))
        .input("data", "gate");
    p
}

fn options(ws: &Path) -> RunOptions {
    RunOptions::default().with_workspace(Arc::new(Workspace::open(ws).unwrap()))
}

/// In the child process only: run [`gated_pipeline`] in the workspace named
/// by [`KILL_WS_ENV`], hanging in its third step until killed. Does nothing in
/// a normal test run.
#[test]
fn killed_child_runs_a_pipeline_until_killed() {
    let Some(ws) = std::env::var_os(KILL_WS_ENV) else {
        return;
    };
    gated_pipeline().run_with(&options(Path::new(&ws))).unwrap();
    panic!("the gate step should have hung");
}

#[test]
fn a_run_killed_midway_is_interrupted_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("W");
    let workspace = Workspace::open(&ws).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &common::test_name(module_path!(), "killed_child_runs_a_pipeline_until_killed"),
            "--test-threads=1",
        ])
        .env(KILL_WS_ENV, &ws)
        .env(HANG_ENV, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        if let Some(run) = workspace.runs().runs(None).unwrap().first()
            && run.steps >= 2
        {
            break run.id.clone();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child recorded fewer than 2 steps in 60 s");
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // The gate blocks: nothing more is recorded.
    std::thread::sleep(Duration::from_millis(100));
    let detail = workspace.runs().run(run.as_str()).unwrap();
    assert_eq!(detail.summary.status, RunStatus::Running);
    let recorded: Vec<&str> = detail
        .steps
        .iter()
        .map(|s| s.record.step.as_str())
        .collect();
    assert_eq!(recorded, ["raw", "picked"]);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(workspace);

    // As a new process would find it.
    let workspace = Workspace::open(&ws).unwrap();
    let detail = workspace.runs().run(run.as_str()).unwrap();
    assert_eq!(detail.summary.status, RunStatus::Interrupted);
    assert_eq!(detail.summary.pid, child.id());
    assert_eq!(detail.steps.len(), 2);
    assert_eq!(temp_files(&ws), Vec::<PathBuf>::new());
    verify_all_objects(&ws);
    integrity_check(&ws);

    let opts = RunOptions::default().with_workspace(Arc::new(workspace));
    let out = gated_pipeline().run_with(&opts).unwrap();
    let cache = |step: &str| {
        out.steps
            .iter()
            .find(|s| s.name == step)
            .unwrap_or_else(|| panic!("no report for {step}"))
            .cache
            .clone()
    };
    assert_eq!(cache("raw"), CacheUse::Hit { from: run.clone() });
    assert_eq!(cache("picked"), CacheUse::Hit { from: run.clone() });
    assert_eq!(cache("gate"), CacheUse::Miss);
    assert_eq!(cache("renamed"), CacheUse::Miss);
    let renamed = out.output("renamed").unwrap();
    assert_eq!(renamed.num_rows(), 1000);
    assert_eq!(
        renamed
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        ["x2", "y"]
    );

    let ws2 = opts.workspace.as_ref().unwrap();
    let runs = ws2.runs().runs(None).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, *out.run_id.as_ref().unwrap());
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[1].id, run);
    assert_eq!(runs[1].status, RunStatus::Interrupted);
    assert_eq!(
        ws2.runs().mark_interrupted().unwrap(),
        std::slice::from_ref(&run)
    );
    assert_eq!(
        ws2.runs().run(run.as_str()).unwrap().summary.status,
        RunStatus::Interrupted
    );
    integrity_check(&ws);
}

// -------------------------------------------------------- 4. full disk

/// A CSV of `rows` rows of five numeric columns.
fn write_big_csv(path: &Path, rows: usize) {
    let mut s = String::with_capacity(rows * 48);
    s.push_str("id,a,b,c,d\n");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..rows {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = (state >> 11) as f64 / (1u64 << 53) as f64;
        s.push_str(&format!(
            "{i},{:.6},{:.6},{},{:.3}\n",
            r,
            r * 1000.0 - 500.0,
            (state >> 40) % 1000,
            i as f64 / 7.0
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// Most blocks a file may grow to under the limit set in [`full_disk_run`]:
/// 512 KiB or 1 MiB, as the shell counts blocks of 512 or 1024 bytes.
const FILE_BLOCKS: u32 = 1024;

/// `fuseflow --workspace WS run SPEC` in a process that cannot write a file
/// beyond [`FILE_BLOCKS`] blocks, as on a nearly full disk (writes fail with
/// EFBIG instead of raising SIGXFSZ).
fn full_disk_run(cwd: &Path, ws: &Path, spec: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {FILE_BLOCKS} || exit 99; \
             exec \"$0\" --workspace \"$1\" run \"$2\""
        ))
        .arg(BIN)
        .arg(ws)
        .arg(spec)
        .current_dir(cwd)
        .env_remove(fuseflow::workspace::ENV_VAR)
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_fails_the_run_and_keeps_the_cache_intact() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("W");
    std::fs::copy("examples/data/customers.csv", dir.path().join("small.csv")).unwrap();
    let small = read_then_spec(
        dir.path(),
        "small",
        "small.csv",
        "name = \"picked\"\nkind = \"select\"\ninput = \"raw\"\ncolumns = [\"age\", \"income\"]\n",
    );
    // About 4 MiB of CSV, 100k rows: its table takes several MiB as an object.
    write_big_csv(&dir.path().join("big.csv"), 100_000);
    let big = read_then_spec(
        dir.path(),
        "big",
        "big.csv",
        "name = \"picked\"\nkind = \"select\"\ninput = \"raw\"\ncolumns = [\"id\", \"a\"]\n",
    );

    ok(fuseflow_ws(
        dir.path(),
        &ws,
        &["run", "-q", small.to_str().unwrap()],
    ));
    let before = verify_all_objects(&ws);
    // `picked`; `raw` is a reference to its file, not a copy.
    assert_eq!(before.len(), 1, "picked");

    let out = full_disk_run(dir.path(), &ws, &big);
    assert_ne!(
        out.status.code(),
        Some(99),
        "ulimit -f failed: {}",
        text(&out.stderr)
    );
    let err = fails(out);
    let objects_dir = ws.join("objects").display().to_string();
    assert!(
        err.contains(&objects_dir),
        "the error should name the object under {objects_dir}: {err}"
    );
    assert!(err.contains("cannot store cache object"), "{err}");
    assert!(err.contains("check that the disk has free space"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");

    // Nothing earlier is lost or damaged; nothing half-written is left.
    assert_eq!(temp_files(&ws), Vec::<PathBuf>::new(), "stray temp files");
    assert_eq!(verify_all_objects(&ws), before, "no new or lost objects");
    integrity_check(&ws);
    let workspace = Workspace::open(&ws).unwrap();
    let runs = workspace.runs().runs(None).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].pipeline, "big");
    assert_eq!(runs[0].status, RunStatus::Failed);
    let recorded_error = runs[0].error.as_deref().unwrap_or_default();
    assert!(
        recorded_error.contains("cannot store cache object"),
        "{recorded_error}"
    );
    assert_eq!(runs[1].status, RunStatus::Succeeded);
    let fetched = workspace
        .fetch_output(runs[1].id.as_str(), "picked", None)
        .unwrap();
    assert_eq!(fetched.num_rows(), 400);
    drop(workspace);

    // With room again, the same run succeeds and reuses the small run's objects.
    ok(fuseflow_ws(
        dir.path(),
        &ws,
        &["run", "-q", big.to_str().unwrap()],
    ));
    let after = verify_all_objects(&ws);
    assert!(before.iter().all(|h| after.contains(h)));
    assert_eq!(after.len(), 2, "both runs' `picked`");
    let stdout = ok(fuseflow_ws(
        dir.path(),
        &ws,
        &["run", small.to_str().unwrap()],
    ));
    assert_eq!(stdout.matches("hit (").count(), 2, "{stdout}");
}

/// When the disk fills while the run store is written (here: creating a new
/// workspace), SQLite reports a generic I/O error (`SQLITE_IOERR_WRITE`, not
/// `SQLITE_FULL`, for EFBIG and also on a full tmpfs); `sql_error` in
/// src/track/store.rs adds the advice to check free space.
#[test]
fn a_full_disk_while_creating_the_run_store_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let spec = read_only_spec_in(dir.path());
    let ws = dir.path().join("W");
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8 || exit 99; exec \"$0\" --workspace \"$1\" run \"$2\"")
        .arg(BIN)
        .arg(&ws)
        .arg(&spec)
        .current_dir(dir.path())
        .env_remove(fuseflow::workspace::ENV_VAR)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(99));
    let err = fails(out);
    assert!(
        err.contains(&ws.join("runs.sqlite").display().to_string()),
        "{err}"
    );
    assert!(err.contains("free space"), "{err}");
}

// ------------------------------------------------- 5. unwritable workspace

#[test]
fn a_workspace_under_a_regular_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let spec = read_only_spec_in(dir.path());
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "not a directory\n").unwrap();
    let bad = file.join("ws");

    let check = |err: &str, path: &Path| {
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("cannot create the workspace directory"),
            "{err}"
        );
        assert!(
            err.contains("--workspace") && err.contains("FUSEFLOW_WORKSPACE"),
            "{err}"
        );
    };
    for path in [&bad, &file] {
        let p = path.to_str().unwrap();
        check(
            &fails(fuseflow_in(
                dir.path(),
                &["--workspace", p, "run", spec.to_str().unwrap()],
            )),
            path,
        );
        check(
            &fails(fuseflow_in(dir.path(), &["--workspace", p, "runs"])),
            path,
        );
        let via_env = Command::new(BIN)
            .args(["cache", "ls"])
            .current_dir(dir.path())
            .env(fuseflow::workspace::ENV_VAR, path)
            .output()
            .unwrap();
        check(&fails(via_env), path);
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "not a directory\n",
        "the file is untouched"
    );
    assert!(!dir.path().join(".fuseflow").exists());
}

/// A full disk while a `write` step writes its file: the run fails naming
/// the file and the free space it needs; the file it was to replace is kept
/// whole and nothing half-written is left beside it.
#[test]
fn a_full_disk_while_writing_an_output_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("W");
    write_big_csv(&dir.path().join("big.csv"), 100_000);
    let spec = read_then_spec(
        dir.path(),
        "copy",
        "big.csv",
        "name = \"out\"\nkind = \"write\"\ninput = \"raw\"\npath = \"out/copy.csv\"\n",
    );
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let target = dir.path().join("out/copy.csv");
    std::fs::write(&target, "id\n1\n").unwrap();

    let out = full_disk_run(dir.path(), &ws, &spec);
    assert_ne!(out.status.code(), Some(99), "ulimit -f failed");
    let err = fails(out);
    assert!(err.contains("copy.csv"), "{err}");
    assert!(
        err.to_lowercase().contains("space") || err.contains("too large"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "id\n1\n");
    let beside: Vec<_> = std::fs::read_dir(dir.path().join("out")).unwrap().collect();
    assert_eq!(beside.len(), 1, "{beside:?}");
    verify_all_objects(&ws);
    integrity_check(&ws);
}

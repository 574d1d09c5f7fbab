//! Reuse and history through the Rust API: a run with a workspace caches every
//! step output by content, re-runs skip what did not change (with early
//! cutoff), lost or corrupt objects are recomputed and reported, and every run
//! can be inspected afterwards.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use crate::common::steps::TestStep;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use fuseflow::cache::{FieldChange, Lookup};
use fuseflow::ir::{col, lit};
use fuseflow::pipeline::io::{MemorySource, Read};
use fuseflow::pipeline::prep::{Derive, Filter, FitStats, Scale, ScaleMethod};
use fuseflow::track::RunStatus;
use fuseflow::{CachePolicy, CacheUse, Pipeline, Rerun, RunOptions, RunOutput, Table, Workspace};

use fuseflow::data::Rng;

/// Normal values with 5% nulls (no NaN: fitting statistics refuses NaN).
fn data(rows: usize, seed: u64) -> Table {
    let mut rng = Rng::new(seed);
    let mut column = || -> ArrayRef {
        let values: Vec<Option<f64>> = (0..rows)
            .map(|_| {
                let x = rng.normal();
                (rng.uniform() >= 0.05).then_some(x)
            })
            .collect();
        Arc::new(Float64Array::from(values))
    };
    let batch = RecordBatch::try_from_iter([("x", column()), ("y", column())]).unwrap();
    Table::from_batch(batch)
}

/// raw -> keep (filter) -> wide (derive) -> stats (fit) -> scaled (scale).
fn pipeline(table: &Table, threshold: f64, method: ScaleMethod) -> Pipeline {
    let mut p = Pipeline::new("reuse");
    p.add("raw", MemorySource::new(table.clone()));
    p.add(
        "keep",
        Filter::new(col("x").gt(lit(threshold)).or(col("x").is_null())),
    )
    .input("data", "raw");
    p.add("wide", Derive::new([("z", col("x") * lit(2.0) + col("y"))]))
        .input("data", "keep");
    p.add("stats", FitStats::new(["x", "z"]))
        .input("data", "wide");
    p.add("scaled", Scale::new(method))
        .input("data", "wide")
        .input("stats", "stats");
    p
}

fn open(dir: &Path) -> Arc<Workspace> {
    Arc::new(Workspace::open(dir.join("ws")).unwrap())
}

fn run(p: &Pipeline, ws: &Arc<Workspace>, rerun: Rerun) -> RunOutput {
    let options = RunOptions {
        rerun,
        ..RunOptions::default().with_workspace(Arc::clone(ws))
    };
    p.run_with(&options).unwrap()
}

/// Each step's cache use, by step name, in pipeline order.
fn cache_of(run: &RunOutput, steps: &[&str]) -> Vec<CacheUse> {
    steps
        .iter()
        .map(|s| {
            run.steps
                .iter()
                .find(|r| r.name == *s)
                .unwrap_or_else(|| panic!("no report for step {s}"))
                .cache
                .clone()
        })
        .collect()
}

fn batches(run: &RunOutput, output: &str) -> RecordBatch {
    run.output(output).unwrap().concat().unwrap()
}

const STEPS: [&str; 5] = ["raw", "keep", "wide", "stats", "scaled"];

#[test]
fn an_unchanged_pipeline_reuses_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let table = data(5_000, 1);
    let p = pipeline(&table, -1.0, ScaleMethod::ZScore);

    let cold = run(&p, &ws, Rerun::Nothing);
    assert_eq!(cache_of(&cold, &STEPS), vec![CacheUse::Miss; 5]);
    let first = cold.run_id.clone().unwrap();

    let warm = run(&p, &ws, Rerun::Nothing);
    let hit = CacheUse::Hit {
        from: first.clone(),
    };
    assert_eq!(cache_of(&warm, &STEPS), vec![hit; 5]);
    // Cached outputs load when asked for, and equal what was computed.
    assert_eq!(batches(&warm, "scaled"), batches(&cold, "scaled"));
    assert_eq!(
        warm.output_hash("scaled").unwrap(),
        cold.output_hash("scaled").unwrap()
    );

    let detail = ws
        .runs()
        .run(warm.run_id.as_ref().unwrap().as_str())
        .unwrap();
    assert_eq!(detail.summary.status, RunStatus::Succeeded);
    assert_eq!(detail.summary.hits, 5);
    assert!(
        detail
            .steps
            .iter()
            .all(|s| s.record.reused_from.as_ref() == Some(&first)),
        "every hit names the run that computed it"
    );
}

#[test]
fn a_step_whose_new_output_is_identical_lets_its_dependents_hit() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let table = data(3_000, 2);
    // Both thresholds are below every generated value: the filter's parameters
    // change, its output does not.
    run(
        &pipeline(&table, -1e9, ScaleMethod::ZScore),
        &ws,
        Rerun::Nothing,
    );
    let second = run(
        &pipeline(&table, -2e9, ScaleMethod::ZScore),
        &ws,
        Rerun::Nothing,
    );
    let cache = cache_of(&second, &STEPS);
    assert!(
        matches!(cache[0], CacheUse::Hit { .. }),
        "raw: {:?}",
        cache[0]
    );
    assert_eq!(cache[1], CacheUse::Miss, "keep has new parameters");
    for (step, use_) in STEPS[2..].iter().zip(&cache[2..]) {
        assert!(
            matches!(use_, CacheUse::Hit { .. }),
            "{step} keys on keep's output, which is unchanged: {use_:?}"
        );
    }
}

#[test]
fn a_changed_parameter_reruns_the_step_and_what_depends_on_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let table = data(3_000, 3);
    run(
        &pipeline(&table, 0.0, ScaleMethod::ZScore),
        &ws,
        Rerun::Nothing,
    );
    let second = run(
        &pipeline(&table, 0.5, ScaleMethod::ZScore),
        &ws,
        Rerun::Nothing,
    );
    let cache = cache_of(&second, &STEPS);
    assert!(matches!(cache[0], CacheUse::Hit { .. }));
    assert_eq!(&cache[1..], vec![CacheUse::Miss; 4]);

    // `why` names the differing key fields.
    let id = second.run_id.as_ref().unwrap().as_str();
    let why = ws.why(id, "keep").unwrap();
    assert_eq!(why.changes.len(), 1, "{why}");
    let FieldChange {
        field,
        before,
        after,
    } = &why.changes[0];
    assert_eq!(field, "params");
    assert!(
        before.contains("0.0") && after.contains("0.5"),
        "{before} -> {after}"
    );
    let why = ws.why(id, "wide").unwrap();
    assert_eq!(why.changes.len(), 1, "{why}");
    assert!(why.changes[0].field.contains("data"), "{why}");
    let why = ws.why(id, "raw").unwrap();
    assert!(why.reused_from.is_some() && why.to_string().contains("cache hit"));
}

#[test]
fn a_changed_source_file_reruns_its_reader_and_records_the_version_label() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let csv = dir.path().join("data.csv");
    let build = |label: &str| {
        let mut p = Pipeline::new("files");
        p.add("raw", Read::new(&csv).version(label));
        p.add("wide", Derive::new([("z", col("x") + lit(1.0))]))
            .input("data", "raw");
        p
    };
    std::fs::write(&csv, "x\n1.0\n2.0\n").unwrap();
    let first = run(&build("v1"), &ws, Rerun::Nothing);
    assert_eq!(cache_of(&first, &["raw", "wide"]), vec![CacheUse::Miss; 2]);
    let same = run(&build("v1"), &ws, Rerun::Nothing);
    assert!(
        cache_of(&same, &["raw", "wide"])
            .iter()
            .all(|c| matches!(c, CacheUse::Hit { .. }))
    );

    std::fs::write(&csv, "x\n1.0\n3.0\n").unwrap();
    let changed = run(&build("v2"), &ws, Rerun::Nothing);
    assert_eq!(
        cache_of(&changed, &["raw", "wide"]),
        vec![CacheUse::Miss; 2]
    );
    let row = ws
        .runs()
        .step_run(changed.run_id.as_ref().unwrap().as_str(), "raw")
        .unwrap();
    let notes = row.record.notes.unwrap_or_default();
    assert!(notes.contains("version 'v2'"), "{notes}");
    let why = ws
        .why(changed.run_id.as_ref().unwrap().as_str(), "raw")
        .unwrap();
    assert!(
        why.changes.iter().any(|c| c.field.contains("source:")),
        "{why}"
    );
}

#[test]
fn a_corrupt_cached_input_is_removed_recomputed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let table = data(4_000, 4);
    let p = pipeline(&table, 0.0, ScaleMethod::ZScore);
    let first = run(&p, &ws, Rerun::Nothing);
    let expected = batches(&first, "scaled");

    // Damage the stored output of `wide` in the middle of the file, and drop
    // it from this process's memory tier by opening the workspace afresh.
    let hash = first.output_hash("wide").unwrap().unwrap();
    let path = ws.objects().object_path(&hash);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    drop(ws);
    let ws = open(dir.path());

    // `scaled` must run, so it loads `wide`: the damage is found, `wide` runs
    // again, and the result is what it was.
    let second = run(&p, &ws, Rerun::Steps(vec!["scaled".into()]));
    assert_eq!(batches(&second, "scaled"), expected);
    let wide = second.steps.iter().rfind(|s| s.name == "wide").unwrap();
    assert_eq!(wide.cache, CacheUse::Miss, "wide was recomputed");
    assert!(
        wide.notes.iter().any(|n| n.contains("corrupt")),
        "the recomputation says why: {:?}",
        wide.notes
    );
    assert!(
        matches!(ws.objects().get(&hash).unwrap(), Lookup::Hit(_)),
        "the object was written again, whole"
    );
}

#[test]
fn rerun_and_reuse_off_run_steps_that_could_be_reused() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let table = data(2_000, 5);
    let p = pipeline(&table, 0.0, ScaleMethod::MinMax);
    run(&p, &ws, Rerun::Nothing);

    let again = run(&p, &ws, Rerun::Steps(vec!["wide".into()]));
    let cache = cache_of(&again, &STEPS);
    assert_eq!(cache[2], CacheUse::Miss);
    assert!(
        cache[3..].iter().all(|c| matches!(c, CacheUse::Hit { .. })),
        "wide's output is unchanged, so its dependents hit: {cache:?}"
    );

    let all = run(&p, &ws, Rerun::All);
    assert_eq!(cache_of(&all, &STEPS), vec![CacheUse::Miss; 5]);

    let mut q = Pipeline::new("off");
    q.add("raw", MemorySource::new(table.clone()));
    q.add("wide", Derive::new([("z", col("x") - lit(1.0))]))
        .input("data", "raw")
        .reuse(false);
    run(&q, &ws, Rerun::Nothing);
    let second = run(&q, &ws, Rerun::Nothing);
    assert!(matches!(
        cache_of(&second, &["raw"])[0],
        CacheUse::Hit { .. }
    ));
    let wide = second.steps.iter().find(|s| s.name == "wide").unwrap();
    assert_eq!(wide.cache, CacheUse::Off);
    assert!(wide.notes.iter().any(|n| n.contains("reuse is off")));
}

#[test]
fn past_outputs_and_metrics_can_be_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let metrics = RecordBatch::try_from_iter([
        (
            "metric",
            Arc::new(StringArray::from(vec!["accuracy", "log_loss"])) as ArrayRef,
        ),
        (
            "value",
            Arc::new(Float64Array::from(vec![Some(0.75), None])) as ArrayRef,
        ),
    ])
    .unwrap();
    let mut p = pipeline(&data(1_000, 6), 0.0, ScaleMethod::ZScore);
    p.add("evaluate", MemorySource::new(Table::from_batch(metrics)));
    let first = run(&p, &ws, Rerun::Nothing);
    let id = first.run_id.clone().unwrap();

    // A later run changes nothing about the first one's record.
    run(
        &pipeline(&data(1_000, 7), 0.0, ScaleMethod::ZScore),
        &ws,
        Rerun::Nothing,
    );
    let fetched = ws.fetch_output(id.as_str(), "scaled", None).unwrap();
    assert_eq!(fetched.concat().unwrap(), batches(&first, "scaled"));
    let err = ws.fetch_output(id.as_str(), "nope", None).unwrap_err();
    assert!(err.to_string().contains("scaled"), "lists the steps: {err}");

    let detail = ws.runs().run(id.as_str()).unwrap();
    let recorded: Vec<(&str, &str, f64)> = detail
        .metrics
        .iter()
        .map(|m| (m.step.as_str(), m.name.as_str(), m.value))
        .collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0], ("evaluate", "accuracy", 0.75));
    assert!(recorded[1].2.is_nan(), "a null metric reads as NaN");

    // Evicting the objects makes a fetch fail with advice, not wrong data.
    ws.objects().clear().unwrap();
    let ws = open(dir.path());
    let err = ws.fetch_output(id.as_str(), "scaled", None).unwrap_err();
    assert!(err.to_string().contains("run the pipeline again"), "{err}");
}

/// A step that always fails, naming itself.
fn fails() -> TestStep {
    TestStep::new("fails", |ctx, _| {
        Err(fuseflow::Error::execution(ctx.name, "deliberate failure"))
    })
}

#[test]
fn a_failed_step_is_recorded_and_the_run_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let mut p = Pipeline::new("failing");
    p.add("raw", MemorySource::new(data(100, 8)));
    p.add("boom", fails()).input("data", "raw");
    let options = RunOptions::default().with_workspace(Arc::clone(&ws));
    let err = p.run_with(&options).unwrap_err();
    assert!(err.to_string().contains("deliberate failure"), "{err}");

    let runs = ws.runs().runs(Some("failing")).unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert!(runs[0].error.as_deref().unwrap_or("").contains("boom"));
    let boom = ws.runs().step_run(runs[0].id.as_str(), "boom").unwrap();
    assert!(boom.record.error.unwrap().contains("deliberate failure"));
    // The step that succeeded is reusable by the next run.
    let again = p.run_with(&options).unwrap_err();
    assert!(again.to_string().contains("boom"));
    let raw = ws.runs().step_run("latest", "raw").unwrap();
    assert!(raw.record.cache_hit);
}

/// raw -> keep (filter) -> wide (derive) -> scaled (scale, with stats
/// fitted on keep) -> out (derive): wide, scaled and out fuse into one kernel
/// when their tables need not be stored.
fn chain(table: &Table, factor: f64) -> Pipeline {
    let mut p = Pipeline::new("chain");
    p.add("raw", MemorySource::new(table.clone()));
    p.add(
        "keep",
        Filter::new(col("x").gt(lit(-1.0)).or(col("x").is_null())),
    )
    .input("data", "raw");
    p.add("stats", FitStats::new(["x", "y"]))
        .input("data", "keep");
    p.add(
        "wide",
        Derive::new([("z", col("x") * lit(factor) + col("y"))]),
    )
    .input("data", "keep");
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .input("data", "wide")
        .input("stats", "stats");
    p.add("out", Derive::new([("s", col("x") - col("y") * col("z"))]))
        .input("data", "scaled");
    p
}

const CHAIN: [&str; 6] = ["raw", "keep", "stats", "wide", "scaled", "out"];

fn run_materialized(p: &Pipeline, ws: &Arc<Workspace>, rerun: Rerun) -> RunOutput {
    let options = RunOptions {
        rerun,
        cache: CachePolicy::Materialized,
        ..RunOptions::default().with_workspace(Arc::clone(ws))
    };
    p.run_with(&options).unwrap()
}

#[test]
fn under_the_materialized_policy_a_chain_runs_fused_and_only_its_end_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let table = data(4_000, 21);
    let p = chain(&table, 2.0);

    let cold = run_materialized(&p, &ws, Rerun::Nothing);
    let groups: Vec<Vec<&str>> = cold
        .plan
        .groups
        .iter()
        .map(|g| g.members.iter().map(|&m| CHAIN[m]).collect())
        .collect();
    assert_eq!(groups, vec![vec!["wide", "scaled", "out"]]);
    assert_eq!(cache_of(&cold, &CHAIN), vec![CacheUse::Miss; 6]);
    assert!(cold.output_hash("out").unwrap().is_some());
    assert!(cold.output_hash("keep").unwrap().is_some());
    for inside in ["wide", "scaled"] {
        assert!(cold.output_hash(inside).unwrap().is_none());
    }

    // The chain's result equals a run that stores every step, bit for bit.
    let every = tempfile::tempdir().unwrap();
    let every_step = p
        .run_with(&RunOptions {
            cache: CachePolicy::EveryStep,
            ..RunOptions::default().with_workspace(open(every.path()))
        })
        .unwrap();
    assert!(every_step.plan.groups.is_empty());
    assert_eq!(batches(&cold, "out"), batches(&every_step, "out"));
    // The tables inside the chain were never held, yet the run computes
    // them again when asked, equal to the stored ones.
    for inside in ["wide", "scaled"] {
        assert_eq!(
            batches(&cold, inside),
            batches(&every_step, inside),
            "{inside}"
        );
    }

    // Each member is recorded with its own key; the ones inside the chain
    // stored nothing, and fetching their output says why.
    let id = cold.run_id.as_ref().unwrap().as_str();
    let detail = ws.runs().run(id).unwrap();
    assert_eq!(detail.steps.len(), 6);
    let keys: std::collections::HashSet<&str> = detail
        .steps
        .iter()
        .map(|s| s.record.cache_key.as_str())
        .collect();
    assert_eq!(keys.len(), 6, "every step has its own cache key");
    let err = ws.fetch_output(id, "scaled", None).unwrap_err().to_string();
    assert!(
        err.contains("recorded no outputs") && err.contains("fused into 'out'"),
        "{err}"
    );
    // Computing it again needs the steps, which an API run records only as
    // text: the error says so and what to do.
    let err = fuseflow::exec::fetch_output(&ws, id, "scaled", None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fused into 'out'")
            && err.contains("not a spec file")
            && err.contains("--keep scaled"),
        "{err}"
    );
    assert_eq!(
        ws.fetch_output(id, "out", None).unwrap().concat().unwrap(),
        batches(&cold, "out")
    );

    // A re-run reuses the whole chain, each member from the first run.
    let warm = run_materialized(&p, &ws, Rerun::Nothing);
    let first = cold.run_id.clone().unwrap();
    assert_eq!(
        cache_of(&warm, &CHAIN),
        vec![CacheUse::Hit { from: first }; 6]
    );
    assert_eq!(batches(&warm, "out"), batches(&cold, "out"));
}

#[test]
fn a_change_inside_a_fused_chain_reruns_the_chain_and_why_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let table = data(3_000, 22);
    let cold = run_materialized(&chain(&table, 2.0), &ws, Rerun::Nothing);

    // A new factor in the chain's head: the steps before the chain hit (the
    // chain loads its stats from the workspace), the chain runs again.
    let changed = run_materialized(&chain(&table, 3.0), &ws, Rerun::Nothing);
    let cache = cache_of(&changed, &CHAIN);
    assert!(
        cache[..3].iter().all(|c| matches!(c, CacheUse::Hit { .. })),
        "{cache:?}"
    );
    assert_eq!(&cache[3..], vec![CacheUse::Miss; 3]);
    let expected = chain(&table, 3.0).run().unwrap();
    assert_eq!(batches(&changed, "out"), batches(&expected, "out"));

    // `why` follows the change down the chain: the head's parameters, then
    // each later member's fused input.
    let id = changed.run_id.as_ref().unwrap().as_str();
    let why = ws.why(id, "wide").unwrap();
    assert_eq!(why.changes.len(), 1, "{why}");
    assert_eq!(why.changes[0].field, "params");
    for (step, producer) in [("scaled", "wide"), ("out", "scaled")] {
        let why = ws.why(id, step).unwrap();
        assert_eq!(why.changes.len(), 1, "{why}");
        assert!(
            why.changes[0].field.contains(&format!("fused:{producer}")),
            "{why}"
        );
    }

    // Re-running one member runs its whole chain, and only that.
    let rerun = run_materialized(
        &chain(&table, 2.0),
        &ws,
        Rerun::Steps(vec!["scaled".into()]),
    );
    let cache = cache_of(&rerun, &CHAIN);
    assert!(
        cache[..3].iter().all(|c| matches!(c, CacheUse::Hit { .. })),
        "{cache:?}"
    );
    assert_eq!(&cache[3..], vec![CacheUse::Miss; 3]);
    assert_eq!(batches(&rerun, "out"), batches(&cold, "out"));
    // A kept member is stored, and the chain fuses around it.
    let options = RunOptions {
        cache: CachePolicy::Materialized,
        keep: vec!["wide".into()],
        ..RunOptions::default().with_workspace(Arc::clone(&ws))
    };
    let kept = chain(&table, 2.0).run_with(&options).unwrap();
    assert!(kept.output_hash("wide").unwrap().is_some());
    assert!(kept.output_hash("scaled").unwrap().is_none());
    assert_eq!(batches(&kept, "out"), batches(&cold, "out"));
}

#[test]
fn a_lost_side_input_of_a_fused_chain_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let table = data(2_000, 23);
    let first = run_materialized(&chain(&table, 2.0), &ws, Rerun::Nothing);
    let expected = batches(&first, "out");

    // Damage the fitted statistics, which `scaled` (inside the chain) reads:
    // the object is there, so `stats` hits, and the damage shows when the
    // chain loads it.
    let stats = first.output_hash("stats").unwrap().unwrap();
    let path = ws.objects().object_path(&stats);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    drop(ws);
    let ws = open(dir.path());

    let second = run_materialized(&chain(&table, 2.0), &ws, Rerun::Steps(vec!["out".into()]));
    assert_eq!(batches(&second, "out"), expected);
    let report = second.steps.iter().rfind(|s| s.name == "stats").unwrap();
    assert_eq!(report.cache, CacheUse::Miss, "stats was recomputed");
    assert!(
        report.notes.iter().any(|n| n.contains("recomputed")),
        "{:?}",
        report.notes
    );
}

#[test]
fn without_a_workspace_nothing_is_cached_or_recorded() {
    let p = pipeline(&data(500, 9), 0.0, ScaleMethod::ZScore);
    let out = p.run().unwrap();
    assert!(out.run_id.is_none());
    assert!(out.steps.iter().all(|s| s.cache == CacheUse::Off));
    assert!(out.output_hash("scaled").unwrap().is_none());
}

/// An Arrow IPC file of `rows` rows of `x` (and its version in `y`), with
/// its modification time an hour ago (outside the stat cache's racy window).
fn write_ipc(path: &Path, rows: usize, version: f64) {
    let x: ArrayRef = Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64)));
    let y: ArrayRef = Arc::new(Float64Array::from(vec![version; rows]));
    let batch = RecordBatch::try_from_iter([("x", x), ("y", y)]).unwrap();
    fuseflow::data::files::write_table(
        &Table::from_batch(batch),
        path,
        fuseflow::data::files::FileFormat::ArrowFile,
    )
    .unwrap();
    set_mtime(path, 3600);
}

fn set_mtime(path: &Path, seconds_ago: u64) {
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds_ago);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

fn read_and_derive(path: &Path, add: f64) -> Pipeline {
    let mut p = Pipeline::new("sourced");
    p.add("raw", Read::new(path));
    p.add("wide", Derive::new([("z", col("x") + lit(add))]))
        .input("data", "raw");
    p
}

#[test]
fn a_read_step_keeps_a_reference_to_its_file_not_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let file = dir.path().join("data.arrow");
    write_ipc(&file, 1000, 1.0);
    let first = run(&read_and_derive(&file, 1.0), &ws, Rerun::Nothing);
    // Only the derive step's output is an object; the read is a reference.
    assert_eq!(ws.objects().list().unwrap().len(), 1);
    let raw_hash = first.output_hash("raw").unwrap().unwrap();
    assert!(!ws.objects().object_path(&raw_hash).exists());
    assert!(ws.objects().reference_path(&raw_hash).exists());

    // A changed downstream step reads the file again through the reference.
    let changed = run(&read_and_derive(&file, 2.0), &ws, Rerun::Nothing);
    assert!(matches!(
        cache_of(&changed, &["raw"])[0],
        CacheUse::Hit { .. }
    ));
    assert_eq!(cache_of(&changed, &["wide"]), vec![CacheUse::Miss]);
    let z = batches(&changed, "wide");
    let z = z.column_by_name("z").unwrap();
    assert_eq!(common::f64_values(z.as_ref())[999], Some(1001.0));

    // The first run's read output is fetched from the file...
    let id = first.run_id.as_ref().unwrap().as_str();
    let fetched = ws.fetch_output(id, "raw", None).unwrap();
    assert_eq!(fetched.num_rows(), 1000);
    // ...until the file changes: then the output is gone, and says why.
    write_ipc(&file, 1000, 2.0);
    let fresh = Arc::new(Workspace::open(dir.path().join("ws")).unwrap());
    let err = fresh.fetch_output(id, "raw", None).unwrap_err().to_string();
    assert!(err.contains("changed since it was read"), "{err}");
}

#[test]
fn the_stat_cache_spares_rehashing_until_the_file_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let file = dir.path().join("data.arrow");
    write_ipc(&file, 100, 1.0);
    let hash = ws.source_hash(&file, false).unwrap();
    let name = std::fs::canonicalize(&file).unwrap();
    let stat = fuseflow::track::FileStat::of(&std::fs::metadata(&file).unwrap());
    let remembered = ws
        .runs()
        .source_hash(&name.to_string_lossy(), &stat)
        .unwrap();
    assert_eq!(remembered, Some(hash.to_string()));

    // New bytes of the same size with the old modification time and inode
    // keep the stat: the cache trusts it, and verifying sources sees through it.
    let old_mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(old_mtime)
        .unwrap();
    assert_eq!(ws.source_hash(&file, false).unwrap(), hash);
    assert_ne!(ws.source_hash(&file, true).unwrap(), hash);

    // A touched file (new modification time) is hashed again, and a run
    // keyed on it re-runs its reader.
    write_ipc(&file, 100, 1.0);
    let first = run(&read_and_derive(&file, 1.0), &ws, Rerun::Nothing);
    write_ipc(&file, 100, 3.0);
    let after = run(&read_and_derive(&file, 1.0), &ws, Rerun::Nothing);
    assert_eq!(cache_of(&first, &["raw"]), vec![CacheUse::Miss]);
    assert_eq!(cache_of(&after, &["raw", "wide"]), vec![CacheUse::Miss; 2]);
}

#[test]
fn a_write_step_is_skipped_while_its_file_holds_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let ws = open(dir.path());
    let out = dir.path().join("out.parquet");
    let build = || {
        let mut p = Pipeline::new("writes");
        p.add("raw", MemorySource::new(data(500, 9)));
        p.add("wide", Derive::new([("z", col("x") + lit(1.0))]))
            .input("data", "raw");
        p.add("save", fuseflow::pipeline::io::Write::new(&out))
            .input("data", "wide");
        p
    };
    let first = run(&build(), &ws, Rerun::Nothing);
    assert_eq!(cache_of(&first, &["save"]), vec![CacheUse::Miss]);
    let again = run(&build(), &ws, Rerun::Nothing);
    assert!(matches!(
        cache_of(&again, &["save"])[0],
        CacheUse::Hit { .. }
    ));

    // Changed by someone else, or gone: written again.
    let mut bytes = std::fs::read(&out).unwrap();
    bytes.push(0);
    std::fs::write(&out, &bytes).unwrap();
    let changed = run(&build(), &ws, Rerun::Nothing);
    assert_eq!(cache_of(&changed, &["save"]), vec![CacheUse::Miss]);
    assert_eq!(std::fs::read(&out).unwrap().len(), bytes.len() - 1);
    std::fs::remove_file(&out).unwrap();
    let gone = run(&build(), &ws, Rerun::Nothing);
    assert_eq!(cache_of(&gone, &["save"]), vec![CacheUse::Miss]);
    assert!(out.exists());
    // Asked for, it runs.
    let asked = run(&build(), &ws, Rerun::Steps(vec!["save".into()]));
    assert_eq!(cache_of(&asked, &["save"]), vec![CacheUse::Miss]);
}

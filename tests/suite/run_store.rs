//! The run store: schema migrations, recording and reading runs back, run
//! references, crash consistency and several writers on one file.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use fuseflow::track::{
    MetricRow, PipelineRecord, RunDetail, RunId, RunStatus, RunStore, RunSummary, StepRecord,
    StepRunRow, Variant, render_run, render_runs,
};

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("runs.db")
}

fn pipeline(name: &str) -> PipelineRecord {
    PipelineRecord {
        name: name.to_string(),
        spec_hash: format!("{name}-hash"),
        spec: format!("[pipeline]\nname = \"{name}\"\n"),
    }
}

fn step(name: &str, hit: bool) -> StepRecord {
    StepRecord {
        step: name.to_string(),
        kind: "standardize".to_string(),
        cache_key: format!("key-{name}"),
        key_fields: format!("kind = standardize\ninput = {name}-in\n"),
        outputs: vec![("out".to_string(), format!("hash-{name}"))],
        device: "cpu".to_string(),
        cache_hit: hit,
        reused_from: None,
        duration: Duration::from_micros(1500),
        rows: 100,
        bytes: 800,
        sizes: Vec::new(),
        error: None,
        notes: None,
    }
}

fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// The schema version this build writes: one per migration (the third
/// added the variants of sweeps).
const SCHEMA_VERSION: i64 = 4;

fn message(err: fuseflow::Error) -> String {
    err.to_string()
}

#[test]
fn a_new_file_is_migrated_to_the_current_schema_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(RunStore::open(&path).unwrap());
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn reopening_keeps_runs_and_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let id = {
        let store = RunStore::open(&path).unwrap();
        store.begin_run(&pipeline("prep"), "").unwrap()
    };
    let store = RunStore::open(&path).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(store.runs(None).unwrap()[0].id, id);
    drop(store);
    drop(RunStore::open(&path).unwrap());
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

#[test]
fn a_store_from_a_newer_fuseflow_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(RunStore::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let msg = message(RunStore::open(&path).unwrap_err());
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("schema version 99"), "{msg}");
    assert!(msg.contains("upgrade fuseflow"), "{msg}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    std::fs::write(&path, "name,value\n".repeat(500)).unwrap();
    let msg = message(RunStore::open(&path).unwrap_err());
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a SQLite database"), "{msg}");
    assert!(msg.contains("delete or move it"), "{msg}");
}

#[test]
fn a_run_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&db(&dir)).unwrap();
    let first = store.begin_run(&pipeline("prep"), "").unwrap();
    store.record_step(&first, &step("load", false)).unwrap();
    store
        .finish_run(&first, RunStatus::Succeeded, None)
        .unwrap();

    let run = store.begin_run(&pipeline("prep"), "alpha = 0.5").unwrap();
    let load = StepRecord {
        reused_from: Some(first.clone()),
        ..step("load", true)
    };
    let split = StepRecord {
        outputs: vec![
            ("train".to_string(), "h-train".to_string()),
            ("test".to_string(), "h-test".to_string()),
        ],
        device: "cuda:0".to_string(),
        notes: Some("fell back from wgpu: no adapter".to_string()),
        rows: u64::from(u32::MAX) + 7,
        bytes: 1 << 40,
        sizes: vec![(u64::from(u32::MAX), 1 << 39), (7, 1 << 39)],
        ..step("split", false)
    };
    let fit = StepRecord {
        error: Some("singular matrix".to_string()),
        outputs: vec![],
        ..step("fit", false)
    };
    for s in [&load, &split, &fit] {
        store.record_step(&run, s).unwrap();
    }
    store.record_metric(&run, "eval", "auc", 0.75).unwrap();
    store.record_metric(&run, "eval", "loss", f64::NAN).unwrap();
    store.record_metric(&run, "eval", "auc", 0.8).unwrap();
    store
        .finish_run(&run, RunStatus::Failed, Some("step 'fit' failed"))
        .unwrap();

    let detail = store.run(run.as_str()).unwrap();
    let s = &detail.summary;
    assert_eq!(s.id, run);
    assert_eq!(s.pipeline, "prep");
    assert_eq!(s.spec_hash, "prep-hash");
    assert_eq!(s.params, "alpha = 0.5");
    assert_eq!(s.status, RunStatus::Failed);
    assert_eq!(s.error.as_deref(), Some("step 'fit' failed"));
    assert!(s.ended.is_some() && s.duration.is_some());
    assert_eq!((s.steps, s.hits, s.failed_steps), (3, 1, 1));
    assert_eq!(s.pid, std::process::id());
    let records: Vec<&StepRecord> = detail.steps.iter().map(|r| &r.record).collect();
    assert_eq!(records, [&load, &split, &fit]);
    assert!(detail.steps.iter().all(|r| r.run == run));
    assert_eq!(detail.metrics.len(), 2);
    assert_eq!(
        detail.metrics[0],
        MetricRow {
            step: "eval".to_string(),
            name: "auc".to_string(),
            value: 0.8
        }
    );
    assert_eq!(detail.metrics[1].name, "loss");
    assert!(detail.metrics[1].value.is_nan());

    assert_eq!(store.step_run(run.as_str(), "split").unwrap().record, split);
    assert_eq!(
        store.find_output(run.as_str(), "load", None).unwrap(),
        ("out".to_string(), "hash-load".to_string())
    );
    assert_eq!(
        store
            .find_output(run.as_str(), "split", Some("test"))
            .unwrap(),
        ("test".to_string(), "h-test".to_string())
    );
}

#[test]
fn lookups_name_what_is_missing_and_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&db(&dir)).unwrap();
    let run = store.begin_run(&pipeline("prep"), "").unwrap();
    let split = StepRecord {
        outputs: vec![
            ("train".to_string(), "h1".to_string()),
            ("test".to_string(), "h2".to_string()),
        ],
        ..step("split", false)
    };
    store.record_step(&run, &step("load", false)).unwrap();
    store.record_step(&run, &split).unwrap();

    let msg = message(store.step_run(run.as_str(), "fit").unwrap_err());
    assert!(
        msg.contains("no step 'fit'") && msg.contains("load, split"),
        "{msg}"
    );
    let msg = message(store.find_output(run.as_str(), "split", None).unwrap_err());
    assert!(
        msg.contains("several outputs") && msg.contains("train, test"),
        "{msg}"
    );
    let msg = message(
        store
            .find_output(run.as_str(), "split", Some("val"))
            .unwrap_err(),
    );
    assert!(
        msg.contains("no output 'val'") && msg.contains("train, test"),
        "{msg}"
    );
    let msg = message(store.run("19990101-000000-0000").unwrap_err());
    assert!(
        msg.contains("19990101-000000-0000") && msg.contains("fuseflow runs"),
        "{msg}"
    );
    let msg = message(store.record_step(&run, &step("load", false)).unwrap_err());
    assert!(msg.contains("already recorded"), "{msg}");
    let msg = message(
        store
            .record_step(&RunId::new("nope"), &step("x", false))
            .unwrap_err(),
    );
    assert!(msg.contains("no run 'nope'"), "{msg}");

    assert!(store.finish_run(&run, RunStatus::Running, None).is_err());
    store.finish_run(&run, RunStatus::Succeeded, None).unwrap();
    let msg = message(store.record_step(&run, &step("late", false)).unwrap_err());
    assert!(msg.contains("already finished (succeeded)"), "{msg}");
    let msg = message(store.record_metric(&run, "x", "auc", 1.0).unwrap_err());
    assert!(msg.contains("already finished"), "{msg}");
}

#[test]
fn runs_are_listed_newest_first_and_filtered_by_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&db(&dir)).unwrap();
    let a1 = store.begin_run(&pipeline("a"), "").unwrap();
    let b1 = store.begin_run(&pipeline("b"), "").unwrap();
    let a2 = store.begin_run(&pipeline("a"), "").unwrap();
    store.record_step(&a2, &step("s", true)).unwrap();
    store.record_step(&a2, &step("t", false)).unwrap();

    let ids = |runs: Vec<RunSummary>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.runs(None).unwrap()),
        [a2.clone(), b1.clone(), a1.clone()]
    );
    assert_eq!(ids(store.runs(Some("a")).unwrap()), [a2.clone(), a1]);
    assert_eq!(ids(store.runs(Some("b")).unwrap()), [b1]);
    assert!(store.runs(Some("c")).unwrap().is_empty());
    let newest = &store.runs(None).unwrap()[0];
    assert_eq!((newest.steps, newest.hits), (2, 1));
    assert_eq!(newest.status, RunStatus::Running);
}

#[test]
fn runs_are_found_by_prefix_and_latest() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&db(&dir)).unwrap();
    let msg = message(store.resolve("latest").unwrap_err());
    assert!(msg.contains("no runs"), "{msg}");

    let ids: Vec<RunId> = (0..3)
        .map(|_| store.begin_run(&pipeline("p"), "").unwrap())
        .collect();
    assert_eq!(store.resolve("latest").unwrap(), ids[2]);
    for id in &ids {
        assert_eq!(&store.resolve(id.as_str()).unwrap(), id);
        // The full id less its last digit is ambiguous only if another id
        // shares it, which the random suffix makes unlikely but possible.
        let prefix = &id.as_str()[..id.as_str().len() - 1];
        let sharing = ids
            .iter()
            .filter(|o| o.as_str().starts_with(prefix))
            .count();
        if sharing == 1 {
            assert_eq!(&store.resolve(prefix).unwrap(), id);
        }
    }
    // Ids start with the year, so a prefix of it matches every run.
    let msg = message(store.resolve("2").unwrap_err());
    assert!(msg.contains("ambiguous"), "{msg}");
    for id in &ids {
        assert!(msg.contains(id.as_str()), "{msg}");
    }
    assert!(store.resolve("").is_err());
    assert_eq!(store.run("latest").unwrap().summary.id, ids[2]);
}

#[test]
fn previous_step_run_is_the_latest_earlier_run_of_the_same_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&db(&dir)).unwrap();
    let with_key = |name: &str, key: &str| StepRecord {
        cache_key: key.to_string(),
        ..step(name, false)
    };
    let a1 = store.begin_run(&pipeline("a"), "").unwrap();
    store.record_step(&a1, &with_key("scale", "k1")).unwrap();
    let a2 = store.begin_run(&pipeline("a"), "").unwrap();
    store.record_step(&a2, &with_key("scale", "k2")).unwrap();
    // Another pipeline with a step of the same name, begun later.
    let b1 = store.begin_run(&pipeline("b"), "").unwrap();
    store.record_step(&b1, &with_key("scale", "kb")).unwrap();
    // A run of `a` that failed before reaching `scale`.
    let a3 = store.begin_run(&pipeline("a"), "").unwrap();
    store.record_step(&a3, &with_key("load", "kl")).unwrap();
    let a4 = store.begin_run(&pipeline("a"), "").unwrap();
    store.record_step(&a4, &with_key("scale", "k4")).unwrap();

    let prev = store
        .previous_step_run(a4.as_str(), "scale")
        .unwrap()
        .unwrap();
    assert_eq!(prev.run, a2);
    assert_eq!(prev.record.cache_key, "k2");
    assert_eq!(prev.record.outputs, step("scale", false).outputs);
    assert_eq!(
        store
            .previous_step_run(a2.as_str(), "scale")
            .unwrap()
            .unwrap()
            .run,
        a1
    );
    assert!(
        store
            .previous_step_run(a1.as_str(), "scale")
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .previous_step_run(b1.as_str(), "scale")
            .unwrap()
            .is_none()
    );
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[cfg(target_os = "linux")]
#[test]
fn a_run_whose_process_is_gone_reads_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = RunStore::open(&path).unwrap();
    let orphan = store.begin_run(&pipeline("p"), "").unwrap();
    store.record_step(&orphan, &step("load", false)).unwrap();
    let live = store.begin_run(&pipeline("p"), "").unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE runs SET pid = ?1 WHERE id = ?2",
            rusqlite::params![dead_pid(), orphan.as_str()],
        )
        .unwrap();

    let summary = store.run(orphan.as_str()).unwrap().summary;
    assert_eq!(summary.status, RunStatus::Interrupted);
    assert!(
        summary
            .error
            .unwrap()
            .contains("ended before the run finished")
    );
    assert_eq!(
        store.run(live.as_str()).unwrap().summary.status,
        RunStatus::Running
    );

    assert_eq!(
        store.mark_interrupted().unwrap(),
        std::slice::from_ref(&orphan)
    );
    let stored: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT status FROM runs WHERE id = ?1",
            [orphan.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, "interrupted");
    let summary = store.run(orphan.as_str()).unwrap().summary;
    assert_eq!(summary.status, RunStatus::Interrupted);
    assert!(summary.ended.is_some());
    assert!(store.mark_interrupted().unwrap().is_empty());
}

#[test]
fn several_processes_can_write_at_once() {
    const THREADS: usize = 4;
    const RUNS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    // Each thread opens its own store, as separate processes would, on a file
    // that does not exist yet, so the migration races too.
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = RunStore::open(&path).unwrap();
                let p = pipeline(&format!("p{t}"));
                for _ in 0..RUNS {
                    let run = store.begin_run(&p, "").unwrap();
                    store.record_step(&run, &step("load", false)).unwrap();
                    store.record_metric(&run, "load", "n", 1.0).unwrap();
                    store.finish_run(&run, RunStatus::Succeeded, None).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let store = RunStore::open(&path).unwrap();
    let runs = store.runs(None).unwrap();
    assert_eq!(runs.len(), THREADS * RUNS);
    assert!(
        runs.iter()
            .all(|r| r.status == RunStatus::Succeeded && r.steps == 1)
    );
    let mut ids: Vec<&RunId> = runs.iter().map(|r| &r.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), THREADS * RUNS);
    assert_eq!(store.runs(Some("p0")).unwrap().len(), RUNS);
}

/// Set in the child process of [`a_killed_run_leaves_a_consistent_store`].
const KILL_ENV: &str = "FUSEFLOW_TEST_RUN_STORE_KILLED";

/// In the child process only: record steps into the store named by
/// [`KILL_ENV`] until killed. Does nothing in a normal test run.
#[test]
fn killed_child_records_steps_until_killed() {
    let Some(path) = std::env::var_os(KILL_ENV) else {
        return;
    };
    let store = RunStore::open(Path::new(&path)).unwrap();
    let run = store.begin_run(&pipeline("p"), "").unwrap();
    for i in 0.. {
        let s = StepRecord {
            outputs: vec![
                ("a".to_string(), format!("a{i}")),
                ("b".to_string(), format!("b{i}")),
            ],
            ..step(&format!("step{i}"), false)
        };
        store.record_step(&run, &s).unwrap();
        store
            .record_metric(&run, &s.step, "i", f64::from(i))
            .unwrap();
    }
}

#[test]
fn a_killed_run_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(RunStore::open(&path).unwrap());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &common::test_name(module_path!(), "killed_child_records_steps_until_killed"),
            "--test-threads=1",
        ])
        .env(KILL_ENV, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let store = RunStore::open(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let steps = store.runs(None).unwrap().first().map_or(0, |r| r.steps);
        if steps >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child recorded {steps} steps in 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = RunStore::open(&path).unwrap();
    let detail = store.run("latest").unwrap();
    assert_eq!(detail.summary.status, RunStatus::Interrupted);
    assert_eq!(detail.summary.pid, child.id());
    assert!(detail.steps.len() >= 20);
    for (i, row) in detail.steps.iter().enumerate() {
        assert_eq!(row.record.step, format!("step{i}"));
        assert_eq!(
            row.record.outputs,
            [
                ("a".to_string(), format!("a{i}")),
                ("b".to_string(), format!("b{i}"))
            ]
        );
    }
    // Every metric belongs to a recorded step; the last step's may be missing.
    assert!(detail.metrics.len() + 1 >= detail.steps.len());
    assert!(detail.metrics.len() <= detail.steps.len());
    let check: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

fn at(ms: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// 2025-01-02 03:04:05 UTC.
const T0: u64 = 1_735_787_045_000;

fn fixed_detail() -> RunDetail {
    let id = RunId::new("20250102-030405-ab12");
    let row = |record: StepRecord, ms: u64| StepRunRow {
        run: id.clone(),
        record,
        recorded: at(T0 + ms),
    };
    RunDetail {
        summary: RunSummary {
            id: id.clone(),
            pipeline: "prep".to_string(),
            spec_hash: "9f86d081884c".to_string(),
            params: "alpha = 0.5\nseed = 7".to_string(),
            status: RunStatus::Failed,
            started: at(T0),
            ended: Some(at(T0 + 1234)),
            duration: Some(Duration::from_millis(1234)),
            steps: 3,
            hits: 1,
            failed_steps: 1,
            error: Some("step 'fit' failed: singular matrix".to_string()),
            host: "box".to_string(),
            pid: 4242,
        },
        steps: vec![
            row(
                StepRecord {
                    reused_from: Some(RunId::new("20250101-220000-00fe")),
                    duration: Duration::from_micros(2_345),
                    rows: 1_000_000,
                    bytes: 8_000_000,
                    ..step("load", true)
                },
                3,
            ),
            row(
                StepRecord {
                    device: "cuda: NVIDIA H100 80GB HBM3 (CUDA 13.0, sm_90)".to_string(),
                    duration: Duration::from_micros(812_300),
                    notes: Some("fell back from wgpu: f64 not supported".to_string()),
                    ..step("standardize", false)
                },
                815,
            ),
            row(
                StepRecord {
                    kind: "logistic".to_string(),
                    duration: Duration::from_micros(400),
                    rows: 0,
                    bytes: 0,
                    error: Some("singular matrix".to_string()),
                    ..step("fit", false)
                },
                1230,
            ),
        ],
        metrics: vec![MetricRow {
            step: "eval".to_string(),
            name: "auc".to_string(),
            value: 0.8125,
        }],
    }
}

#[test]
fn render_run_is_an_aligned_table() {
    let expected = "\
run       20250102-030405-ab12
pipeline  prep (spec 9f86d081884c)
status    failed: step 'fit' failed: singular matrix
started   2025-01-02 03:04:05 UTC
ended     2025-01-02 03:04:06 UTC (1.23 s)
host      box (pid 4242)
params    alpha = 0.5
          seed = 7
steps     3 (1 cache hits, 1 failed)

STEP         KIND         DEVICE  CACHE   REUSED FROM              MS     ROWS    BYTES
load         standardize  cpu     hit     20250101-220000-00fe    2.3  1000000  7.6 MiB
standardize  standardize  cuda    miss    -                     812.3      100    800 B
fit          logistic     cpu     failed  -                       0.4        0      0 B

  device cuda: NVIDIA H100 80GB HBM3 (CUDA 13.0, sm_90)
  standardize: note: fell back from wgpu: f64 not supported
  fit: error: singular matrix

STEP  METRIC   VALUE
eval  auc     0.8125
";
    assert_eq!(render_run(&fixed_detail()), expected);
}

#[test]
fn render_runs_is_an_aligned_table() {
    let failed = fixed_detail().summary;
    let running = RunSummary {
        id: RunId::new("20250102-040000-0001"),
        pipeline: "score".to_string(),
        status: RunStatus::Running,
        started: at(T0 + 3_235_000),
        ended: None,
        duration: None,
        steps: 12,
        hits: 10,
        failed_steps: 0,
        error: None,
        ..failed.clone()
    };
    let expected = "\
RUN                   PIPELINE  STATUS   STARTED (UTC)        DURATION  STEPS  HITS  ERROR
20250102-040000-0001  score     running  2025-01-02 03:58:00         -     12    10
20250102-030405-ab12  prep      failed   2025-01-02 03:04:05    1.23 s      3     1  step 'fit' failed: singular matrix
";
    assert_eq!(render_runs(&[running, failed], &[]), expected);
    assert_eq!(render_runs(&[], &[]), "no runs recorded\n");
}

#[test]
fn a_sweeps_variants_come_back_as_recorded_whatever_their_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&db(&dir)).unwrap();
    let run = store.begin_run(&pipeline("sweep"), "").unwrap();
    let variants = vec![
        Variant {
            name: "pred=a\tb,l2=1.0".into(),
            assignment: vec![
                ("pred".into(), "a\tb\nc \"quoted\"".into()),
                ("l2".into(), "1.0".into()),
            ],
            steps: vec![("model".into(), "model[pred=a\tb,l2=1_0]".into())],
        },
        Variant {
            name: "l2=2.0".into(),
            assignment: vec![("l2".into(), "2.0".into())],
            steps: vec![],
        },
    ];
    store.record_variants(&run, &variants).unwrap();
    assert_eq!(store.variants(&run).unwrap(), variants);
    let other = store.begin_run(&pipeline("plain"), "").unwrap();
    assert!(store.variants(&other).unwrap().is_empty());
}

/// A store with `runs` finished runs of three steps each, closed (its
/// write-ahead log folded into the file).
fn filled_store(path: &Path, runs: usize) -> Vec<RunId> {
    let store = RunStore::open(path).unwrap();
    let ids = (0..runs)
        .map(|i| {
            let run = store
                .begin_run(&pipeline(&format!("p{}", i % 3)), "")
                .unwrap();
            for s in ["load", "scale", "write"] {
                store.record_step(&run, &step(s, i % 2 == 0)).unwrap();
            }
            store.finish_run(&run, RunStatus::Succeeded, None).unwrap();
            run
        })
        .collect();
    drop(store);
    ids
}

/// A run store damaged on disk (cut short, or pages overwritten) is reported naming the file on open or on the first read
/// that meets the damage, and is never recreated empty: its bytes are left
/// as they were for the user to recover.
#[test]
fn a_damaged_run_store_is_reported_and_left_as_it_was() {
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 3] = [
        ("cut in half", |bytes| bytes.truncate(bytes.len() / 2)),
        ("its second half overwritten", |bytes| {
            let middle = bytes.len() / 2 / 4096 * 4096;
            bytes[middle..].fill(0xA5);
        }),
        ("header overwritten", |bytes| bytes[..100].fill(0)),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let ids = filled_store(&path, 200);
        let mut bytes = std::fs::read(&path).unwrap();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();

        let error = match RunStore::open(&path) {
            Err(e) => e,
            Ok(store) => {
                let listed = store.runs(None);
                let details = ids.iter().map(|id| store.run(id.as_str()).map(drop));
                match std::iter::once(listed.map(drop))
                    .chain(details)
                    .find_map(Result::err)
                {
                    Some(e) => e,
                    None => panic!("{what}: the damaged store read as if whole"),
                }
            }
        };
        let message = message(error);
        assert!(
            message.contains(&path.display().to_string()),
            "{what}: {message}"
        );
        assert!(
            message.contains("corrupt") || message.contains("not a SQLite database"),
            "{what}: {message}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{what}: the file was changed"
        );
    }
}

//! Fault loops on one shared workspace, each printing its figures: runs
//! killed (SIGKILL) at random points, background object writes included,
//! eight processes running different pipelines at once, and a read-only
//! workspace or target at each write point. Nothing stored is lost or
//! returned wrong, every killed run reads as interrupted, and what runs
//! next equals a clean run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::Rng;
use crate::workspace_processes::{
    BIN, example_in, fuseflow_ws, integrity_check, ok, shipped_example_in, temp_files,
    verify_all_objects,
};
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::track::{RunId, RunStatus};
use fuseflow::{Table, Workspace};

/// Each step's recorded outputs (port, content hash), by step name.
type StepOutputs = BTreeMap<String, Vec<(String, String)>>;

fn outputs_of(ws: &Path, run: &RunId) -> StepOutputs {
    let workspace = Workspace::open(ws).unwrap();
    let detail = workspace.runs().run(run.as_str()).unwrap();
    assert_eq!(
        detail.summary.status,
        RunStatus::Succeeded,
        "{:?}",
        detail.summary
    );
    (detail.steps.into_iter())
        .map(|s| (s.record.step, s.record.outputs))
        .collect()
}

/// The newest run in `ws`.
fn newest_run(ws: &Path) -> RunId {
    let workspace = Workspace::open(ws).unwrap();
    workspace.runs().runs(None).unwrap()[0].id.clone()
}

/// `fuseflow --workspace WS run -q ARGS... SPEC` started in `cwd`, quiet.
fn spawn_run(cwd: &Path, ws: &Path, args: &[&str], spec: &Path) -> Child {
    Command::new(BIN)
        .args(["--workspace", ws.to_str().unwrap(), "run", "-q"])
        .args(args)
        .arg(spec)
        .current_dir(cwd)
        .env_remove(fuseflow::workspace::ENV_VAR)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until `child`'s run is recorded in `ws` (or the child has exited).
fn wait_until_recorded(ws: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if ws.join("runs.sqlite").exists()
            && let Ok(workspace) = Workspace::open(ws)
            && (workspace.runs().runs(None))
                .is_ok_and(|runs| runs.iter().any(|r| r.pid == child.id()))
        {
            return;
        }
        assert!(Instant::now() < deadline, "no run recorded in 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

const KILLS: usize = 20;

#[test]
fn runs_killed_at_twenty_random_points_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = example_in(dir.path());
    // The example pipeline over 50 times its data, so that a run lasts long
    // enough for kills to land in each of its phases.
    let csv = dir.path().join("data/customers.csv");
    let write_data = |seed| {
        let data = fuseflow::datasets::customers(20_000, seed);
        write_table(&Table::from_batch(data), &csv, FileFormat::Csv).unwrap();
    };
    write_data(5);
    let every_step = ["--cache", "every-step"];

    // A clean run, and how long one takes.
    let reference_ws = dir.path().join("R");
    ok(fuseflow_ws(
        dir.path(),
        &reference_ws,
        &[
            "run",
            "-q",
            every_step[0],
            every_step[1],
            spec.to_str().unwrap(),
        ],
    ));
    let reference_run = newest_run(&reference_ws);
    let reference = outputs_of(&reference_ws, &reference_run);
    let clean = Workspace::open(&reference_ws)
        .unwrap()
        .runs()
        .run(reference_run.as_str())
        .unwrap()
        .summary
        .duration
        .unwrap();

    let ws = dir.path().join("W");
    let mut rng = Rng::new(18);
    let (mut interrupted, mut finished, mut before_any_run) = (0, 0, 0);
    let (mut objects, mut mid_write) = (0, 0);
    for kill in 0..KILLS {
        // New data each time, so that every step computes and stores new
        // objects: every step's (the background writer busy) on even kills,
        // the materialized ones on odd.
        write_data(100 + kill as u64);
        let cache = if kill % 2 == 0 {
            "every-step"
        } else {
            "materialized"
        };
        let temps_before = temp_files(&ws).len();
        let mut child = spawn_run(dir.path(), &ws, &["--cache", cache], &spec);
        // A random point of the run (a few before it is recorded: opening
        // the workspace, planning), up to its clean duration.
        if rng.chance(0.9) {
            wait_until_recorded(&ws, &mut child);
        }
        std::thread::sleep(clean.mul_f64(rng.unit()));
        let _ = child.kill();
        let status = child.wait().unwrap();

        // What the next process finds.
        if !ws.join("runs.sqlite").exists() {
            before_any_run += 1;
            continue;
        }
        // A kill while an object was written leaves its temporary file
        // (`cache gc` removes it once stale), never a damaged object.
        mid_write += usize::from(temp_files(&ws).len() > temps_before);
        objects = verify_all_objects(&ws).len();
        integrity_check(&ws);
        let workspace = Workspace::open(&ws).unwrap();
        let runs = workspace.runs().runs(None).unwrap();
        // A run is marked succeeded only once its objects are durable, so a
        // kill after that (while the process exits) leaves it succeeded.
        match runs.iter().find(|r| r.pid == child.id()) {
            None => before_any_run += 1,
            Some(run) if run.status == RunStatus::Succeeded => finished += 1,
            Some(run) => {
                assert!(!status.success(), "kill {kill}: {run:?}");
                assert_eq!(run.status, RunStatus::Interrupted, "kill {kill}: {run:?}");
                interrupted += 1;
            }
        }
    }
    eprintln!(
        "{KILLS} kills: {interrupted} runs interrupted, {finished} finished first, \
         {before_any_run} before a run was recorded; {mid_write} while an object was written \
         (its temporary file left behind); {objects} objects, all verified"
    );
    assert!(
        interrupted >= KILLS / 2,
        "most kills should land inside a run"
    );

    // The next run completes and equals the clean one, step by step.
    write_data(5);
    ok(fuseflow_ws(
        dir.path(),
        &ws,
        &[
            "run",
            "-q",
            every_step[0],
            every_step[1],
            spec.to_str().unwrap(),
        ],
    ));
    assert_eq!(outputs_of(&ws, &newest_run(&ws)), reference);
    verify_all_objects(&ws);
    integrity_check(&ws);
}

#[test]
fn eight_processes_running_different_pipelines_at_once_agree_with_clean_runs() {
    let dir = tempfile::tempdir().unwrap();
    let prep = example_in(dir.path());
    let train = shipped_example_in(dir.path(), "train.toml");
    let sweep = shipped_example_in(dir.path(), "sweep.toml");
    let jobs: [(&Path, &[&str]); 8] = [
        (&prep, &[]),
        (&prep, &["--cache", "every-step"]),
        (&prep, &["--no-fuse"]),
        (&train, &[]),
        (&train, &["--cache", "every-step"]),
        (&train, &["--rerun-all"]),
        (&sweep, &[]),
        (&sweep, &["--no-fuse"]),
    ];

    // Each job alone, in a workspace of its own.
    let references: Vec<StepOutputs> = (jobs.iter().enumerate())
        .map(|(i, (spec, args))| {
            let ws = dir.path().join(format!("R{i}"));
            let child = spawn_run(dir.path(), &ws, args, spec);
            ok(child.wait_with_output().unwrap());
            outputs_of(&ws, &newest_run(&ws))
        })
        .collect();

    // All of them at once, on one workspace.
    let ws = dir.path().join("W");
    let children: Vec<Child> = (jobs.iter())
        .map(|(spec, args)| spawn_run(dir.path(), &ws, args, spec))
        .collect();
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    for child in children {
        ok(child.wait_with_output().unwrap());
    }
    let workspace = Workspace::open(&ws).unwrap();
    let runs = workspace.runs().runs(None).unwrap();
    assert_eq!(runs.len(), jobs.len());
    for (i, pid) in pids.iter().enumerate() {
        let run = runs.iter().find(|r| r.pid == *pid).unwrap();
        assert_eq!(
            outputs_of(&ws, &run.id),
            references[i],
            "job {i}: {:?}",
            jobs[i]
        );
    }
    let objects = verify_all_objects(&ws).len();
    integrity_check(&ws);
    eprintln!(
        "{} processes on one workspace: 0 failures, every step's outputs equal to a clean run's; \
         {objects} objects, all verified",
        jobs.len()
    );
}

/// `fuseflow ARGS...` in `cwd` with `read_only` mounted read-only for it
/// alone (a private mount namespace; the file system stays writable for
/// everyone else). `None` where this machine cannot do that (not root, or
/// no `unshare`).
fn run_with_read_only(cwd: &Path, read_only: &Path, args: &[&str]) -> Option<Output> {
    let ro = read_only.to_str().unwrap();
    let script = format!("mount --bind -o ro '{ro}' '{ro}' || exit 99; exec \"$0\" \"$@\"");
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script, BIN])
        .args(args)
        .current_dir(cwd)
        .env_remove(fuseflow::workspace::ENV_VAR)
        .output()
        .ok()?;
    (out.status.code() != Some(99)).then_some(out)
}

/// A read-only workspace, or a read-only place for a `write` step's file,
/// at each write point: a run that must store objects and record itself, a
/// warm run that must only record itself, and a pipeline writing its
/// result. Each fails with an error naming the place and what to do; the
/// workspace keeps every object and run it had, and can still be browsed.
#[test]
fn a_read_only_workspace_or_target_fails_clearly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = example_in(dir.path());
    let ws = dir.path().join("W");
    ok(fuseflow_ws(
        dir.path(),
        &ws,
        &["run", "-q", spec.to_str().unwrap()],
    ));
    let objects = verify_all_objects(&ws);

    // The same pipeline scaled another way: new objects to store.
    let changed = dir.path().join("changed.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &changed,
        text.replace("method = \"robust\"", "method = \"zscore\""),
    )
    .unwrap();
    let workspace_args = |extra: &[&str], spec: &Path| -> Vec<String> {
        let mut args = vec![
            "--workspace".to_string(),
            ws.display().to_string(),
            "run".into(),
            "-q".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(spec.display().to_string());
        args
    };
    let objects_dir = ws.join("objects");
    let cases: [(&str, &Path, Vec<String>); 4] = [
        ("a cold run", &ws, workspace_args(&["--rerun-all"], &spec)),
        (
            "the objects of a changed pipeline",
            &objects_dir,
            workspace_args(&[], &changed),
        ),
        ("a warm run", &ws, workspace_args(&[], &spec)),
        (
            "a write step's file",
            dir.path(),
            vec![
                "run".into(),
                "-q".into(),
                "--no-workspace".into(),
                spec.display().to_string(),
            ],
        ),
    ];
    for (what, read_only, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let Some(out) = run_with_read_only(dir.path(), read_only, &args) else {
            eprintln!("skipped: this machine cannot mount a directory read-only for one process");
            return;
        };
        assert!(
            !out.status.success(),
            "{what}: succeeded on a read-only file system"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&read_only.display().to_string()),
            "{what}: the error names no path under it: {err}"
        );
        assert!(err.to_lowercase().contains("read-only"), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        // Nothing stored is lost or damaged.
        assert_eq!(verify_all_objects(&ws), objects, "{what}");
        integrity_check(&ws);
        // A run that could record itself but not its objects is recorded
        // as failed, with the error.
        let runs = Workspace::open(&ws).unwrap().runs().runs(None).unwrap();
        let (first, later) = runs.split_last().unwrap();
        assert_eq!(first.status, RunStatus::Succeeded, "{what}");
        assert!(
            later.iter().all(|r| r.status == RunStatus::Failed),
            "{what}: {later:?}"
        );
    }
    // A read-only workspace can still be browsed: its runs listed and shown.
    let first = newest_run(&ws);
    let ws_arg = ws.display().to_string();
    for command in [vec!["runs"], vec!["show", first.as_str()]] {
        let mut args = vec!["--workspace", ws_arg.as_str()];
        args.extend(command);
        let out = run_with_read_only(dir.path(), &ws, &args).unwrap();
        let listed = ok(out);
        assert!(listed.contains(first.as_str()), "{args:?}: {listed}");
    }

    // And with the workspace writable again, the pipeline runs as before.
    ok(fuseflow_ws(
        dir.path(),
        &ws,
        &["run", "-q", spec.to_str().unwrap()],
    ));
}

//! Sibling logistic fits: several settings trained together, one pass over
//! the data per evaluation for all of them and one Hessian for the siblings
//! near one another, each reaching the optimum it reaches alone, and a
//! sibling that fails or stops early leaving the others to finish; in a
//! pipeline, sibling steps of a sweep trained as one job, from the API and
//! through the CLI, with and without a workspace.
//!
//! Tolerance: both fits stop on the exact gradient (mean, largest component,
//! below 1e-10), so their parameters agree within that over the objective's
//! smallest curvature: 1e-7 on these well-conditioned data (curvature above
//! 0.01).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuseflow::backend::{Backend, Device, Notes};
use fuseflow::data::Rng;
use fuseflow::exec::{CacheUse, RunOptions, RunOutput};
use fuseflow::ml::logistic::{self, LogisticConfig};
use fuseflow::pipeline::TrainsTogether;
use fuseflow::pipeline::models::{TrainLogistic, model_from_table};
use fuseflow::pipeline::spec;
use fuseflow::{Pipeline, Step, StepContext, Table, Workspace};

use crate::common::assert_msg;
use crate::common::devices::backends;
use crate::common::faulty::Faulty;
use crate::devices::training_table;
use crate::models::design;
use crate::workspace_processes::{fuseflow_ws, ok};

/// `rows` rows of `d` normal features and labels of `classes` classes
/// drawn from a softmax of a fixed linear model.
fn data(rows: usize, d: usize, classes: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let cols: Vec<Vec<f64>> = (0..d)
        .map(|_| (0..rows).map(|_| rng.normal()).collect())
        .collect();
    let y = (0..rows)
        .map(|i| {
            let scores: Vec<f64> = (0..classes)
                .map(|c| {
                    (0..d)
                        .map(|j| cols[j][i] * ((j + c) % 3) as f64 * 0.7)
                        .sum()
                })
                .collect();
            let total: f64 = scores.iter().map(|s| s.exp()).sum();
            let mut u = rng.uniform() * total;
            let mut class = classes - 1;
            for (c, s) in scores.iter().enumerate() {
                u -= s.exp();
                if u <= 0.0 {
                    class = c;
                    break;
                }
            }
            class as u32
        })
        .collect();
    (cols, y)
}

fn config(l2: f64) -> LogisticConfig {
    LogisticConfig {
        l2,
        ..LogisticConfig::default()
    }
}

#[test]
fn siblings_reach_their_separate_answers_and_fail_alone() {
    for classes in [2, 3] {
        // An odd row count: the last row block is partial.
        let (cols, y) = data(3_001, 5, classes, 11);
        let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
        let x = design(&refs);
        let configs = [
            config(0.1),
            config(1.0),
            config(-1.0), // refused before training
            config(10.0),
            LogisticConfig {
                max_iterations: 1, // leaves the batch after one step
                ..config(1.0)
            },
            config(3e4), // the penalty dominates: far from the others
        ];
        let siblings: Vec<_> = configs.iter().map(|c| ("m", c.clone())).collect();
        let together = logistic::fit_siblings(&x, &y, classes, &siblings);
        assert_eq!(together.len(), configs.len());
        for (config, sibling) in configs.iter().zip(&together) {
            let alone = logistic::fit("m", &x, &y, classes, config);
            match (alone, sibling) {
                (Ok(alone), Ok(sibling)) => {
                    let what = format!("{classes} classes, l2 {}", config.l2);
                    assert_eq!(alone.converged, sibling.converged, "{what}");
                    let pairs = alone.weights.iter().zip(&sibling.weights);
                    let pairs = pairs.chain(alone.intercepts.iter().zip(&sibling.intercepts));
                    for (a, b) in pairs {
                        assert!((a - b).abs() <= 1e-7, "{what}: {a} vs {b}");
                    }
                    assert!((alone.log_loss - sibling.log_loss).abs() <= 1e-12, "{what}");
                }
                (Err(alone), Err(sibling)) => assert_eq!(alone.to_string(), sibling.to_string()),
                (alone, sibling) => panic!("alone {alone:?}, together {sibling:?}"),
            }
        }
        let err = together[2].as_ref().unwrap_err().to_string();
        assert!(err.contains("l2 must be a finite number >= 0"), "{err}");
        let stopped = together[4].as_ref().unwrap();
        assert_eq!(stopped.iterations, 1);
        assert!(!stopped.converged);
        assert!(together[1].as_ref().unwrap().iterations > 1);
    }
    // No siblings: nothing to train.
    let (cols, y) = data(10, 2, 2, 3);
    let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
    assert!(logistic::fit_siblings(&design(&refs), &y, 2, &[]).is_empty());
}

/// A spec sweeping a logistic model over `models` (variant, l2) on the
/// shipped customers, written to `dir`.
fn sweep_spec(dir: &Path, models: &[(&str, f64)]) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/customers.csv");
    let variants: Vec<String> = (models.iter())
        .map(|(name, l2)| format!("{name} = {{ l2 = {l2:?} }}"))
        .collect();
    let text = format!(
        r#"name = "siblings"

[sweep.steps.model]
{}

[[steps]]
name = "raw"
kind = "read"
path = "{}"

[[steps]]
name = "filled"
kind = "fill_null"
input = "raw"
columns = ["age", "income"]
value = 0.0

[[steps]]
name = "model"
kind = "train_logistic"
input = "filled"
label = "churned"
features = ["age", "income", "visits", "premium"]
"#,
        variants.join("\n"),
        data.display()
    );
    let path = dir.join("siblings.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load(path: &Path) -> Pipeline {
    spec::load(path).unwrap_or_else(|e| panic!("{e}"))
}

/// The note of `step` in `run` that says it trained together with others.
fn together_note<'r>(run: &'r RunOutput, step: &str) -> Option<&'r str> {
    let report = run.steps.iter().find(|s| s.name == step).unwrap();
    let mut notes = report.notes.iter().map(String::as_str);
    notes.find(|n| n.starts_with("trained together with"))
}

/// The weights and biases of the model `step` trained in `run`.
fn parameters(run: &RunOutput, step: &str) -> Vec<f64> {
    let model = model_from_table(step, run.output(step).unwrap()).unwrap();
    let layer = &model.network.layers[0];
    layer.weights.iter().chain(&layer.bias).copied().collect()
}

#[test]
fn sibling_steps_of_a_sweep_train_as_one_job_and_match_their_separate_fits() {
    let dir = tempfile::tempdir().unwrap();
    let models = [("weak", 0.1), ("mid", 1.0), ("strong", 10.0)];
    let pipeline = load(&sweep_spec(dir.path(), &models));
    let names: Vec<String> = models
        .iter()
        .map(|(m, _)| format!("model[model={m}]"))
        .collect();
    for with_workspace in [false, true] {
        let options = |fuse: bool| RunOptions {
            fuse,
            workspace: with_workspace.then(|| {
                let ws = dir.path().join(format!("ws-{fuse}"));
                Arc::new(Workspace::open(ws).unwrap())
            }),
            ..RunOptions::default()
        };
        let plan = pipeline.plan(&options(true)).unwrap().to_string();
        let set = format!(
            "sibling fits 1: {} -> trained together on cpu",
            names.join(", ")
        );
        assert!(plan.contains(&set), "{plan}");
        let plan = pipeline.plan(&options(false)).unwrap().to_string();
        assert!(!plan.contains("sibling fits"), "{plan}");

        let together = pipeline.run_with(&options(true)).unwrap();
        let alone = pipeline.run_with(&options(false)).unwrap();
        let started = |name: &str| {
            (together.steps.iter().find(|s| s.name == name))
                .unwrap()
                .started
        };
        for (i, name) in names.iter().enumerate() {
            let note = together_note(&together, name).unwrap_or_else(|| panic!("{name}: no note"));
            for (j, other) in names.iter().enumerate() {
                assert_eq!(note.contains(&format!("'{other}'")), i != j, "{note}");
            }
            assert_eq!(
                started(name),
                started(&names[0]),
                "{name} ran in the first one's job"
            );
            assert_eq!(together_note(&alone, name), None);
            let (a, b) = (parameters(&together, name), parameters(&alone, name));
            assert_eq!(a.len(), 5);
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() <= 1e-7, "{name}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn a_bad_sibling_fails_alone_and_one_more_setting_trains_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::open(dir.path().join("ws")).unwrap());
    let options = RunOptions {
        workspace: Some(Arc::clone(&ws)),
        ..RunOptions::default()
    };
    let first = [("weak", 0.1), ("bad", -1.0), ("strong", 10.0)];
    let run = load(&sweep_spec(dir.path(), &first))
        .run_with(&options)
        .unwrap();
    assert_eq!(run.failed.len(), 1);
    assert_msg(
        &run.failed[0],
        &["model[model=bad]", "l2 must be a finite number >= 0"],
    );
    let note = together_note(&run, "model[model=weak]").unwrap();
    assert!(
        note.contains("'model[model=strong]'") && !note.contains("bad"),
        "{note}"
    );
    assert!(run.output("model[model=strong]").is_ok());

    let second = [("weak", 0.1), ("bad", -1.0), ("strong", 10.0), ("mid", 1.0)];
    let run = load(&sweep_spec(dir.path(), &second))
        .run_with(&options)
        .unwrap();
    let cache = |name: &str| (run.steps.iter().find(|s| s.name == name)).map(|s| s.cache.clone());
    for cached in ["model[model=weak]", "model[model=strong]"] {
        assert!(
            matches!(cache(cached), Some(CacheUse::Hit { .. })),
            "{cached}"
        );
    }
    assert_eq!(cache("model[model=mid]"), Some(CacheUse::Miss));
    assert_eq!(
        together_note(&run, "model[model=mid]"),
        None,
        "its only sibling failed"
    );
    assert_eq!(run.failed.len(), 1);
    // One variant: its step keeps its own name.
    let fresh = load(&sweep_spec(dir.path(), &[("mid", 1.0)]))
        .run()
        .unwrap();
    assert_eq!(
        parameters(&run, "model[model=mid]"),
        parameters(&fresh, "model")
    );
}

#[test]
fn the_cli_trains_siblings_together_unless_told_not_to_fuse() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sweep_spec(dir.path(), &[("weak", 0.1), ("strong", 10.0)]);
    let spec = spec.to_str().unwrap();
    let ws = dir.path().join("ws");
    let explain = ok(fuseflow_ws(dir.path(), &ws, &["explain", spec]));
    assert!(
        explain.contains("sibling fits 1: model[model=weak], model[model=strong]"),
        "{explain}"
    );
    let run = ok(fuseflow_ws(dir.path(), &ws, &["run", spec]));
    assert!(
        run.contains("trained together with 'model[model=strong]'"),
        "{run}"
    );
    let again = ok(fuseflow_ws(dir.path(), &ws, &["run", spec]));
    assert!(!again.contains("trained together"), "all cached: {again}");
    let unfused = ok(fuseflow_ws(
        dir.path(),
        &ws,
        &["run", spec, "--no-fuse", "--rerun-all"],
    ));
    assert!(!unfused.contains("trained together"), "{unfused}");
    assert!(unfused.contains("model[model=strong]"), "{unfused}");
}

/// The weights and biases of the model table `model`.
fn table_parameters(model: &Table) -> Vec<f64> {
    let model = model_from_table("model", model).unwrap();
    let layer = &model.network.layers[0];
    layer.weights.iter().chain(&layer.bias).copied().collect()
}

#[test]
fn sibling_fits_on_every_device_match_each_steps_own_run() {
    let data = [training_table()];
    let steps: Vec<TrainLogistic> = [0.1, 1.0, 10.0]
        .map(|l2| TrainLogistic::new(["x", "z"], "y", config(l2)))
        .into();
    let names = ["weak", "mid", "strong"];
    let failing: Arc<dyn Backend> = Faulty::failing_training(fuseflow::DeviceFailure::Launch);
    let devices = backends().into_iter().map(|b| (b, false));
    for (backend, fails) in devices.chain([(failing, true)]) {
        let device = Device::new(backend);
        let notes: Vec<Notes> = names.iter().map(|_| Notes::default()).collect();
        let contexts = (names.iter().zip(&notes))
            .map(|(name, notes)| StepContext::new(name).on(&device, notes));
        let together: Vec<(StepContext<'_>, &dyn TrainsTogether)> = contexts
            .zip(&steps)
            .map(|(ctx, step)| (ctx, step as &dyn TrainsTogether))
            .collect();
        let trained = steps[0].run_together(&together, &data);
        assert_eq!(trained.len(), steps.len());
        for ((name, step), trained) in names.iter().zip(&steps).zip(trained) {
            let own_notes = Notes::default();
            let alone = step
                .run(StepContext::new(name).on(&device, &own_notes), &data)
                .unwrap();
            let (a, b) = (
                table_parameters(&trained.unwrap()[0]),
                table_parameters(&alone[0]),
            );
            // On the CPU the fits share passes (1e-7, as above); elsewhere each
            // runs as it would alone.
            let tolerance = if device.is_cpu() { 1e-7 } else { 0.0 };
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() <= tolerance, "{device}, {name}: {a} vs {b}");
            }
        }
        if fails {
            for notes in &notes {
                let notes = notes.take();
                assert!(
                    notes.iter().any(|n| n.contains("trained on the CPU after")),
                    "{notes:?}"
                );
            }
        }
    }
}

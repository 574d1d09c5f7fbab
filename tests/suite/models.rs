//! Model training, artifacts, lineage-aware scoring and evaluation.
//!
//! Covers the trainers (`ml::linear`, `ml::logistic`) against closed forms and
//! independently computed optimality conditions, the training steps' input
//! checks, the Arrow model artifact (save/load and corruption), scoring raw
//! rows through the recorded feature lineage, scoring input mismatches, the
//! `score` and `evaluate` steps, and spec files that train and evaluate.
//!
//! Tolerances are stated at each assertion.
#![allow(clippy::needless_range_loop)]

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, ListBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Schema};

use crate::common::{assert_msg, expect_err, f64_values, str_values};
use fuseflow::data::Rng;
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::datasets;
use fuseflow::ir::col;
use fuseflow::ml::design::Design;
use fuseflow::ml::logistic::{LogisticConfig, LogisticFit};
use fuseflow::ml::mlp::{Activation, MlpConfig};
use fuseflow::ml::model::{CHECKSUM_KEY, FORMAT_VERSION, MODEL_KEY, Model};
use fuseflow::ml::score::Scorer;
use fuseflow::ml::{linear, logistic};
use fuseflow::pipeline::io::MemorySource;
use fuseflow::pipeline::metrics::Evaluate;
use fuseflow::pipeline::models::{
    Score, Task, TrainLinear, TrainLogistic, TrainMlp, model_from_table,
};
use fuseflow::pipeline::prep::{
    Derive, Encode, EncodeMethod, FillNull, FillValue, FitCategories, FitStats, Scale, ScaleMethod,
    Split, UnknownCategory,
};
use fuseflow::pipeline::spec;
use fuseflow::{Error, Pipeline, Step, StepContext, Table};

// ------------------------------------------------------------------ helpers

/// A design matrix from columns (named x0, x1, ...).
pub(crate) fn design(cols: &[&[f64]]) -> Design {
    Design {
        rows: cols[0].len(),
        features: (0..cols.len()).map(|j| format!("x{j}")).collect(),
        x: cols.concat(),
    }
}

fn f64_col(v: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

fn table_of(columns: Vec<(&str, ArrayRef)>) -> Table {
    Table::from_batch(RecordBatch::try_from_iter(columns).expect("valid batch"))
}

/// Run a step directly (as the scheduler would) under the name "train".
fn run_step(step: &dyn Step, inputs: &[Table]) -> fuseflow::Result<Vec<Table>> {
    step.run(StepContext::new("train"), inputs)
}

/// Train with a training step and read the model back from its output table.
pub(crate) fn train(step: &dyn Step, data: Table) -> fuseflow::Result<Model> {
    let out = run_step(step, &[data])?;
    model_from_table("train", &out[0])
}

/// A column of a table as f64 (any numeric type, cast), nulls as NaN.
fn as_f64(t: &Table, name: &str) -> Vec<f64> {
    let batch = t.concat().unwrap();
    let c = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", batch.schema()));
    let c = arrow_cast::cast(c, &DataType::Float64).unwrap();
    c.as_primitive::<Float64Type>()
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect()
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

pub(crate) fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual:e}, expected {expected:e} (|diff| = {:e} > {tol:e})",
        (actual - expected).abs()
    );
}

/// The metrics table of an evaluate step as a map.
fn metrics_map(t: &Table) -> HashMap<String, f64> {
    let b = t.concat().unwrap();
    let names = b.column(0).as_string::<i32>();
    let values = b.column(1).as_primitive::<Float64Type>();
    (0..b.num_rows())
        .map(|i| (names.value(i).to_string(), values.value(i)))
        .collect()
}

// ------------------------------------------------------ 1. linear regression

#[test]
fn linear_fit_recovers_exact_coefficients_on_noiseless_data() {
    let mut rng = Rng::new(1);
    let n = 500;
    let a: Vec<f64> = (0..n).map(|_| 1.0 + 3.0 * rng.normal()).collect();
    let b: Vec<f64> = (0..n).map(|_| rng.uniform() * 10.0 - 2.0).collect();
    let y: Vec<f64> = a.iter().zip(&b).map(|(a, b)| 3.0 + 2.0 * a - b).collect();

    let fit = linear::fit("t", &design(&[&a, &b]), &y, 0.0).unwrap();
    // Tolerance: 1e-9 absolute on every coefficient.
    assert_close(fit.weights[0], 2.0, 1e-9, "weight of a");
    assert_close(fit.weights[1], -1.0, 1e-9, "weight of b");
    assert_close(fit.intercept, 3.0, 1e-9, "intercept");
    assert!(fit.mse <= 1e-18, "mse on noiseless data: {}", fit.mse);

    // The same through the TrainLinear step, which records the model.
    let data = table_of(vec![
        ("a", f64_col(&a)),
        ("b", f64_col(&b)),
        ("y", f64_col(&y)),
    ]);
    let model = train(&TrainLinear::new(["a", "b"], "y", 0.0), data.clone()).unwrap();
    let layer = &model.network.layers[0];
    assert_eq!((layer.inputs, layer.outputs), (2, 1));
    assert_close(layer.weights[0], 2.0, 1e-9, "step weight of a");
    assert_close(layer.weights[1], -1.0, 1e-9, "step weight of b");
    assert_close(layer.bias[0], 3.0, 1e-9, "step intercept");
    assert_eq!(model.info.kind, "linear_regression");
    assert_eq!(model.info.label, "y");
    assert_eq!(model.info.head, "identity");
    assert!(model.info.classes.is_empty());
    let names: Vec<&str> = model
        .info
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    // Raw source columns: the expression is the column itself.
    assert_eq!(model.info.features[0].expr, "a");
    assert_eq!(model.info.params["l2"], "0");
    assert_eq!(model.info.training["rows"], n as f64);
    assert!(model.info.training["mse"] <= 1e-18);
    assert_eq!(model.output_names(), ["prediction"]);

    // No feature list: every numeric column but the label, in schema order.
    let auto = train(&TrainLinear::new(Vec::<String>::new(), "y", 0.0), data).unwrap();
    let names: Vec<&str> = auto.info.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(auto.network, model.network);
}

#[test]
fn linear_fit_three_points_by_hand() {
    // x = 0, 1, 2; y = 1, 3, 2. mean x = 1, mean y = 2, Sxy = 1, Sxx = 2:
    // slope 0.5, intercept 1.5, fitted 1.5, 2, 2.5, residuals -0.5, 1, -0.5,
    // mse = 1.5 / 3 = 0.5.
    let fit = linear::fit("t", &design(&[&[0.0, 1.0, 2.0]]), &[1.0, 3.0, 2.0], 0.0).unwrap();
    assert_close(fit.weights[0], 0.5, 1e-12, "slope");
    assert_close(fit.intercept, 1.5, 1e-12, "intercept");
    assert_close(fit.mse, 0.5, 1e-12, "mse");

    // Ridge on the same points: w = Sxy / (Sxx + l2) = 1 / (2 + 2) = 0.25,
    // b = 2 - 0.25 * 1 = 1.75 (the intercept is not penalized).
    let fit = linear::fit("t", &design(&[&[0.0, 1.0, 2.0]]), &[1.0, 3.0, 2.0], 2.0).unwrap();
    assert_close(fit.weights[0], 0.25, 1e-12, "ridge slope");
    assert_close(fit.intercept, 1.75, 1e-12, "ridge intercept");
}

#[test]
fn ridge_matches_the_closed_form_for_two_features() {
    let mut rng = Rng::new(2);
    let n = 300;
    let a: Vec<f64> = (0..n).map(|_| 2.0 + rng.normal()).collect();
    // Correlated with a, so the off-diagonal term matters.
    let b: Vec<f64> = a.iter().map(|a| 0.5 * a + rng.normal()).collect();
    let y: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(a, b)| 1.0 + 4.0 * a - 3.0 * b + 0.5 * rng.normal())
        .collect();
    let l2 = 37.5;

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ma, mb, my) = (mean(&a), mean(&b), mean(&y));
    let s = |u: &[f64], mu: f64, v: &[f64], mv: f64| -> f64 {
        u.iter().zip(v).map(|(u, v)| (u - mu) * (v - mv)).sum()
    };
    let (saa, sab, sbb) = (s(&a, ma, &a, ma), s(&a, ma, &b, mb), s(&b, mb, &b, mb));
    let (say, sby) = (s(&a, ma, &y, my), s(&b, mb, &y, my));
    // (Xc'Xc + l2 I) w = Xc'yc, solved by Cramer's rule.
    let (m11, m12, m22) = (saa + l2, sab, sbb + l2);
    let det = m11 * m22 - m12 * m12;
    let wa = (m22 * say - m12 * sby) / det;
    let wb = (m11 * sby - m12 * say) / det;
    let intercept = my - wa * ma - wb * mb;

    let fit = linear::fit("t", &design(&[&a, &b]), &y, l2).unwrap();
    // Tolerance: 1e-9 absolute (coefficients are O(1)).
    assert_close(fit.weights[0], wa, 1e-9, "ridge weight a");
    assert_close(fit.weights[1], wb, 1e-9, "ridge weight b");
    assert_close(fit.intercept, intercept, 1e-9, "ridge intercept");

    // The penalty shrinks the weights relative to least squares.
    let ols = linear::fit("t", &design(&[&a, &b]), &y, 0.0).unwrap();
    let norm = |w: &[f64]| w.iter().map(|v| v * v).sum::<f64>();
    assert!(norm(&fit.weights) < norm(&ols.weights));
    // The reported mse is the training mse of the ridge fit.
    let mse = (0..n)
        .map(|i| (y[i] - intercept - wa * a[i] - wb * b[i]).powi(2))
        .sum::<f64>()
        / n as f64;
    assert_close(fit.mse, mse, 1e-9, "ridge mse");
}

#[test]
fn collinear_features_need_l2() {
    let mut rng = Rng::new(3);
    let n = 200;
    let a: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let a2: Vec<f64> = a.iter().map(|v| 2.0 * v).collect();
    let y: Vec<f64> = a
        .iter()
        .map(|v| 1.0 + 3.0 * v + 0.1 * rng.normal())
        .collect();

    let err = expect_err(
        linear::fit("t", &design(&[&a, &a2]), &y, 0.0),
        "collinear, l2 = 0",
    );
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
    assert_msg(&err, &["linearly dependent", "l2 > 0"]);

    // Through the step: the error names the step.
    let data = table_of(vec![
        ("a", f64_col(&a)),
        ("a2", f64_col(&a2)),
        ("y", f64_col(&y)),
    ]);
    let err = expect_err(
        train(&TrainLinear::new(["a", "a2"], "y", 0.0), data.clone()),
        "collinear step",
    );
    assert_msg(&err, &["'train'", "l2"]);

    // A constant feature is as degenerate as a duplicate one.
    let constant = vec![4.0; n];
    let err = expect_err(
        linear::fit("t", &design(&[&a, &constant]), &y, 0.0),
        "constant feature",
    );
    assert_msg(&err, &["l2"]);

    // With l2 > 0 the minimum-norm direction is taken: w ∝ (1, 2) with
    // w = t (1, 2), (5 Saa + l2) t = Say.
    let l2 = 3.0;
    let fit = linear::fit("t", &design(&[&a, &a2]), &y, l2).unwrap();
    let (ma, my) = (
        a.iter().sum::<f64>() / n as f64,
        y.iter().sum::<f64>() / n as f64,
    );
    let saa: f64 = a.iter().map(|v| (v - ma).powi(2)).sum();
    let say: f64 = a.iter().zip(&y).map(|(a, y)| (a - ma) * (y - my)).sum();
    let t = say / (5.0 * saa + l2);
    assert_close(fit.weights[0], t, 1e-9, "collinear ridge w1");
    assert_close(fit.weights[1], 2.0 * t, 1e-9, "collinear ridge w2");
    let model = train(&TrainLinear::new(["a", "a2"], "y", l2), data).unwrap();
    assert_close(model.network.layers[0].weights[1], 2.0 * t, 1e-9, "step w2");

    // Invalid penalties are rejected up front.
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let err = expect_err(linear::fit("t", &design(&[&a]), &y, bad), "bad l2");
        assert_msg(&err, &["l2 must be a finite number >= 0"]);
    }
}

// ---------------------------------------------------- 2. logistic regression

/// `n` rows of standard-normal features drawn with `seed`, labels drawn from
/// `sigmoid(b + w . x)`.
pub(crate) fn logistic_data(n: usize, w: &[f64], b: f64, seed: u64) -> (Design, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let d = w.len();
    let mut cols = vec![Vec::with_capacity(n); d];
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let mut z = b;
        for j in 0..d {
            let x = rng.normal();
            cols[j].push(x);
            z += w[j] * x;
        }
        y.push(u32::from(rng.uniform() < sigmoid(z)));
    }
    let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
    (design(&refs), y)
}

/// Gradient of `sum_i logloss_i + l2/2 |w|^2` (weights, then intercept),
/// computed independently of the trainer.
fn binary_objective_gradient(x: &Design, y: &[u32], fit: &LogisticFit, l2: f64) -> Vec<f64> {
    let d = x.width();
    let mut g = vec![0.0; d + 1];
    for i in 0..x.rows {
        let z = fit.intercepts[0] + (0..d).map(|j| fit.weights[j] * x.column(j)[i]).sum::<f64>();
        let r = sigmoid(z) - f64::from(y[i]);
        for j in 0..d {
            g[j] += r * x.column(j)[i];
        }
        g[d] += r;
    }
    for j in 0..d {
        g[j] += l2 * fit.weights[j];
    }
    g
}

pub(crate) fn unpenalized() -> LogisticConfig {
    LogisticConfig {
        l2: 0.0,
        ..LogisticConfig::default()
    }
}

#[test]
fn logistic_fit_recovers_known_weights() {
    let truth = [1.5, -2.0, 0.5];
    let bias = -0.3;
    let (x, y) = logistic_data(20_000, &truth, bias, 10);
    let fit = logistic::fit("t", &x, &y, 2, &unpenalized()).unwrap();
    assert_eq!(fit.classes, 2);
    assert_eq!(fit.outputs(), 1);
    // Tolerance 0.1: about five standard errors at 20k rows.
    for (j, (&w, &t)) in fit.weights.iter().zip(&truth).enumerate() {
        assert_close(w, t, 0.1, &format!("weight {j}"));
    }
    assert_close(fit.intercepts[0], bias, 0.1, "intercept");

    // Newton converges: the mean gradient is tiny at the solution.
    assert!(fit.converged, "{fit:?}");
    assert!(
        fit.gradient_norm <= 1e-8,
        "gradient norm {}",
        fit.gradient_norm
    );
    assert!(fit.iterations >= 1 && fit.iterations < 50, "{fit:?}");
    let g = binary_objective_gradient(&x, &y, &fit, 0.0);
    let worst = g.iter().fold(0.0f64, |m, v| m.max(v.abs())) / x.rows as f64;
    assert!(worst <= 1e-8, "independent gradient check: {worst:e}");

    // The reported training log-loss is the mean log-loss of the fit.
    let ll: f64 = (0..x.rows)
        .map(|i| {
            let z =
                fit.intercepts[0] + (0..3).map(|j| fit.weights[j] * x.column(j)[i]).sum::<f64>();
            let p = sigmoid(z);
            if y[i] == 1 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / x.rows as f64;
    assert_close(fit.log_loss, ll, 1e-12, "training log-loss");
}

#[test]
fn logistic_l2_optimum_has_zero_objective_gradient() {
    let (x, y) = logistic_data(20_000, &[1.5, -2.0, 0.5], -0.3, 11);
    let l2 = 2_000.0;
    let config = LogisticConfig {
        l2,
        ..LogisticConfig::default()
    };
    let fit = logistic::fit("t", &x, &y, 2, &config).unwrap();
    assert!(fit.converged, "{fit:?}");
    let g = binary_objective_gradient(&x, &y, &fit, l2);
    // Tolerance: mean gradient component <= 1e-8 (the trainer stops at 1e-10).
    let worst = g.iter().fold(0.0f64, |m, v| m.max(v.abs())) / x.rows as f64;
    assert!(worst <= 1e-8, "gradient of the penalized objective: {g:?}");

    // The penalty shrinks every weight towards zero compared with l2 = 0.
    let free = logistic::fit("t", &x, &y, 2, &unpenalized()).unwrap();
    for j in 0..3 {
        assert!(
            fit.weights[j].abs() < free.weights[j].abs() - 0.01,
            "weight {j}: {} vs unpenalized {}",
            fit.weights[j],
            free.weights[j]
        );
    }
    // Not the l2 = 0 optimum: its objective gradient is clearly non-zero.
    let g_wrong = binary_objective_gradient(&x, &y, &free, l2);
    assert!(g_wrong.iter().any(|v| v.abs() / x.rows as f64 > 1e-3));
}

#[test]
fn collinear_logistic_features_with_l2_split_the_weight() {
    // With a penalty the optimum is unique: a duplicated feature shares the
    // weight equally, and the pair predicts like the single feature would.
    let (x, y) = logistic_data(5_000, &[1.0, -1.0], 0.2, 50);
    let a = x.column(0).to_vec();
    let b = x.column(1).to_vec();
    let config = LogisticConfig::default();
    let fit = logistic::fit("t", &design(&[&a, &b, &a]), &y, 2, &config).unwrap();
    assert!(fit.converged, "{fit:?}");
    // Tolerance 1e-9 on the equal split.
    assert_close(fit.weights[0], fit.weights[2], 1e-9, "shared weight");
    let g = binary_objective_gradient(&design(&[&a, &b, &a]), &y, &fit, config.l2);
    assert!(g.iter().all(|v| v.abs() / 5_000.0 <= 1e-8), "{g:?}");
}

/// Three Gaussian blobs (sd 1) centred at (0, 0), (5, 0) and (0, 5).
fn blobs(n_per_class: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let centres = [(0.0, 0.0), (5.0, 0.0), (0.0, 5.0)];
    let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..3 * n_per_class {
        let k = i % 3;
        a.push(centres[k].0 + rng.normal());
        b.push(centres[k].1 + rng.normal());
        y.push(k as u32);
    }
    (a, b, y)
}

#[test]
fn multinomial_logistic_separates_blobs() {
    let (a, b, y) = blobs(2_000, 12);
    let x = design(&[&a, &b]);
    let fit = logistic::fit("t", &x, &y, 3, &LogisticConfig::default()).unwrap();
    assert_eq!(fit.outputs(), 3);
    assert_eq!(fit.weights.len(), 6);
    assert!(fit.converged, "{fit:?}");
    // Intercepts are reported centred.
    assert!(fit.intercepts.iter().sum::<f64>().abs() <= 1e-9);
    let correct = (0..x.rows)
        .filter(|&i| {
            let z: Vec<f64> = (0..3)
                .map(|k| {
                    fit.intercepts[k] + fit.weights[2 * k] * a[i] + fit.weights[2 * k + 1] * b[i]
                })
                .collect();
            let best = (0..3).fold(0, |m, k| if z[k] > z[m] { k } else { m });
            best == y[i] as usize
        })
        .count();
    let accuracy = correct as f64 / x.rows as f64;
    // Bayes accuracy here is about 0.99; require 0.95.
    assert!(accuracy > 0.95, "accuracy {accuracy}");
}

/// x < 0 is always class 0, x > 0 always class 1.
pub(crate) fn separable() -> (Design, Vec<u32>) {
    let xs: Vec<f64> = (1..=50)
        .flat_map(|i| [-(i as f64) / 10.0, i as f64 / 10.0])
        .collect();
    let y: Vec<u32> = xs.iter().map(|&v| u32::from(v > 0.0)).collect();
    (design(&[&xs]), y)
}

#[test]
fn perfectly_separable_data_with_l2_has_a_unique_optimum() {
    let (x, y) = separable();
    let l2 = 1.0;
    let fit = logistic::fit("t", &x, &y, 2, &LogisticConfig::default()).unwrap();
    assert!(fit.converged && fit.weights[0] > 0.0, "{fit:?}");
    // Symmetric data: the intercept is 0 (tolerance 1e-9).
    assert_close(fit.intercepts[0], 0.0, 1e-9, "intercept");
    let g = binary_objective_gradient(&x, &y, &fit, l2);
    assert!(g.iter().all(|v| v.abs() / x.rows as f64 <= 1e-8), "{g:?}");
}

#[test]
fn logistic_results_do_not_depend_on_the_thread_count() {
    let (x, y) = logistic_data(20_000, &[1.0, -1.0, 0.25], 0.1, 13);
    let (a, b, k) = blobs(1_500, 14);
    let xk = design(&[&a, &b]);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                (
                    logistic::fit("t", &x, &y, 2, &LogisticConfig::default()).unwrap(),
                    logistic::fit("t", &xk, &k, 3, &LogisticConfig::default()).unwrap(),
                    linear::fit("t", &x, x.column(0), 0.5).unwrap(),
                )
            })
    };
    let (one, two) = (run(1), run(2));
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one.0.weights), bits(&two.0.weights));
    assert_eq!(bits(&one.0.intercepts), bits(&two.0.intercepts));
    assert_eq!(one.0.log_loss.to_bits(), two.0.log_loss.to_bits());
    assert_eq!(one.0.iterations, two.0.iterations);
    assert_eq!(bits(&one.1.weights), bits(&two.1.weights));
    assert_eq!(bits(&one.1.intercepts), bits(&two.1.intercepts));
    assert_eq!(bits(&one.2.weights), bits(&two.2.weights));
    assert_eq!(one.2.intercept.to_bits(), two.2.intercept.to_bits());
}

// ------------------------------------------------ 3. training step rejects

fn small_training_table() -> (Vec<f64>, Vec<bool>) {
    let x: Vec<f64> = (0..10).map(|i| i as f64).collect();
    let y: Vec<bool> = (0..10).map(|i| i % 3 == 0).collect();
    (x, y)
}

#[test]
fn training_rejects_null_labels_naming_column_and_count() {
    let (x, _) = small_training_table();
    let labels: Vec<Option<bool>> = (0..10)
        .map(|i| (i % 4 != 1).then_some(i % 2 == 0))
        .collect(); // rows 1, 5, 9 are null
    let data = table_of(vec![
        ("x", f64_col(&x)),
        ("label", Arc::new(BooleanArray::from(labels))),
    ]);
    let err = expect_err(
        train(
            &TrainLogistic::new(["x"], "label", LogisticConfig::default()),
            data.clone(),
        ),
        "null class labels",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "label"),
        "{err:?}"
    );
    assert_msg(&err, &["'train'", "'label'", "3 of 10", "null"]);

    let err = expect_err(
        train(
            &TrainMlp::new(["x"], "label", Task::Classification, MlpConfig::default()),
            data,
        ),
        "null labels, mlp",
    );
    assert_msg(&err, &["'label'", "3 of 10"]);

    // A regression label with nulls.
    let target: Vec<Option<f64>> = (0..10).map(|i| (i != 4).then_some(i as f64)).collect();
    let data = table_of(vec![
        ("x", f64_col(&x)),
        ("target", Arc::new(Float64Array::from(target))),
    ]);
    let err = expect_err(
        train(&TrainLinear::new(["x"], "target", 0.0), data),
        "null regression target",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "target"),
        "{err:?}"
    );
    assert_msg(&err, &["'target'", "1 of 10", "null", "label"]);
}

#[test]
fn training_rejects_a_single_class() {
    let (x, _) = small_training_table();
    let data = table_of(vec![
        ("x", f64_col(&x)),
        ("label", Arc::new(BooleanArray::from(vec![true; 10]))),
    ]);
    let err = expect_err(
        train(
            &TrainLogistic::new(["x"], "label", LogisticConfig::default()),
            data,
        ),
        "one class",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "label"),
        "{err:?}"
    );
    assert_msg(&err, &["two classes", "'true'"]);

    // Also with utf8 labels.
    let data = table_of(vec![
        ("x", f64_col(&x)),
        ("label", Arc::new(StringArray::from(vec!["only"; 10]))),
    ]);
    let err = expect_err(
        train(
            &TrainLogistic::new(["x"], "label", LogisticConfig::default()),
            data,
        ),
        "one utf8 class",
    );
    assert_msg(&err, &["'only'"]);
}

#[test]
fn training_rejects_non_finite_and_null_features() {
    let (_, y) = small_training_table();
    let mut x: Vec<f64> = (0..10).map(|i| i as f64).collect();
    x[2] = f64::NAN;
    x[5] = f64::INFINITY;
    x[7] = f64::NEG_INFINITY;
    let good: Vec<f64> = (0..10).map(|i| (i * i) as f64).collect();
    let data = table_of(vec![
        ("good", f64_col(&good)),
        ("bad", f64_col(&x)),
        ("label", Arc::new(BooleanArray::from(y.clone()))),
        ("target", f64_col(&good)),
    ]);
    for step in [
        Box::new(TrainLogistic::new(
            ["good", "bad"],
            "label",
            LogisticConfig::default(),
        )) as Box<dyn Step>,
        Box::new(TrainLinear::new(["good", "bad"], "target", 1.0)),
        Box::new(TrainMlp::new(
            ["good", "bad"],
            "label",
            Task::Classification,
            MlpConfig::default(),
        )),
    ] {
        let err = expect_err(train(step.as_ref(), data.clone()), step.kind());
        assert!(
            matches!(&err, Error::Schema { column, .. } if column == "bad"),
            "{err:?}"
        );
        assert_msg(&err, &["'bad'", "3 of 10", "NaN or infinite"]);
    }

    // Null features.
    let nullable: Vec<Option<f64>> = (0..10).map(|i| (i % 5 != 0).then_some(i as f64)).collect();
    let data = table_of(vec![
        ("n", Arc::new(Float64Array::from(nullable))),
        ("label", Arc::new(BooleanArray::from(y))),
    ]);
    let err = expect_err(
        train(
            &TrainLogistic::new(["n"], "label", LogisticConfig::default()),
            data,
        ),
        "null feature",
    );
    assert_msg(&err, &["'n'", "2 of 10", "null"]);
}

#[test]
fn training_rejects_non_numeric_features_missing_columns_and_empty_tables() {
    let (x, y) = small_training_table();
    let words: Vec<&str> = (0..10)
        .map(|i| if i % 2 == 0 { "a" } else { "b" })
        .collect();
    let data = table_of(vec![
        ("x", f64_col(&x)),
        ("word", Arc::new(StringArray::from(words))),
        ("label", Arc::new(BooleanArray::from(y))),
    ]);
    let err = expect_err(
        train(
            &TrainLogistic::new(["x", "word"], "label", LogisticConfig::default()),
            data.clone(),
        ),
        "utf8 feature",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "word"),
        "{err:?}"
    );
    assert_msg(&err, &["'word'", "numeric or bool", "Utf8", "encode"]);

    // Without a feature list, string columns are skipped rather than rejected.
    let model = train(
        &TrainLogistic::new(Vec::<String>::new(), "label", LogisticConfig::default()),
        data.clone(),
    )
    .unwrap();
    assert_eq!(model.info.features.len(), 1);
    assert_eq!(model.info.features[0].name, "x");

    // Missing feature and label columns.
    let err = expect_err(
        train(
            &TrainLogistic::new(["nope"], "label", LogisticConfig::default()),
            data.clone(),
        ),
        "missing feature",
    );
    assert_msg(&err, &["'nope'", "no such column"]);
    let err = expect_err(
        train(&TrainLinear::new(["x"], "missing_label", 0.0), data.clone()),
        "missing label",
    );
    assert_msg(&err, &["'missing_label'", "no such column"]);

    // An empty table (zero rows, right schema).
    let empty = Table::from_batch(data.concat().unwrap().slice(0, 0));
    for step in [
        Box::new(TrainLogistic::new(
            ["x"],
            "label",
            LogisticConfig::default(),
        )) as Box<dyn Step>,
        Box::new(TrainLinear::new(["x"], "x", 0.0)),
        Box::new(TrainMlp::new(
            ["x"],
            "label",
            Task::Classification,
            MlpConfig::default(),
        )),
    ] {
        let err = expect_err(train(step.as_ref(), empty.clone()), step.kind());
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
        assert_msg(&err, &["'train'", "no rows"]);
    }
    // No chunks at all.
    let no_batches = Table::empty(data.schema().clone());
    let err = expect_err(
        train(
            &TrainLogistic::new(["x"], "label", LogisticConfig::default()),
            no_batches,
        ),
        "no batches",
    );
    assert_msg(&err, &["no rows"]);
}

// --------------------------------------------------------- 4. model artifacts

/// A small binary logistic model on two raw columns.
pub(crate) fn small_logistic_model() -> Model {
    let (x, y) = logistic_data(2_000, &[1.0, -0.5], 0.2, 20);
    let data = table_of(vec![
        ("a", f64_col(x.column(0))),
        ("b", f64_col(x.column(1))),
        (
            "label",
            Arc::new(BooleanArray::from_iter(y.iter().map(|&v| Some(v == 1)))),
        ),
    ]);
    train(
        &TrainLogistic::new(["a", "b"], "label", LogisticConfig::default()),
        data,
    )
    .unwrap()
}

#[test]
fn model_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    // A logistic model with lineage (from the churn pipeline), a softmax model
    // and an MLP: every field survives the round trip.
    let (churn, _) = churn_run(8_000, logistic_trainer());
    let (a, b, k) = blobs(300, 21);
    let names = ["c0", "c1", "c2"];
    let labels: Vec<&str> = k.iter().map(|&i| names[i as usize]).collect();
    let blob_table = table_of(vec![
        ("a", f64_col(&a)),
        ("b", f64_col(&b)),
        ("label", Arc::new(StringArray::from(labels))),
    ]);
    let softmax = train(
        &TrainLogistic::new(["a", "b"], "label", LogisticConfig::default()),
        blob_table.clone(),
    )
    .unwrap();
    let mlp = train(
        &TrainMlp::new(
            ["a", "b"],
            "label",
            Task::Classification,
            MlpConfig {
                hidden: vec![4, 3],
                activation: Activation::Tanh,
                epochs: 2,
                ..MlpConfig::default()
            },
        ),
        blob_table,
    )
    .unwrap();
    for (name, model) in [("churn", churn), ("softmax", softmax), ("mlp", mlp)] {
        let path = dir.path().join(format!("{name}.model.arrow"));
        model.save(&path).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert_eq!(loaded.info, model.info, "{name}: description");
        assert_eq!(loaded.network, model.network, "{name}: network");
        // Bit-exact weights.
        for (l, m) in loaded.network.layers.iter().zip(&model.network.layers) {
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&l.weights), bits(&m.weights), "{name}");
            assert_eq!(bits(&l.bias), bits(&m.bias), "{name}");
        }
        assert_eq!(loaded.output_names(), model.output_names());
        // Only the model file is left in the directory (no temporary files).
        assert!(path.exists());
    }
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `batch` with its schema metadata replaced.
fn with_metadata(batch: &RecordBatch, metadata: HashMap<String, String>) -> RecordBatch {
    let schema = Schema::new_with_metadata(batch.schema().fields().clone(), metadata);
    RecordBatch::try_new(Arc::new(schema), batch.columns().to_vec()).unwrap()
}

fn f64_lists(rows: &[Vec<f64>]) -> ArrayRef {
    let mut b = ListBuilder::new(Float64Builder::new());
    for r in rows {
        b.values().append_slice(r);
        b.append(true);
    }
    Arc::new(b.finish())
}

#[test]
fn model_from_batch_rejects_corrupt_batches() {
    let model = small_logistic_model();
    let batch = model.to_batch().unwrap();
    // Sanity: the untouched batch reads back.
    let back = Model::from_batch(&batch).unwrap();
    assert_eq!(back.info, model.info);

    // No metadata.
    let err = expect_err(
        Model::from_batch(&with_metadata(&batch, HashMap::new())),
        "no metadata",
    );
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
    assert_msg(&err, &["not a valid fuseflow model", MODEL_KEY]);

    // A future format version.
    let text = batch.schema().metadata()[MODEL_KEY].clone();
    let needle = format!("format_version = {FORMAT_VERSION}");
    assert!(text.contains(&needle), "{text}");
    let edited = text.replace(&needle, "format_version = 99");
    let err = expect_err(
        Model::from_batch(&with_metadata(
            &batch,
            HashMap::from([(MODEL_KEY.into(), edited)]),
        )),
        "format version",
    );
    assert_msg(
        &err,
        &["format version 99", &format!("version {FORMAT_VERSION}")],
    );

    // Unparsable description.
    let err = expect_err(
        Model::from_batch(&with_metadata(
            &batch,
            HashMap::from([(MODEL_KEY.into(), "this is = = not toml".into())]),
        )),
        "bad toml",
    );
    assert_msg(&err, &["not a valid fuseflow model"]);

    // Unknown head.
    let edited = text.replace("head = \"sigmoid\"", "head = \"softplus\"");
    let err = expect_err(
        Model::from_batch(&with_metadata(
            &batch,
            HashMap::from([(MODEL_KEY.into(), edited)]),
        )),
        "head",
    );
    assert_msg(&err, &["unknown head 'softplus'"]);

    // Weights inconsistent with the layer shape: one weight dropped.
    let layer = &model.network.layers[0];
    let mut columns = batch.columns().to_vec();
    let index = batch.schema().index_of("weights").unwrap();
    columns[index] = f64_lists(&[layer.weights[..layer.weights.len() - 1].to_vec()]);
    let bad = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let err = expect_err(Model::from_batch(&bad), "short weights");
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
    assert_msg(
        &err,
        &["layer 0 has 1 weights and 1 biases for 2 inputs and 1 outputs"],
    );

    // Too many biases.
    let mut columns = batch.columns().to_vec();
    let index = batch.schema().index_of("bias").unwrap();
    columns[index] = f64_lists(&[vec![0.0, 1.0]]);
    let bad = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let err = expect_err(Model::from_batch(&bad), "long bias");
    assert_msg(&err, &["layer 0 has 2 weights and 2 biases"]);

    // A missing column.
    let bad = batch.project(&[0, 1, 2, 3]).unwrap();
    let err = expect_err(Model::from_batch(&bad), "no bias column");
    assert_msg(&err, &["no 'bias' column"]);

    // Features and first-layer width disagree.
    let mut fewer = model.clone();
    fewer.info.features.pop();
    let err = expect_err(
        Model::from_batch(&fewer.to_batch().unwrap()),
        "feature count",
    );
    assert_msg(&err, &["1 features but the first layer has 2 inputs"]);
}

/// A saved model carries a checksum of its description and weights: a
/// changed weight or label is refused as damage, not scored with.
#[test]
fn a_model_whose_weights_or_description_changed_fails_its_checksum() {
    let batch = small_logistic_model().to_batch().unwrap();
    assert!(Model::from_batch(&batch).is_ok());
    assert!(batch.schema().metadata().contains_key(CHECKSUM_KEY));

    let mut weights = ListBuilder::new(Float64Builder::new());
    let weights_column = batch.column_by_name("weights").unwrap().as_list::<i32>();
    for i in 0..weights_column.len() {
        let values = weights_column.value(i);
        let mut values = values.as_primitive::<Float64Type>().values().to_vec();
        values[0] += 1e-9;
        weights.values().append_slice(&values);
        weights.append(true);
    }
    let index = batch.schema().index_of("weights").unwrap();
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(weights.finish());
    let changed = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let err = expect_err(Model::from_batch(&changed), "a changed weight");
    assert_msg(&err, &["checksum", "damaged"]);

    let mut metadata = batch.schema().metadata().clone();
    let text = metadata[MODEL_KEY].replace("label = \"label\"", "label = \"other\"");
    assert_ne!(text, metadata[MODEL_KEY]);
    metadata.insert(MODEL_KEY.into(), text);
    let err = expect_err(
        Model::from_batch(&with_metadata(&batch, metadata)),
        "a changed label",
    );
    assert_msg(&err, &["checksum"]);
}

#[test]
fn model_load_reports_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Not an Arrow file at all.
    let corrupt = dir.path().join("corrupt.model.arrow");
    std::fs::write(&corrupt, b"definitely not an arrow ipc file").unwrap();
    let err = expect_err(Model::load(&corrupt), "corrupt file");
    match &err {
        Error::Io { path, message, .. } => {
            assert_eq!(path, &corrupt);
            assert!(
                message.contains("damaged or not an Arrow IPC file"),
                "{message}"
            );
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert_msg(&err, &["corrupt.model.arrow"]);

    // A truncated model file.
    let good = dir.path().join("good.model.arrow");
    small_logistic_model().save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.model.arrow");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = expect_err(Model::load(&truncated), "truncated file");
    assert!(
        matches!(&err, Error::Io { path, .. } if path == &truncated),
        "{err:?}"
    );

    // A valid Arrow file that is a data table, not a model.
    let data = dir.path().join("data.arrow");
    write_table(
        &table_of(vec![("x", f64_col(&[1.0, 2.0]))]),
        &data,
        FileFormat::ArrowFile,
    )
    .unwrap();
    let err = expect_err(Model::load(&data), "not a model");
    assert_msg(&err, &["data.arrow", MODEL_KEY]);

    // A missing file.
    let missing = dir.path().join("missing.model.arrow");
    let err = expect_err(Model::load(&missing), "missing file");
    assert!(
        matches!(&err, Error::Io { path, .. } if path == &missing),
        "{err:?}"
    );
    assert_msg(&err, &["missing.model.arrow", "cannot open"]);
}

// ---------------------------------------------------- 5. lineage and scoring

const CHURN_FEATURES: [&str; 7] = [
    "age",
    "income_log",
    "visits",
    "region=east",
    "region=north",
    "region=south",
    "region=west",
];

fn logistic_trainer() -> Arc<dyn Step> {
    Arc::new(TrainLogistic::new(
        CHURN_FEATURES,
        "churned",
        LogisticConfig::default(),
    ))
}

/// Split the customers table, derive, fit statistics and categories on the
/// training split, fill, scale and encode it, train with `trainer`; score the
/// RAW test split and evaluate. The same preparation is applied to the test
/// split separately (`t_encoded`) so tests can score it by hand.
fn churn_pipeline(rows: usize, trainer: Arc<dyn Step>) -> Pipeline {
    let mut p = Pipeline::new("churn");
    p.add(
        "raw",
        MemorySource::new(Table::from_batch(datasets::customers(rows, 5))),
    );
    p.add("split", Split::new(0.3, 11)).input("data", "raw");
    let derive = || Derive::new([("income_log", col("income").log1p())]);
    let numeric = ["age", "income_log", "visits"];
    p.add("features", derive()).input("data", "split.train");
    p.add("stats", FitStats::new(numeric))
        .input("data", "features");
    p.add("categories", FitCategories::new(["region"]))
        .input("data", "features");
    p.add(
        "filled",
        FillNull::new(["age", "income_log"], FillValue::Mean),
    )
    .inputs(["features", "stats"]);
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["filled", "stats"]);
    p.add(
        "encoded",
        Encode::new(EncodeMethod::OneHot, UnknownCategory::Ignore),
    )
    .inputs(["scaled", "categories"]);
    p.add_shared("model", trainer).input("data", "encoded");
    // The model re-applies the fitted preparation itself: raw rows in.
    p.add("scores", Score::new(["churned"]))
        .inputs(["model", "split.test"]);
    p.add("evaluation", Evaluate::new()).input("data", "scores");
    // The same preparation on the test split, done by the prep steps.
    p.add("t_features", derive()).input("data", "split.test");
    p.add(
        "t_filled",
        FillNull::new(["age", "income_log"], FillValue::Mean),
    )
    .inputs(["t_features", "stats"]);
    p.add("t_scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["t_filled", "stats"]);
    p.add(
        "t_encoded",
        Encode::new(EncodeMethod::OneHot, UnknownCategory::Ignore),
    )
    .inputs(["t_scaled", "categories"]);
    p
}

fn churn_run(rows: usize, trainer: Arc<dyn Step>) -> (Model, fuseflow::RunOutput) {
    let run = churn_pipeline(rows, trainer).run().unwrap();
    let model = model_from_table("model", run.output("model").unwrap()).unwrap();
    (model, run)
}

/// The 20,000-row logistic churn run, trained once for the tests that read it.
fn logistic_churn() -> &'static (Model, fuseflow::RunOutput) {
    static RUN: std::sync::OnceLock<(Model, fuseflow::RunOutput)> = std::sync::OnceLock::new();
    RUN.get_or_init(|| churn_run(20_000, logistic_trainer()))
}

/// Binary probabilities by hand: `sigmoid(b + w . x)` over prepared columns,
/// in f64 as the model computes whatever the feature types.
fn probabilities_by_hand(model: &Model, prepared: &Table) -> Vec<f64> {
    let layer = &model.network.layers[0];
    let columns: Vec<Vec<f64>> = model
        .info
        .features
        .iter()
        .map(|f| as_f64(prepared, &f.name))
        .collect();
    (0..prepared.num_rows())
        .map(|i| {
            sigmoid(
                columns
                    .iter()
                    .zip(&layer.weights)
                    .fold(layer.bias[0], |z, (c, &w)| z + w * c[i]),
            )
        })
        .collect()
}

fn fitted_stat(run: &fuseflow::RunOutput, column: &str, stat: &str) -> f64 {
    let stats = run.output("stats").unwrap().concat().unwrap();
    let names = stats
        .column_by_name("column")
        .unwrap()
        .as_string::<i32>()
        .clone();
    let values = stats
        .column_by_name(stat)
        .unwrap()
        .as_primitive::<Float64Type>()
        .clone();
    let i = (0..stats.num_rows())
        .find(|&i| names.value(i) == column)
        .unwrap();
    values.value(i)
}

/// Scoring raw rows applies the training-time preparation. Only f64 features
/// (age, income_log, visits after scaling) are compared here; see the next
/// test for the f32 one-hot indicators.
#[test]
fn score_on_raw_rows_equals_the_model_on_prepared_rows() {
    let (model, run) = churn_run(
        20_000,
        Arc::new(TrainLogistic::new(
            ["age", "income_log", "visits"],
            "churned",
            LogisticConfig::default(),
        )),
    );
    let scores = run.output("scores").unwrap();
    let prepared = run.output("t_encoded").unwrap();
    assert_eq!(scores.num_rows(), prepared.num_rows());
    assert!(scores.num_rows() > 5_000);
    let expected = probabilities_by_hand(&model, prepared);
    let actual = common::f64_column(scores, "probability");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        // Tolerance 1e-9 absolute: f64 inputs, f64 arithmetic both ways.
        let a = a.unwrap_or_else(|| panic!("row {i}: null probability"));
        assert_close(a, *e, 1e-9, &format!("row {i}"));
    }
    // Predictions follow the 0.5 threshold over the model's classes.
    let predictions = common::str_column(scores, "prediction");
    for (p, e) in predictions.iter().zip(&expected) {
        let want = if *e >= 0.5 { "true" } else { "false" };
        assert_eq!(p.as_deref(), Some(want));
    }
    // The kept label column comes first, unchanged.
    let names = common::names(scores);
    assert_eq!(names, ["churned", "probability", "prediction"]);
}

#[test]
fn lineage_pipeline_with_one_hot_region_scores_raw_rows() {
    let (model, run) = logistic_churn();
    let scores = run.output("scores").unwrap();
    let prepared = run.output("t_encoded").unwrap();
    let actual = common::f64_column(scores, "probability");
    // Tolerance 1e-9: the model computes in f64 from raw rows.
    let expected = probabilities_by_hand(model, prepared);
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_close(a.unwrap(), *e, 1e-9, &format!("row {i}"));
    }

    // The stored expressions are the fitted preparation over raw columns.
    let expr = |name: &str| {
        model
            .info
            .features
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no feature {name}"))
            .expr
            .clone()
    };
    let age_mean = fitted_stat(run, "age", "mean");
    let age_std = fitted_stat(run, "age", "std");
    let income_mean = fitted_stat(run, "income_log", "mean");
    let age = expr("age");
    assert!(
        age.contains(&format!("{age_mean}")),
        "{age} lacks mean {age_mean}"
    );
    // Scaling multiplies by the reciprocal of the fitted std.
    assert!(
        age.contains(&format!("{:?}", 1.0 / age_std)),
        "{age} lacks 1/std {age_std}"
    );
    assert!(age.contains("fill_null(age"), "{age}");
    let income = expr("income_log");
    assert!(income.contains("log1p(income)"), "{income}");
    assert!(
        income.contains(&format!("{income_mean}")),
        "{income} lacks {income_mean}"
    );
    let visits = expr("visits");
    assert!(
        visits.contains(&format!("{}", fitted_stat(run, "visits", "mean"))),
        "{visits}"
    );
    assert!(
        expr("region=east").contains("region == \"east\""),
        "{}",
        expr("region=east")
    );
    // The sources are the raw columns, with their training dtypes.
    let sources: Vec<(&str, &str)> = model
        .info
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.dtype.as_str()))
        .collect();
    assert_eq!(
        sources,
        [
            ("age", "f64"),
            ("income", "f64"),
            ("visits", "i64"),
            ("region", "utf8")
        ]
    );
    assert_eq!(model.info.classes, ["false", "true"]);
    assert_eq!(model.info.training["converged"], 1.0);
}

// --------------------------------------------------- 6. scoring mismatches

/// A logistic model over raw `age` (f64) and `visits` (i64).
fn age_visits_model() -> (Model, RecordBatch) {
    let raw = datasets::customers(3_000, 6);
    let age: Vec<f64> = (0..raw.num_rows())
        .map(|i| 30.0 + (i % 40) as f64)
        .collect();
    let data = RecordBatch::try_from_iter(vec![
        ("age", f64_col(&age)),
        ("visits", Arc::clone(raw.column_by_name("visits").unwrap())),
        (
            "churned",
            Arc::clone(raw.column_by_name("churned").unwrap()),
        ),
    ])
    .unwrap();
    let model = train(
        &TrainLogistic::new(["age", "visits"], "churned", LogisticConfig::default()),
        Table::from_batch(data.clone()),
    )
    .unwrap();
    (model, data)
}

#[test]
fn scoring_names_a_missing_source_column() {
    let (model, data) = age_visits_model();
    let without_age = data.project(&[1, 2]).unwrap();
    let err = expect_err(
        Scorer::new("score", model.clone(), &without_age.schema(), &[]),
        "missing age",
    );
    match &err {
        Error::Schema {
            step,
            column,
            message,
        } => {
            assert_eq!((step.as_str(), column.as_str()), ("score", "age"));
            assert!(
                message.contains("does not have it") && message.contains("f64"),
                "{message}"
            );
        }
        other => panic!("expected Error::Schema, got {other:?}"),
    }

    // Through a pipeline's score step.
    let mut p = Pipeline::new("p");
    p.add(
        "model",
        MemorySource::new(Table::from_batch(model.to_batch().unwrap())),
    );
    p.add("data", MemorySource::new(Table::from_batch(without_age)));
    p.add("scores", Score::new(Vec::<String>::new()))
        .inputs(["model", "data"]);
    let err = expect_err(p.run().map(|_| ()), "pipeline missing column");
    assert!(
        matches!(&err, Error::Schema { step, column, .. } if step == "scores" && column == "age"),
        "{err:?}"
    );

    // A missing keep column is named too.
    let err = expect_err(
        Scorer::new("score", model, &data.schema(), &["id".to_string()]),
        "missing keep column",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "id"),
        "{err:?}"
    );
}

#[test]
fn scoring_names_a_column_with_the_wrong_dtype() {
    let (model, data) = age_visits_model();
    let cases: Vec<(ArrayRef, &str)> = vec![
        (
            Arc::new(StringArray::from_iter_values(
                (0..data.num_rows()).map(|i| format!("{}", i % 50)),
            )),
            "utf8",
        ),
        (
            Arc::new(Int64Array::from_iter_values(
                (0..data.num_rows()).map(|i| (i % 50) as i64),
            )),
            "i64",
        ),
        (
            Arc::new(arrow_array::Float32Array::from_iter_values(
                (0..data.num_rows()).map(|i| (i % 50) as f32),
            )),
            "f32",
        ),
    ];
    for (age, found) in cases {
        let batch =
            RecordBatch::try_from_iter(vec![("age", age), ("visits", Arc::clone(data.column(1)))])
                .unwrap();
        let err = expect_err(
            Scorer::new("score", model.clone(), &batch.schema(), &[]),
            found,
        );
        assert!(
            matches!(&err, Error::Schema { column, .. } if column == "age"),
            "{err:?}"
        );
        assert_msg(
            &err,
            &["'age'", "trained with f64", &format!("has {found}")],
        );
    }
    // visits as f64 where i64 was trained.
    let visits = arrow_cast::cast(data.column(1), &DataType::Float64).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        ("age", Arc::clone(data.column(0))),
        ("visits", visits),
    ])
    .unwrap();
    let err = expect_err(
        Scorer::new("score", model, &batch.schema(), &[]),
        "visits f64",
    );
    assert_msg(&err, &["'visits'", "trained with i64", "has f64"]);
}

#[test]
fn scoring_ignores_column_order_and_extra_columns() {
    let (model, data) = age_visits_model();
    let base = Scorer::new("score", model.clone(), &data.schema(), &[])
        .unwrap()
        .score(&data)
        .unwrap();
    let n = data.num_rows();
    let shuffled = RecordBatch::try_from_iter(vec![
        (
            "note",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("row {i}")),
            )) as ArrayRef,
        ),
        ("visits", Arc::clone(data.column(1))),
        ("churned", Arc::clone(data.column(2))),
        ("extra", f64_col(&vec![123.0; n])),
        ("age", Arc::clone(data.column(0))),
    ])
    .unwrap();
    let scorer = Scorer::new("score", model, &shuffled.schema(), &["note".to_string()]).unwrap();
    let scored = scorer.score(&shuffled).unwrap();
    let schema = scored.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["note", "probability", "prediction"]);
    // Identical scores, bit for bit.
    let bits = |b: &RecordBatch| -> Vec<u64> {
        f64_values(b.column_by_name("probability").unwrap().as_ref())
            .into_iter()
            .map(|v| v.unwrap().to_bits())
            .collect()
    };
    assert_eq!(bits(&scored), bits(&base));
    assert_eq!(
        str_values(scored.column_by_name("prediction").unwrap().as_ref()),
        str_values(base.column_by_name("prediction").unwrap().as_ref())
    );
}

// ------------------------------------------------- 7. score and evaluate

#[test]
fn binary_evaluation_reports_metrics_and_confusion() {
    let (_, run) = logistic_churn();
    let scores = run.output("scores").unwrap();
    let rows = scores.num_rows();
    let metrics = metrics_map(run.output("evaluation.metrics").unwrap());
    for key in [
        "rows",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "log_loss",
        "roc_auc",
    ] {
        assert!(metrics.contains_key(key), "missing {key}: {metrics:?}");
    }
    assert_eq!(metrics["rows"], rows as f64);
    for key in ["accuracy", "precision", "recall", "f1", "roc_auc"] {
        assert!(
            (0.0..=1.0).contains(&metrics[key]),
            "{key} = {}",
            metrics[key]
        );
    }
    // The churn label depends on the features: clearly better than chance.
    assert!(metrics["roc_auc"] > 0.6, "{metrics:?}");
    assert!(metrics["log_loss"] > 0.0 && metrics["log_loss"] < std::f64::consts::LN_2);

    // Recompute from the scores (tolerance 1e-12).
    let labels = common::bool_column(scores, "churned");
    let predictions = common::str_column(scores, "prediction");
    let probabilities = common::f64_column(scores, "probability");
    let (mut tp, mut fp, mut fneg, mut tn) = (0usize, 0usize, 0usize, 0usize);
    let mut ll = 0.0;
    for i in 0..rows {
        let actual = labels[i].unwrap();
        let predicted = predictions[i].as_deref() == Some("true");
        match (actual, predicted) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            (false, false) => tn += 1,
        }
        let p = probabilities[i].unwrap();
        ll -= if actual { p.ln() } else { (1.0 - p).ln() };
    }
    assert_close(
        metrics["accuracy"],
        (tp + tn) as f64 / rows as f64,
        1e-12,
        "accuracy",
    );
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fneg) as f64;
    assert_close(metrics["precision"], precision, 1e-12, "precision");
    assert_close(metrics["recall"], recall, 1e-12, "recall");
    assert_close(
        metrics["f1"],
        2.0 * precision * recall / (precision + recall),
        1e-12,
        "f1",
    );
    assert_close(metrics["log_loss"], ll / rows as f64, 1e-9, "log-loss");

    // Confusion: 2 x 2, counts sum to the rows.
    let confusion = run
        .output("evaluation.confusion")
        .unwrap()
        .concat()
        .unwrap();
    assert_eq!(confusion.num_rows(), 4);
    let actual = str_values(confusion.column(0).as_ref());
    let predicted = str_values(confusion.column(1).as_ref());
    let counts = common::i64_values(confusion.column(2).as_ref());
    assert_eq!(counts.iter().map(|c| c.unwrap()).sum::<i64>(), rows as i64);
    let count = |a: &str, p: &str| {
        (0..4)
            .find(|&i| actual[i].as_deref() == Some(a) && predicted[i].as_deref() == Some(p))
            .map(|i| counts[i].unwrap() as usize)
            .unwrap()
    };
    assert_eq!(
        (
            count("true", "true"),
            count("false", "true"),
            count("true", "false"),
            count("false", "false")
        ),
        (tp, fp, fneg, tn)
    );
}

#[test]
fn regression_evaluation_reports_rmse_mae_r2() {
    let mut rng = Rng::new(30);
    let n = 4_000;
    let a: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let b: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
    let y: Vec<f64> = (0..n)
        .map(|i| 1.0 + 2.0 * a[i] - 3.0 * b[i] + 0.3 * rng.normal())
        .collect();
    let data = table_of(vec![
        ("a", f64_col(&a)),
        ("b", f64_col(&b)),
        ("y", f64_col(&y)),
    ]);
    let mut p = Pipeline::new("reg");
    p.add("data", MemorySource::new(data));
    p.add("split", Split::new(0.25, 1)).input("data", "data");
    p.add("model", TrainLinear::new(["a", "b"], "y", 0.0))
        .input("data", "split.train");
    p.add("scores", Score::new(["y"]))
        .inputs(["model", "split.test"]);
    p.add("evaluation", Evaluate::new()).input("data", "scores");
    let run = p.run().unwrap();
    let scores = run.output("scores").unwrap();
    assert_eq!(
        scores
            .schema()
            .field_with_name("prediction")
            .unwrap()
            .data_type(),
        &DataType::Float64
    );
    let metrics = metrics_map(run.output("evaluation.metrics").unwrap());
    let pred = as_f64(scores, "prediction");
    let truth = as_f64(scores, "y");
    let m = truth.len() as f64;
    let mse = pred
        .iter()
        .zip(&truth)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / m;
    let mae = pred
        .iter()
        .zip(&truth)
        .map(|(p, t)| (p - t).abs())
        .sum::<f64>()
        / m;
    let mean = truth.iter().sum::<f64>() / m;
    let tss = truth.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / m;
    // Tolerance 1e-12 relative-ish (values are O(1)).
    assert_close(metrics["rmse"], mse.sqrt(), 1e-12, "rmse");
    assert_close(metrics["mae"], mae, 1e-12, "mae");
    assert_close(metrics["r2"], 1.0 - mse / tss, 1e-12, "r2");
    // Noise sd 0.3: rmse near 0.3, and a high r2.
    assert!((metrics["rmse"] - 0.3).abs() < 0.03, "{metrics:?}");
    assert!(metrics["r2"] > 0.95, "{metrics:?}");
    assert_eq!(run.output("evaluation.confusion").unwrap().num_rows(), 0);
}

#[test]
fn mlp_model_scores_through_the_unfused_path() {
    let features: Vec<String> = CHURN_FEATURES.iter().map(|s| s.to_string()).collect();
    let trainer = Arc::new(TrainMlp::new(
        features.clone(),
        "churned",
        Task::Classification,
        MlpConfig {
            hidden: vec![8],
            epochs: 3,
            ..MlpConfig::default()
        },
    ));
    let (model, run) = churn_run(10_000, trainer);
    assert_eq!(model.info.kind, "mlp");
    assert_eq!(model.network.layers.len(), 2);
    assert_eq!(model.network.layers[0].outputs, 8);
    // Two layers: no fused expression, the dense layers run on prepared rows.
    assert!(model.fused_score_exprs().unwrap().is_none());

    let prepared = run.output("t_encoded").unwrap();
    let x = Design::from_table("t", prepared, &features).unwrap();
    let expected = model.network.predict(&x);
    let scores = run.output("scores").unwrap();
    let actual = common::f64_column(scores, "probability");
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        // Tolerance 1e-12 absolute.
        assert_close(a.unwrap(), *e, 1e-12, &format!("row {i}"));
    }
    let predictions = common::str_column(scores, "prediction");
    for (p, e) in predictions.iter().zip(&expected) {
        assert_eq!(p.as_deref(), Some(if *e >= 0.5 { "true" } else { "false" }));
    }
    let metrics = metrics_map(run.output("evaluation.metrics").unwrap());
    assert!(metrics.contains_key("roc_auc") && metrics["rows"] == actual.len() as f64);
}

#[test]
fn softmax_scores_have_one_probability_per_class() {
    let (a, b, k) = blobs(1_000, 31);
    let names = ["setosa", "versicolor", "virginica"];
    let labels: Vec<&str> = k.iter().map(|&i| names[i as usize]).collect();
    let data = table_of(vec![
        ("a", f64_col(&a)),
        ("b", f64_col(&b)),
        ("species", Arc::new(StringArray::from(labels))),
    ]);
    let mut p = Pipeline::new("softmax");
    p.add("data", MemorySource::new(data));
    p.add("split", Split::new(0.3, 2)).input("data", "data");
    p.add(
        "model",
        TrainLogistic::new(["a", "b"], "species", LogisticConfig::default()),
    )
    .input("data", "split.train");
    p.add("scores", Score::new(["species"]))
        .inputs(["model", "split.test"]);
    p.add("evaluation", Evaluate::new()).input("data", "scores");
    let run = p.run().unwrap();
    let model = model_from_table("model", run.output("model").unwrap()).unwrap();
    assert_eq!(model.info.classes, names);
    assert_eq!(model.info.head, "softmax");

    let scores = run.output("scores").unwrap();
    assert_eq!(
        common::names(scores),
        [
            "species",
            "probability_setosa",
            "probability_versicolor",
            "probability_virginica",
            "prediction"
        ]
    );
    assert_eq!(common::dtype_of(scores, "prediction"), DataType::Utf8);
    let probs: Vec<Vec<Option<f64>>> = names
        .iter()
        .map(|c| common::f64_column(scores, &format!("probability_{c}")))
        .collect();
    let predictions = common::str_column(scores, "prediction");
    let truth = common::str_column(scores, "species");
    let mut correct = 0;
    for i in 0..scores.num_rows() {
        let row: Vec<f64> = probs.iter().map(|c| c[i].unwrap()).collect();
        // Tolerance 1e-12 on the sum.
        assert_close(row.iter().sum::<f64>(), 1.0, 1e-12, &format!("row {i} sum"));
        let best = (0..3).fold(0, |m, k| if row[k] > row[m] { k } else { m });
        assert_eq!(
            predictions[i].as_deref(),
            Some(names[best]),
            "row {i}: {row:?}"
        );
        correct += usize::from(predictions[i] == truth[i]);
    }
    assert!(correct as f64 / scores.num_rows() as f64 > 0.95);

    let metrics = metrics_map(run.output("evaluation.metrics").unwrap());
    for key in [
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "log_loss",
    ] {
        assert!(metrics.contains_key(key), "missing {key}");
    }
    assert_close(
        metrics["accuracy"],
        correct as f64 / scores.num_rows() as f64,
        1e-12,
        "accuracy",
    );
    let confusion = run
        .output("evaluation.confusion")
        .unwrap()
        .concat()
        .unwrap();
    assert_eq!(confusion.num_rows(), 9);
    let total: i64 = common::i64_values(confusion.column(2).as_ref())
        .iter()
        .map(|c| c.unwrap())
        .sum();
    assert_eq!(total, scores.num_rows() as i64);
}

// ------------------------------------------------------------ 8. spec files

#[test]
fn spec_file_trains_scores_evaluates_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    // A CSV with two numeric features and a bool label.
    let (x, y) = logistic_data(3_000, &[2.0, -1.0], 0.0, 40);
    let data = table_of(vec![
        ("x1", f64_col(x.column(0))),
        ("x2", f64_col(x.column(1))),
        (
            "label",
            Arc::new(BooleanArray::from_iter(y.iter().map(|&v| Some(v == 1)))),
        ),
    ]);
    write_table(&data, &dir.path().join("train.csv"), FileFormat::Csv).unwrap();
    write_table(
        &data,
        &dir.path().join("train.parquet"),
        FileFormat::Parquet,
    )
    .unwrap();

    for input in ["train.csv", "train.parquet"] {
        let text = format!(
            r#"name = "spec-train"

[[steps]]
name = "raw"
kind = "read"
path = "{input}"

[[steps]]
name = "split"
kind = "split"
input = "raw"
test_fraction = 0.25
seed = 3

[[steps]]
name = "stats"
kind = "fit_stats"
input = "split.train"
columns = ["x1", "x2"]

[[steps]]
name = "scaled"
kind = "scale"
inputs = {{ data = "split.train", stats = "stats" }}
method = "zscore"

[[steps]]
name = "model"
kind = "train_logistic"
input = "scaled"
label = "label"
features = ["x1", "x2"]
l2 = 0.5

[[steps]]
name = "scores"
kind = "score"
inputs = {{ model = "model", data = "split.test" }}
keep = ["label"]

[[steps]]
name = "evaluation"
kind = "evaluate"
input = "scores"

[[steps]]
name = "write_metrics"
kind = "write"
input = "evaluation.metrics"
path = "out/metrics.csv"

[[steps]]
name = "write_scores"
kind = "write"
input = "scores"
path = "out/scores.parquet"
"#
        );
        let pipeline = spec::parse(&text, &dir.path().join("spec.toml")).unwrap();
        let run = pipeline.run().unwrap();
        let metrics = metrics_map(run.output("evaluation.metrics").unwrap());
        assert!(metrics["accuracy"] > 0.7, "{input}: {metrics:?}");
        assert!(metrics["roc_auc"] > 0.8, "{input}: {metrics:?}");
        let model = model_from_table("model", run.output("model").unwrap()).unwrap();
        assert_eq!(model.info.params["l2"], "0.5");
        // The scaling is in the model: the raw test split was scored.
        assert!(
            model.info.features[0].expr.contains("x1 -"),
            "{:?}",
            model.info.features
        );
        assert!(dir.path().join("out/metrics.csv").exists());
        let written = std::fs::read_to_string(dir.path().join("out/metrics.csv")).unwrap();
        assert!(
            written.starts_with("metric,value") && written.contains("accuracy"),
            "{written}"
        );
        assert!(dir.path().join("out/scores.parquet").exists());
    }
}

#[test]
fn spec_rejects_unknown_train_mlp_keys_with_line_and_key() {
    let text = r#"name = "bad"

[[steps]]
name = "raw"
kind = "read"
path = "data.csv"

[[steps]]
name = "net"
kind = "train_mlp"
input = "raw"
label = "y"
hidden = [8]
hiden_layers = 3
"#;
    let err = expect_err(
        spec::parse(text, Path::new("bad.toml")).map(|_| ()),
        "unknown key",
    );
    match &err {
        Error::Spec { line, message, .. } => {
            assert_eq!(*line, Some(8), "{err}");
            assert!(
                message.contains("'hiden_layers'") && message.contains("'net'"),
                "{message}"
            );
            assert!(message.contains("train_mlp"), "{message}");
        }
        other => panic!("expected Error::Spec, got {other:?}"),
    }
    assert_msg(&err, &["bad.toml line 8"]);

    // Wrong value types are rejected with the key.
    let bad_hidden = text.replace("hiden_layers = 3\n", "").replace("[8]", "[0]");
    let err = expect_err(
        spec::parse(&bad_hidden, Path::new("bad.toml")).map(|_| ()),
        "hidden 0",
    );
    assert_msg(&err, &["'hidden'", "positive integers"]);
    let bad_task = text.replace("hiden_layers = 3\n", "task = \"ranking\"\n");
    let err = expect_err(
        spec::parse(&bad_task, Path::new("bad.toml")).map(|_| ()),
        "task",
    );
    assert_msg(&err, &["'task'", "ranking", "classification or regression"]);
    // And the valid spec parses.
    let ok = text.replace("hiden_layers = 3\n", "epochs = 2\n");
    spec::parse(&ok, Path::new("bad.toml")).unwrap();
}

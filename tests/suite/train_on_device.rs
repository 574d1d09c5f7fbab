//! Training through the backend verbs agrees with the host's f64 training:
//! logistic regression (binary, multinomial) and the MLP (classification,
//! regression) on every backend this machine has (see `common/devices.rs`),
//! the CPU backend included, which runs the same device code path with its
//! reference kernels.
//!
//! Tolerances: device passes are f32 with sums added in f64, so Newton ends
//! within f32 resolution of the optimum, `|w_dev - w_cpu| <= 1e-3·|w_cpu| +
//! 2e-4` for weights of order one on well-conditioned data (the gradient
//! floor, ~1e-5 here, moved by the inverse Hessian, whose eigenvalues are
//! above 0.1). The MLP follows the same seeded schedule; f32 rounding moves
//! its loss by at most a few 1e-3 after a few epochs, and its predicted
//! probabilities by at most 2e-2.

use std::sync::Arc;

use crate::common::devices::backends;
use fuseflow::backend::{Backend, CpuBackend, DeviceKind};
use fuseflow::data::Rng;
use fuseflow::ml::design::Design;
use fuseflow::ml::logistic::{self, LogisticConfig, LogisticFit};
use fuseflow::ml::mlp::{self, Activation, MlpConfig, MlpTarget};
use fuseflow::ml::on_device;

fn design(columns: Vec<Vec<f64>>) -> Design {
    let rows = columns[0].len();
    Design {
        rows,
        features: (0..columns.len()).map(|j| format!("f{j}")).collect(),
        x: columns.concat(),
    }
}

/// `rows` rows of `width` standard normal features; class by a softmax over
/// `classes` random linear scores (a sigmoid for two).
fn classification(rows: usize, width: usize, classes: usize, seed: u64) -> (Design, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let columns: Vec<Vec<f64>> = (0..width)
        .map(|_| (0..rows).map(|_| rng.normal()).collect())
        .collect();
    let weights: Vec<f64> = (0..classes * width).map(|_| rng.normal()).collect();
    let y = (0..rows)
        .map(|r| {
            let scores: Vec<f64> = (0..classes)
                .map(|c| {
                    (0..width)
                        .map(|j| weights[c * width + j] * columns[j][r])
                        .sum()
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let mut u = rng.uniform() * e.iter().sum::<f64>();
            e.iter()
                .position(|&p| {
                    u -= p;
                    u <= 0.0
                })
                .unwrap_or(classes - 1) as u32
        })
        .collect();
    (design(columns), y)
}

fn assert_weights_close(got: &LogisticFit, want: &LogisticFit, what: &str) {
    let pairs = got
        .weights
        .iter()
        .zip(&want.weights)
        .chain(got.intercepts.iter().zip(&want.intercepts));
    for (i, (g, w)) in pairs.enumerate() {
        assert!(
            (g - w).abs() <= 1e-3 * w.abs() + 2e-4,
            "{what}: parameter {i}: {g} vs {w}\n got {got:?}\nwant {want:?}"
        );
    }
    assert!(
        (got.log_loss - want.log_loss).abs() <= 1e-5 * want.log_loss,
        "{what}: log loss {} vs {}",
        got.log_loss,
        want.log_loss
    );
}

fn check_logistic(rows: usize, width: usize, classes: usize, seed: u64) {
    let (x, y) = classification(rows, width, classes, seed);
    let config = LogisticConfig {
        l2: 1.0,
        ..LogisticConfig::default()
    };
    let want = logistic::fit("t", &x, &y, classes, &config).unwrap();
    assert_eq!(want.precision, "f64");
    for backend in backends() {
        let info = backend.info().clone();
        let got = on_device::fit_logistic("t", backend.as_ref(), &x, &y, classes, &config)
            .unwrap_or_else(|e| panic!("{info}: {e}"));
        let what = format!("{info}, {classes} classes");
        assert_eq!(got.precision, "f32", "{what}");
        assert!(got.converged, "{what}: {got:?}");
        // The f32 floor replaces 1e-10, and is what was reached.
        assert!(
            got.tolerance > config.tolerance && got.tolerance < 1e-4,
            "{what}: {got:?}"
        );
        assert!(got.gradient_norm <= got.tolerance, "{what}: {got:?}");
        assert_weights_close(&got, &want, &what);
    }
}

#[test]
fn binary_logistic_on_every_backend_matches_the_f64_fit() {
    // 5000 rows: two row blocks of the device's partial sums, the last partial.
    check_logistic(5000, 6, 2, 1);
}

#[test]
fn multinomial_logistic_on_every_backend_matches_the_f64_fit() {
    check_logistic(1500, 4, 4, 2);
}

#[test]
fn device_logistic_keeps_the_host_checks() {
    let (x, y) = classification(50, 2, 2, 3);
    let bad = LogisticConfig {
        l2: -1.0,
        ..LogisticConfig::default()
    };
    let cpu: Arc<dyn Backend> = CpuBackend::shared();
    let err = on_device::fit_logistic("trainer", cpu.as_ref(), &x, &y, 2, &bad).unwrap_err();
    assert!(
        err.to_string().contains("trainer") && err.to_string().contains("l2"),
        "{err}"
    );
    let err = on_device::fit_logistic(
        "trainer",
        cpu.as_ref(),
        &x,
        &y,
        1,
        &LogisticConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("two classes"), "{err}");
}

/// Four noisy clusters; class 1 where the signs agree.
fn xor(rows: usize, seed: u64) -> (Design, Vec<u32>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let (mut a, mut b, mut y, mut t) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..rows {
        let sa = if i % 2 == 0 { 1.0 } else { -1.0 };
        let sb = if (i / 2) % 2 == 0 { 1.0 } else { -1.0 };
        let (va, vb) = (sa + 0.3 * rng.normal(), sb + 0.3 * rng.normal());
        a.push(va);
        b.push(vb);
        y.push(u32::from(sa * sb > 0.0));
        t.push(va * vb + 0.1 * rng.normal());
    }
    (design(vec![a, b]), y, t)
}

fn check_mlp(target: &MlpTarget, x: &Design, config: &MlpConfig, what: &str) {
    let (want, want_report) = mlp::train("t", x, target, config).unwrap();
    let want_pred = want.predict(x);
    for backend in backends() {
        let info = backend.info().clone();
        let (got, report) = on_device::train_mlp("t", backend.as_ref(), x, target, config)
            .unwrap_or_else(|e| panic!("{info}, {what}: {e}"));
        assert_eq!(report.epochs, config.epochs);
        for (e, (g, w)) in report
            .loss_history
            .iter()
            .zip(&want_report.loss_history)
            .enumerate()
        {
            assert!(
                (g - w).abs() <= 3e-3 * w.abs().max(1.0),
                "{info}, {what}: epoch {e} loss {g} vs {w}"
            );
        }
        let pred = got.predict(x);
        let worst = pred
            .iter()
            .zip(&want_pred)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 2e-2,
            "{info}, {what}: predictions differ by {worst}"
        );
        // It learned: the loss fell.
        assert!(
            report.loss < report.loss_history[0] || config.epochs == 1,
            "{info}, {what}: {report:?}"
        );
        if info.kind != DeviceKind::Cpu {
            assert_ne!(
                got, want,
                "{info}: f32 training should not be bit-identical"
            );
        }
    }
}

#[test]
fn mlp_classifiers_on_every_backend_follow_the_f64_training() {
    let (x, y, _) = xor(600, 4);
    for activation in [Activation::Tanh, Activation::Relu] {
        let config = MlpConfig {
            hidden: vec![9, 5],
            activation,
            epochs: 4,
            batch_size: 50,
            learning_rate: 0.01,
            l2: 1e-3,
            seed: 5,
        };
        let target = MlpTarget::Classes {
            index: &y,
            classes: 2,
        };
        check_mlp(&target, &x, &config, &format!("{activation:?} binary"));
    }
    let (x, y) = classification(700, 3, 3, 6);
    let config = MlpConfig {
        hidden: vec![7],
        epochs: 3,
        batch_size: 64,
        learning_rate: 0.01,
        ..MlpConfig::default()
    };
    let target = MlpTarget::Classes {
        index: &y,
        classes: 3,
    };
    check_mlp(&target, &x, &config, "softmax");
}

#[test]
fn mlp_regression_on_every_backend_follows_the_f64_training() {
    let (x, _, t) = xor(500, 7);
    let config = MlpConfig {
        hidden: vec![6],
        activation: Activation::Tanh,
        epochs: 3,
        batch_size: 32,
        learning_rate: 0.01,
        l2: 0.0,
        seed: 8,
    };
    check_mlp(&MlpTarget::Regression(&t), &x, &config, "regression");
}

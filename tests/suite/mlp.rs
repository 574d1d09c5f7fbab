//! Multi-layer perceptron: learning, reproducibility, gradients, validation.

use fuseflow::Error;
use fuseflow::data::Rng;
use fuseflow::ml::design::Design;
use fuseflow::ml::mlp::{
    Activation, DenseLayer, Head, Mlp, MlpConfig, MlpTarget, TrainReport, train,
};

/// A design from feature columns.
fn design(columns: Vec<Vec<f64>>) -> Design {
    let rows = columns[0].len();
    let features = (0..columns.len()).map(|j| format!("f{j}")).collect();
    Design {
        rows,
        features,
        x: columns.concat(),
    }
}

/// XOR-like data: four noisy clusters at (+-1, +-1); class 1 where the signs agree.
fn xor_data(rows: usize, seed: u64) -> (Design, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rows {
        let sa = if i % 2 == 0 { 1.0 } else { -1.0 };
        let sb = if (i / 2) % 2 == 0 { 1.0 } else { -1.0 };
        a.push(sa + 0.25 * rng.normal());
        b.push(sb + 0.25 * rng.normal());
        y.push(u32::from(sa * sb > 0.0));
    }
    (design(vec![a, b]), y)
}

/// Gaussian blobs around `centers` (std 1), `per` rows each, labelled by center.
fn blobs(centers: &[(f64, f64)], per: usize, std: f64, seed: u64) -> (Design, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..per {
        for (c, &(ca, cb)) in centers.iter().enumerate() {
            a.push(ca + std * rng.normal());
            b.push(cb + std * rng.normal());
            y.push(c as u32);
        }
    }
    (design(vec![a, b]), y)
}

fn accuracy(model: &Mlp, x: &Design, y: &[u32]) -> f64 {
    let p = model.predict(x);
    let k = model.layers.last().unwrap().outputs;
    let correct = (0..x.rows)
        .filter(|&r| {
            let row = &p[r * k..(r + 1) * k];
            let predicted = if k == 1 {
                u32::from(row[0] > 0.5)
            } else {
                (0..k).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap() as u32
            };
            predicted == y[r]
        })
        .count();
    correct as f64 / x.rows as f64
}

fn weight_bits(model: &Mlp) -> Vec<u64> {
    model
        .layers
        .iter()
        .flat_map(|l| l.weights.iter().chain(&l.bias))
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn learns_xor_like_clusters() {
    let (x, y) = xor_data(400, 7);
    let config = MlpConfig {
        hidden: vec![8],
        activation: Activation::Tanh,
        epochs: 100,
        batch_size: 32,
        learning_rate: 0.02,
        l2: 1e-4,
        seed: 3,
    };
    let (model, report) = train(
        "mlp",
        &x,
        &MlpTarget::Classes {
            index: &y,
            classes: 2,
        },
        &config,
    )
    .unwrap();
    assert_eq!(model.head, Head::Sigmoid);
    assert_eq!(model.layers.len(), 2);
    let acc = accuracy(&model, &x, &y);
    assert!(acc > 0.95, "accuracy {acc}, report {report:?}");
    // A linear model cannot do this: sanity-check that the hidden layer matters.
    let linear = MlpConfig {
        hidden: vec![],
        ..config
    };
    let (lin, _) = train(
        "mlp",
        &x,
        &MlpTarget::Classes {
            index: &y,
            classes: 2,
        },
        &linear,
    )
    .unwrap();
    assert!(accuracy(&lin, &x, &y) < 0.8);
}

#[test]
fn separable_binary_reaches_low_loss() {
    let (x, y) = blobs(&[(-2.0, -2.0), (2.0, 2.0)], 100, 0.5, 11);
    let config = MlpConfig {
        hidden: vec![],
        epochs: 60,
        batch_size: 16,
        learning_rate: 0.1,
        l2: 0.0,
        ..MlpConfig::default()
    };
    let (model, report) = train(
        "logit",
        &x,
        &MlpTarget::Classes {
            index: &y,
            classes: 2,
        },
        &config,
    )
    .unwrap();
    assert!(report.loss < 0.02, "{report:?}");
    assert_eq!(accuracy(&model, &x, &y), 1.0);
    // forward agrees with predict, and gives a probability.
    let p = model.predict(&x);
    for r in [0, 1, 57, 199] {
        let row = [x.column(0)[r], x.column(1)[r]];
        let f = model.forward(&row);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0], p[r]);
        assert!((0.0..=1.0).contains(&f[0]));
    }
}

#[test]
fn softmax_separates_three_blobs() {
    let (x, y) = blobs(&[(0.0, 3.0), (3.0, -2.0), (-3.0, -2.0)], 100, 1.0, 5);
    let config = MlpConfig {
        hidden: vec![16],
        epochs: 40,
        batch_size: 32,
        learning_rate: 0.01,
        ..MlpConfig::default()
    };
    let (model, report) = train(
        "softmax",
        &x,
        &MlpTarget::Classes {
            index: &y,
            classes: 3,
        },
        &config,
    )
    .unwrap();
    assert_eq!(model.head, Head::Softmax);
    assert_eq!(model.layers.last().unwrap().outputs, 3);
    let acc = accuracy(&model, &x, &y);
    assert!(acc > 0.9, "accuracy {acc}, {report:?}");
    let p = model.predict(&x);
    assert_eq!(p.len(), 3 * x.rows);
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

#[test]
fn regression_fits_a_linear_target() {
    let mut rng = Rng::new(21);
    let n = 400;
    let a: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let b: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let y: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(a, b)| 2.0 * a - b + 0.1 * rng.normal())
        .collect();
    let x = design(vec![a, b]);
    for hidden in [vec![], vec![16]] {
        let config = MlpConfig {
            hidden: hidden.clone(),
            epochs: 60,
            batch_size: 32,
            learning_rate: 0.01,
            l2: 0.0,
            ..MlpConfig::default()
        };
        let (model, report) = train("reg", &x, &MlpTarget::Regression(&y), &config).unwrap();
        assert_eq!(model.head, Head::Identity);
        let p = model.predict(&x);
        let rmse = (p.iter().zip(&y).map(|(p, y)| (p - y).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(rmse < 0.2, "hidden {hidden:?}: rmse {rmse}, {report:?}");
    }
}

#[test]
fn loss_history_decreases() {
    let (x, y) = xor_data(200, 2);
    let config = MlpConfig {
        hidden: vec![8],
        activation: Activation::Tanh,
        epochs: 15,
        batch_size: 32,
        learning_rate: 0.01,
        ..MlpConfig::default()
    };
    let (_, report) = train(
        "mlp",
        &x,
        &MlpTarget::Classes {
            index: &y,
            classes: 2,
        },
        &config,
    )
    .unwrap();
    let TrainReport {
        epochs,
        loss,
        loss_history,
    } = report;
    assert_eq!(epochs, 15);
    assert_eq!(loss_history.len(), 15);
    assert_eq!(loss, *loss_history.last().unwrap());
    assert!(
        loss_history.last().unwrap() < loss_history.first().unwrap(),
        "{loss_history:?}"
    );
    assert!(loss_history.iter().all(|l| l.is_finite() && *l > 0.0));
}

#[test]
fn same_seed_gives_identical_weights_on_any_thread_count() {
    // 600 rows in batches of 256: several 64-row gradient chunks per step.
    let (x, y) = blobs(&[(0.0, 2.0), (2.0, -1.0), (-2.0, -1.0)], 200, 1.0, 9);
    let target = MlpTarget::Classes {
        index: &y,
        classes: 3,
    };
    let config = MlpConfig {
        hidden: vec![8, 4],
        epochs: 3,
        batch_size: 256,
        learning_rate: 0.01,
        ..MlpConfig::default()
    };
    let run = |threads: usize, seed: u64| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            train(
                "mlp",
                &x,
                &target,
                &MlpConfig {
                    seed,
                    ..config.clone()
                },
            )
            .unwrap()
        })
    };
    let (a, ra) = train("mlp", &x, &target, &config).unwrap();
    let (b, rb) = train("mlp", &x, &target, &config).unwrap();
    assert_eq!(weight_bits(&a), weight_bits(&b));
    assert_eq!(ra.loss.to_bits(), rb.loss.to_bits());
    let (c, _) = run(1, config.seed);
    let (d, _) = run(2, config.seed);
    assert_eq!(weight_bits(&a), weight_bits(&c));
    assert_eq!(weight_bits(&c), weight_bits(&d));
    assert_eq!(a.predict(&x), d.predict(&x));
    let (e, _) = run(2, config.seed + 1);
    assert_ne!(weight_bits(&a), weight_bits(&e));
}

/// Compare the analytic gradient with central finite differences.
fn check_gradient(model: &Mlp, x: &Design, y: &MlpTarget, rows: &[usize], l2: f64) {
    let (loss, grad) = model.loss_and_gradient(x, y, rows, l2);
    assert!(loss.is_finite());
    assert_eq!(grad.len(), model.layers.len());
    let h = 1e-6;
    let loss_at = |m: &Mlp| m.loss_and_gradient(x, y, rows, l2).0;
    for (l, g) in grad.iter().enumerate() {
        let layer: &DenseLayer = &model.layers[l];
        assert_eq!(
            (g.inputs, g.outputs, g.weights.len(), g.bias.len()),
            (
                layer.inputs,
                layer.outputs,
                layer.weights.len(),
                layer.bias.len()
            )
        );
        for bias in [false, true] {
            let analytic = if bias { &g.bias } else { &g.weights };
            for (i, &a) in analytic.iter().enumerate() {
                let mut plus = model.clone();
                let mut minus = model.clone();
                if bias {
                    plus.layers[l].bias[i] += h;
                    minus.layers[l].bias[i] -= h;
                } else {
                    plus.layers[l].weights[i] += h;
                    minus.layers[l].weights[i] -= h;
                }
                let n = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
                assert!(
                    (a - n).abs() <= 1e-5 * f64::max(1.0, a.abs() + n.abs()),
                    "layer {l} {} {i}: analytic {a}, numeric {n}",
                    if bias { "bias" } else { "weight" }
                );
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = Rng::new(4);
    let n = 12;
    let x = design(
        (0..3)
            .map(|_| (0..n).map(|_| rng.normal()).collect())
            .collect(),
    );
    let values: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let binary: Vec<u32> = (0..n).map(|r| (r % 2) as u32).collect();
    let multi: Vec<u32> = (0..n).map(|r| (r % 3) as u32).collect();
    let targets = [
        MlpTarget::Regression(&values),
        MlpTarget::Classes {
            index: &binary,
            classes: 2,
        },
        MlpTarget::Classes {
            index: &multi,
            classes: 3,
        },
    ];
    let rows: Vec<usize> = vec![0, 2, 3, 5, 7, 8, 11, 3];
    for target in &targets {
        for activation in [Activation::Tanh, Activation::Relu] {
            for hidden in [vec![], vec![4, 3]] {
                let config = MlpConfig {
                    hidden,
                    activation,
                    epochs: 1,
                    batch_size: 4,
                    learning_rate: 0.05,
                    l2: 0.0,
                    seed: 1,
                };
                let (mut model, _) = train("grad", &x, target, &config).unwrap();
                // Non-zero biases so every path is exercised.
                for layer in &mut model.layers {
                    for (i, b) in layer.bias.iter_mut().enumerate() {
                        *b += 0.1 * (i as f64 - 1.0);
                    }
                }
                check_gradient(&model, &x, target, &rows, 0.03);
                check_gradient(&model, &x, target, &rows, 0.0);
            }
        }
    }
}

#[test]
fn l2_applies_to_weights_only() {
    let (x, y) = xor_data(40, 1);
    let target = MlpTarget::Classes {
        index: &y,
        classes: 2,
    };
    let config = MlpConfig {
        hidden: vec![3],
        epochs: 1,
        ..MlpConfig::default()
    };
    let (model, _) = train("l2", &x, &target, &config).unwrap();
    let rows: Vec<usize> = (0..40).collect();
    let (l0, g0) = model.loss_and_gradient(&x, &target, &rows, 0.0);
    let (l1, g1) = model.loss_and_gradient(&x, &target, &rows, 0.5);
    let sq: f64 = model
        .layers
        .iter()
        .flat_map(|l| &l.weights)
        .map(|w| w * w)
        .sum();
    assert!((l1 - l0 - 0.25 * sq).abs() < 1e-12);
    for ((a, b), layer) in g0.iter().zip(&g1).zip(&model.layers) {
        assert_eq!(a.bias, b.bias);
        for ((wa, wb), w) in a.weights.iter().zip(&b.weights).zip(&layer.weights) {
            assert!((wb - wa - 0.5 * w).abs() < 1e-12);
        }
    }
}

fn invalid_message(result: fuseflow::Result<(Mlp, TrainReport)>) -> String {
    match result {
        Err(Error::InvalidParameter { step, message }) => {
            assert_eq!(step, "net");
            message
        }
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn invalid_configs_name_the_parameter() {
    let (x, y) = xor_data(20, 1);
    let target = MlpTarget::Classes {
        index: &y,
        classes: 2,
    };
    let base = MlpConfig::default();
    let cases: Vec<(MlpConfig, &str)> = vec![
        (
            MlpConfig {
                hidden: vec![4, 0],
                ..base.clone()
            },
            "hidden",
        ),
        (
            MlpConfig {
                epochs: 0,
                ..base.clone()
            },
            "epochs",
        ),
        (
            MlpConfig {
                batch_size: 0,
                ..base.clone()
            },
            "batch_size",
        ),
        (
            MlpConfig {
                learning_rate: 0.0,
                ..base.clone()
            },
            "learning_rate",
        ),
        (
            MlpConfig {
                learning_rate: -1.0,
                ..base.clone()
            },
            "learning_rate",
        ),
        (
            MlpConfig {
                learning_rate: f64::NAN,
                ..base.clone()
            },
            "learning_rate",
        ),
        (
            MlpConfig {
                learning_rate: f64::INFINITY,
                ..base.clone()
            },
            "learning_rate",
        ),
        (
            MlpConfig {
                l2: -1e-3,
                ..base.clone()
            },
            "l2",
        ),
        (
            MlpConfig {
                l2: f64::NAN,
                ..base.clone()
            },
            "l2",
        ),
    ];
    for (config, name) in cases {
        let message = invalid_message(train("net", &x, &target, &config));
        assert!(message.contains(name), "{name}: {message}");
    }
    // Empty hidden is fine: a logistic model.
    let (model, _) = train(
        "net",
        &x,
        &target,
        &MlpConfig {
            hidden: vec![],
            epochs: 1,
            ..base.clone()
        },
    )
    .unwrap();
    assert_eq!(model.layers.len(), 1);
}

#[test]
fn invalid_targets_are_rejected() {
    let (x, y) = xor_data(20, 1);
    let config = MlpConfig {
        epochs: 1,
        ..MlpConfig::default()
    };
    let mut values: Vec<f64> = (0..20).map(f64::from).collect();
    values[3] = f64::NAN;
    values[9] = f64::INFINITY;
    let message = invalid_message(train("net", &x, &MlpTarget::Regression(&values), &config));
    assert!(message.contains("2 NaN or infinite"), "{message}");
    let message = invalid_message(train(
        "net",
        &x,
        &MlpTarget::Regression(&values[..10]),
        &config,
    ));
    assert!(message.contains("10 values"), "{message}");
    let message = invalid_message(train(
        "net",
        &x,
        &MlpTarget::Classes {
            index: &y,
            classes: 1,
        },
        &config,
    ));
    assert!(message.contains("classes"), "{message}");
    let mut bad = y.clone();
    bad[4] = 5;
    let message = invalid_message(train(
        "net",
        &x,
        &MlpTarget::Classes {
            index: &bad,
            classes: 3,
        },
        &config,
    ));
    assert!(message.contains("row 4"), "{message}");
    let mut nan_x = x.clone();
    nan_x.x[25] = f64::NAN;
    match train(
        "net",
        &nan_x,
        &MlpTarget::Classes {
            index: &y,
            classes: 2,
        },
        &config,
    ) {
        Err(Error::Schema { column, .. }) => assert_eq!(column, "f1"),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

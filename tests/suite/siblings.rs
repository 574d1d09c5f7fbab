//! Sibling logistic fits: several settings trained together, one pass over
//! the data per evaluation for all of them and one Hessian for the siblings
//! near one another, each reaching the optimum it reaches alone, and a
//! sibling that fails or stops early leaving the others to finish.
//!
//! Tolerance: both fits stop on the exact gradient (mean, largest component,
//! below 1e-10), so their parameters agree within that over the objective's
//! smallest curvature: 1e-7 on these well-conditioned data (curvature above
//! 0.01).

use fuseflow::data::Rng;
use fuseflow::ml::logistic::{self, LogisticConfig};

use crate::models::design;

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
        let together = logistic::fit_siblings("m", &x, &y, classes, &configs);
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
    assert!(logistic::fit_siblings("m", &design(&refs), &y, 2, &[]).is_empty());
}

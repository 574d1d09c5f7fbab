//! Linear regression by least squares with optional L2 (ridge), solved exactly.
//!
//! Minimizes `sum_i (y_i - b - w . x_i)^2 + l2 * |w|^2` (the intercept `b` is not
//! penalized, as scikit-learn's `Ridge`). Features and target are centred,
//! the centred normal equations `(X'X + l2 I) w = X'y` are accumulated in f64
//! in one parallel pass and solved by Cholesky; then `b = mean(y) - w . mean(x)`.

use super::design::Design;
use super::gram::weighted_gram;
use super::linalg::cholesky_solve;
use super::pass::{add_into, dot, fold_blocks, symmetrize};
use crate::error::{Error, Result};

/// A fitted linear model: `y = intercept + weights . x`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearFit {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// Mean squared error on the training rows.
    pub mse: f64,
}

/// Fit by least squares.
///
/// # Errors
/// [`Error::InvalidParameter`] for a negative or non-finite `l2`, or when the
/// features are collinear and `l2` is zero (with what to do).
pub fn fit(step: &str, x: &Design, y: &[f64], l2: f64) -> Result<LinearFit> {
    if !(l2 >= 0.0 && l2.is_finite()) {
        return Err(Error::InvalidParameter {
            step: step.into(),
            message: format!("l2 must be a finite number >= 0, got {l2}"),
        });
    }
    let (n, d) = (x.rows, x.width());
    let x_mean: Vec<f64> = (0..d)
        .map(|j| x.column(j).iter().sum::<f64>() / n as f64)
        .collect();
    let y_mean = y.iter().sum::<f64>() / n as f64;
    let centred: Vec<Vec<f64>> = (0..d)
        .map(|j| x.column(j).iter().map(|v| v - x_mean[j]).collect())
        .collect();
    let yc: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
    let cols: Vec<&[f64]> = centred.iter().map(Vec::as_slice).collect();

    // One pass: Gram matrix and X'y, per block, combined in block order.
    let sums = fold_blocks(
        n,
        |range| {
            let mut part = weighted_gram(&cols, None, range.clone());
            part.extend(
                cols.iter()
                    .map(|c| dot(&c[range.clone()], &yc[range.clone()])),
            );
            part
        },
        add_into,
        Vec::new(),
    );
    let (mut gram, xty) = (sums[..d * d].to_vec(), &sums[d * d..]);
    symmetrize(&mut gram, d);
    for j in 0..d {
        gram[j * d + j] += l2;
    }
    let weights = cholesky_solve(&gram, xty, d).ok_or_else(|| Error::InvalidParameter {
        step: step.into(),
        message: "the features are linearly dependent (or constant), so least squares has no unique solution; drop redundant features or set l2 > 0".into(),
    })?;
    let intercept = y_mean - dot(&weights, &x_mean);
    let mse = fold_blocks(
        n,
        |range| {
            range
                .map(|i| {
                    let pred: f64 =
                        intercept + (0..d).map(|j| weights[j] * x.column(j)[i]).sum::<f64>();
                    (y[i] - pred).powi(2)
                })
                .sum::<f64>()
        },
        |a, b| *a += b,
        0.0,
    ) / n as f64;
    Ok(LinearFit {
        weights,
        intercept,
        mse,
    })
}

//! Evaluation metrics: pure functions over slices.
//!
//! Classification labels are class indices (`&[u32]`, `0..classes`), scores,
//! probabilities and regression targets are `f64`. Every function takes the
//! name of the calling step first and returns [`Error::InvalidParameter`]
//! naming that step when its input is empty, when two slices that should have
//! one value per row differ in length, or when a value is out of range.
//!
//! Sums are accumulated in f64 in row order (one sequential pass), so a
//! metric is bit-for-bit reproducible for a given input. Counts are kept as
//! integers and divided once at the end.
//!
//! Conventions follow scikit-learn where there is a choice: a ratio whose
//! denominator is zero is 0.0 (its `zero_division=0`), log-loss clips
//! probabilities to `[1e-15, 1 - 1e-15]`, and R² of a constant target is 1.0
//! for a perfect prediction and 0.0 otherwise.

use crate::error::{Error, Result};

/// Probabilities are clipped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` before the
/// logarithm in [`log_loss`] and [`binary_log_loss`] (scikit-learn's former
/// default `eps=1e-15`), so a confident wrong prediction costs
/// `-ln(1e-15) ≈ 34.54` instead of infinity.
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// How far a row of class probabilities may sum away from 1 in [`log_loss`].
const ROW_SUM_TOLERANCE: f64 = 1e-6;

/// Precision, recall, F1 and support of one class (or their macro average).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassScores {
    /// `TP / (TP + FP)`: of the rows predicted as this class, the fraction
    /// that truly are; 0.0 when nothing was predicted as this class.
    pub precision: f64,
    /// `TP / (TP + FN)`: of the rows truly in this class, the fraction
    /// predicted as it; 0.0 when the class has no rows.
    pub recall: f64,
    /// `2·TP / (2·TP + FP + FN)`, the harmonic mean of precision and recall;
    /// 0.0 when the class was neither present nor predicted.
    pub f1: f64,
    /// Number of rows whose true class is this class (`TP + FN`).
    pub support: u64,
}

// ================================================================ checks

fn invalid(step: &str, message: String) -> Error {
    Error::InvalidParameter {
        step: step.to_string(),
        message,
    }
}

/// Both slices non-empty and of equal length.
fn check_rows(step: &str, metric: &str, a: (&str, usize), b: (&str, usize)) -> Result<usize> {
    if a.1 == 0 || b.1 == 0 {
        let empty = if a.1 == 0 { a.0 } else { b.0 };
        return Err(invalid(
            step,
            format!("{metric}: {empty} is empty; a metric needs at least one row"),
        ));
    }
    if a.1 != b.1 {
        return Err(invalid(
            step,
            format!(
                "{metric}: {} has {} but {} has {}; pass exactly one {} per row",
                a.0,
                rows(a.1),
                b.0,
                rows(b.1),
                b.0
            ),
        ));
    }
    Ok(a.1)
}

/// "1 row", "2 rows".
fn rows(n: usize) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

/// True and predicted class labels of the same non-zero length, all in
/// `0..classes`.
fn check_class_pairs(
    step: &str,
    metric: &str,
    y_true: &[u32],
    y_pred: &[u32],
    classes: usize,
) -> Result<()> {
    check_rows(
        step,
        metric,
        ("y_true", y_true.len()),
        ("y_pred", y_pred.len()),
    )?;
    check_labels(step, metric, "y_true", y_true, classes)?;
    check_labels(step, metric, "y_pred", y_pred, classes)
}

/// `classes` is at least 1 and every label is below it.
fn check_labels(
    step: &str,
    metric: &str,
    name: &str,
    labels: &[u32],
    classes: usize,
) -> Result<()> {
    if classes == 0 {
        return Err(invalid(
            step,
            format!("{metric}: classes is 0; pass the number of classes (at least 1)"),
        ));
    }
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes)
    {
        return Err(invalid(
            step,
            format!(
                "{metric}: {name}[{i}] is class {l}, but there are only {classes} classes (0..{}); \
                 labels must be class indices below `classes`",
                classes - 1
            ),
        ));
    }
    Ok(())
}

/// Every label is 0 or 1.
fn check_binary(step: &str, metric: &str, labels: &[u32]) -> Result<()> {
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l > 1) {
        return Err(invalid(
            step,
            format!(
                "{metric}: y_true[{i}] is {l}, but binary labels must be 0 (negative) or 1 (positive)"
            ),
        ));
    }
    Ok(())
}

/// Every probability is a number in `[0, 1]`.
fn check_probabilities(step: &str, metric: &str, name: &str, p: &[f64]) -> Result<()> {
    if let Some((i, &v)) = p
        .iter()
        .enumerate()
        .find(|&(_, &v)| !(0.0..=1.0).contains(&v))
    {
        return Err(invalid(
            step,
            format!("{metric}: {name}[{i}] is {v}; probabilities must be numbers in [0, 1]"),
        ));
    }
    Ok(())
}

/// Every value is finite.
fn check_finite(step: &str, metric: &str, name: &str, v: &[f64]) -> Result<()> {
    if let Some((i, &x)) = v.iter().enumerate().find(|&(_, &x)| !x.is_finite()) {
        return Err(invalid(
            step,
            format!(
                "{metric}: {name}[{i}] is {x}; regression metrics need finite values, \
                 filter or fill NaN and infinite rows first"
            ),
        ));
    }
    Ok(())
}

/// `num / den`, or 0.0 when `den` is 0.
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

// ================================================================ classification

/// Fraction of rows whose predicted class equals the true class:
/// `#{i : y_pred[i] == y_true[i]} / n`.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when either slice is empty or
/// their lengths differ.
pub fn accuracy(step: &str, y_true: &[u32], y_pred: &[u32]) -> Result<f64> {
    let n = check_rows(
        step,
        "accuracy",
        ("y_true", y_true.len()),
        ("y_pred", y_pred.len()),
    )?;
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / n as f64)
}

/// Confusion matrix `m` with `classes` rows and `classes` columns, where
/// `m[t][p]` is the number of rows with true class `t` predicted as class `p`
/// (rows = true class, columns = predicted class, as scikit-learn).
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when either slice is empty,
/// their lengths differ, `classes` is 0, or a label is `>= classes`.
pub fn confusion_matrix(
    step: &str,
    y_true: &[u32],
    y_pred: &[u32],
    classes: usize,
) -> Result<Vec<Vec<u64>>> {
    check_class_pairs(step, "confusion_matrix", y_true, y_pred, classes)?;
    Ok(counts(y_true, y_pred, classes))
}

/// The confusion matrix of already checked labels.
fn counts(y_true: &[u32], y_pred: &[u32], classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; classes]; classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        m[t as usize][p as usize] += 1;
    }
    m
}

/// Per-class precision, recall, F1 and support for classes `0..classes`
/// (one entry per class, in class order, including classes that never occur).
///
/// For class `k`, with `TP` = rows with true and predicted class `k`, `FP` =
/// rows predicted `k` whose true class is not `k`, and `FN` = rows of true
/// class `k` predicted as another class:
/// - precision = `TP / (TP + FP)`,
/// - recall = `TP / (TP + FN)`,
/// - F1 = `2·TP / (2·TP + FP + FN)` (equal to `2PR / (P + R)`),
/// - support = `TP + FN`,
///
/// each ratio being 0.0 when its denominator is 0 (scikit-learn's
/// `zero_division=0`).
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when either slice is empty,
/// their lengths differ, `classes` is 0, or a label is `>= classes`.
pub fn precision_recall_f1(
    step: &str,
    y_true: &[u32],
    y_pred: &[u32],
    classes: usize,
) -> Result<Vec<ClassScores>> {
    check_class_pairs(step, "precision_recall_f1", y_true, y_pred, classes)?;
    let m = counts(y_true, y_pred, classes);
    let scores = (0..classes)
        .map(|k| {
            let tp = m[k][k];
            let support: u64 = m[k].iter().sum();
            let predicted: u64 = m.iter().map(|row| row[k]).sum();
            ClassScores {
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                f1: ratio(2 * tp, predicted + support),
                support,
            }
        })
        .collect();
    Ok(scores)
}

/// Macro average of per-class scores: the unweighted mean over the given
/// classes of precision, of recall and of F1 (so the F1 is the mean of the
/// per-class F1s, as scikit-learn's `average="macro"`, not the F1 of the
/// mean precision and recall), summed in class order; `support` is the total
/// support. Every class counts equally, including classes with no rows.
///
/// An empty slice gives all-zero scores.
pub fn macro_average(scores: &[ClassScores]) -> ClassScores {
    if scores.is_empty() {
        return ClassScores {
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
            support: 0,
        };
    }
    let n = scores.len() as f64;
    let (mut p, mut r, mut f, mut support) = (0.0f64, 0.0f64, 0.0f64, 0u64);
    for s in scores {
        p += s.precision;
        r += s.recall;
        f += s.f1;
        support += s.support;
    }
    ClassScores {
        precision: p / n,
        recall: r / n,
        f1: f / n,
        support,
    }
}

/// Multi-class log-loss (cross-entropy):
/// `(1/n) · Σ_i −ln(clip(P[i][y_true[i]]))`, where `P[i][k] =
/// probabilities[i * classes + k]` (row-major, `n` rows by `classes` columns)
/// and `clip(p) = min(max(p, 1e-15), 1 − 1e-15)` ([`LOG_LOSS_EPS`]).
///
/// Rows are not renormalized; each must already sum to 1 (within 1e-6).
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when `y_true` is empty,
/// `classes` is 0, a label is `>= classes`, `probabilities` does not hold
/// `y_true.len() * classes` values, a probability is NaN or outside
/// `[0, 1]`, or a row does not sum to 1.
pub fn log_loss(step: &str, y_true: &[u32], probabilities: &[f64], classes: usize) -> Result<f64> {
    let metric = "log_loss";
    if y_true.is_empty() {
        return Err(invalid(
            step,
            format!("{metric}: y_true is empty; a metric needs at least one row"),
        ));
    }
    check_labels(step, metric, "y_true", y_true, classes)?;
    let n = y_true.len();
    if n.checked_mul(classes) != Some(probabilities.len()) {
        return Err(invalid(
            step,
            format!(
                "{metric}: probabilities has {} values but y_true has {} and there are {classes} classes; \
                 pass {n} x {classes} probabilities, row-major (one row of class probabilities per row)",
                probabilities.len(),
                rows(n)
            ),
        ));
    }
    check_probabilities(step, metric, "probabilities", probabilities)?;
    let mut total = 0.0f64;
    for (i, (row, &t)) in probabilities.chunks_exact(classes).zip(y_true).enumerate() {
        let sum: f64 = row.iter().sum();
        if (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
            return Err(invalid(
                step,
                format!(
                    "{metric}: the probabilities of row {i} sum to {sum}, not 1; pass normalized class \
                     probabilities, row-major (row {i} is probabilities[{}..{}])",
                    i * classes,
                    (i + 1) * classes
                ),
            ));
        }
        total -= clip(row[t as usize]).ln();
    }
    Ok(total / n as f64)
}

/// Binary log-loss: `(1/n) · Σ_i −ln(clip(p_i))` where `p_i = p1[i]` (the
/// predicted probability of class 1) when `y_true[i] == 1` and `p_i = 1 −
/// p1[i]` when `y_true[i] == 0`, with `clip(p) = min(max(p, 1e-15), 1 −
/// 1e-15)` ([`LOG_LOSS_EPS`]).
///
/// This is [`log_loss`] with two classes and rows `[1 − p1[i], p1[i]]`: the
/// probability of the true class is clipped, so `y = 0` with `p1 = 1` costs
/// exactly `−ln(1e-15)`, as `y = 1` with `p1 = 0` does.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when either slice is empty,
/// their lengths differ, a label is not 0 or 1, or a probability is NaN or
/// outside `[0, 1]`.
pub fn binary_log_loss(step: &str, y_true: &[u32], p1: &[f64]) -> Result<f64> {
    let metric = "binary_log_loss";
    let n = check_rows(step, metric, ("y_true", y_true.len()), ("p1", p1.len()))?;
    check_binary(step, metric, y_true)?;
    check_probabilities(step, metric, "p1", p1)?;
    let mut total = 0.0f64;
    for (&y, &p) in y_true.iter().zip(p1) {
        let p_true = if y == 1 { p } else { 1.0 - p };
        total -= clip(p_true).ln();
    }
    Ok(total / n as f64)
}

fn clip(p: f64) -> f64 {
    p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
}

/// Exact area under the ROC curve of binary labels (1 = positive) and scores
/// (higher = more positive), with ties handled.
///
/// Rank all rows by score (1 = lowest), giving tied scores the average of
/// their ranks; with `P` positives, `N` negatives and `R` the sum of the
/// positives' ranks, `AUC = (R − P(P+1)/2) / (P·N)` (the Mann–Whitney U over
/// `P·N`). Equivalently, AUC is the fraction of (positive, negative) pairs
/// where the positive scores higher, a tied pair counting 1/2. It is computed
/// in O(n log n) by sorting with [`f64::total_cmp`] and counting exactly in
/// integers, with one division at the end; `-0.0` and `0.0` count as tied,
/// and infinite scores are ordinary values.
///
/// Returns `Ok(None)` when only one class is present (AUC is undefined).
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when either slice is empty,
/// their lengths differ, a label is not 0 or 1, or a score is NaN.
pub fn roc_auc(step: &str, y_true: &[u32], score: &[f64]) -> Result<Option<f64>> {
    let metric = "roc_auc";
    check_rows(
        step,
        metric,
        ("y_true", y_true.len()),
        ("score", score.len()),
    )?;
    check_binary(step, metric, y_true)?;
    if let Some(i) = score.iter().position(|s| s.is_nan()) {
        return Err(invalid(
            step,
            format!(
                "{metric}: score[{i}] is NaN; scores must be numbers, filter or fill NaN rows first"
            ),
        ));
    }
    let positives = y_true.iter().filter(|&&y| y == 1).count() as u128;
    let negatives = y_true.len() as u128 - positives;
    if positives == 0 || negatives == 0 {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_unstable_by(|&a, &b| score[a].total_cmp(&score[b]));
    // Twice the Mann–Whitney U: each positive gains 2 per negative scored
    // strictly below it and 1 per negative tied with it.
    let mut u2: u128 = 0;
    let mut negatives_below: u128 = 0;
    let mut start = 0;
    while start < order.len() {
        let value = score[order[start]];
        let mut end = start;
        let (mut pos, mut neg) = (0u128, 0u128);
        while end < order.len() && score[order[end]] == value {
            if y_true[order[end]] == 1 {
                pos += 1;
            } else {
                neg += 1;
            }
            end += 1;
        }
        u2 += pos * (2 * negatives_below + neg);
        negatives_below += neg;
        start = end;
    }
    Ok(Some(u2 as f64 / (2 * positives * negatives) as f64))
}

// ================================================================ regression

/// Checked inputs of a regression metric.
fn regression_rows(step: &str, metric: &str, y_true: &[f64], y_pred: &[f64]) -> Result<usize> {
    let n = check_rows(
        step,
        metric,
        ("y_true", y_true.len()),
        ("y_pred", y_pred.len()),
    )?;
    check_finite(step, metric, "y_true", y_true)?;
    check_finite(step, metric, "y_pred", y_pred)?;
    Ok(n)
}

/// Root mean squared error: `sqrt((1/n) · Σ_i (y_true[i] − y_pred[i])²)`.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when either slice is empty,
/// their lengths differ, or a value is NaN or infinite.
pub fn rmse(step: &str, y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    let n = regression_rows(step, "rmse", y_true, y_pred)?;
    Ok((squared_error(y_true, y_pred) / n as f64).sqrt())
}

/// Mean absolute error: `(1/n) · Σ_i |y_true[i] − y_pred[i]|`.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when either slice is empty,
/// their lengths differ, or a value is NaN or infinite.
pub fn mae(step: &str, y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    let n = regression_rows(step, "mae", y_true, y_pred)?;
    let mut total = 0.0f64;
    for (&t, &p) in y_true.iter().zip(y_pred) {
        total += (t - p).abs();
    }
    Ok(total / n as f64)
}

/// Coefficient of determination: `R² = 1 − SS_res / SS_tot` with
/// `SS_res = Σ_i (y_true[i] − y_pred[i])²`, `SS_tot = Σ_i (y_true[i] − ȳ)²`
/// and `ȳ` the mean of `y_true`.
///
/// When `y_true` is constant (all values equal, including a single row),
/// `SS_tot` is taken as exactly 0 and R² is 1.0 if `SS_res` is 0 and 0.0
/// otherwise (scikit-learn's `force_finite=True`). R² can be negative: a
/// prediction worse than the constant `ȳ`.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `step` when either slice is empty,
/// their lengths differ, or a value is NaN or infinite.
pub fn r2(step: &str, y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    let n = regression_rows(step, "r2", y_true, y_pred)?;
    let ss_res = squared_error(y_true, y_pred);
    // Compare values rather than testing the rounded SS_tot: the mean of a
    // constant column need not round back to that constant.
    let constant = y_true.iter().all(|&t| t == y_true[0]);
    if constant {
        return Ok(if ss_res == 0.0 { 1.0 } else { 0.0 });
    }
    let mut sum = 0.0f64;
    for &t in y_true {
        sum += t;
    }
    let mean = sum / n as f64;
    let mut ss_tot = 0.0f64;
    for &t in y_true {
        ss_tot += (t - mean) * (t - mean);
    }
    if ss_tot == 0.0 {
        // Distinct values so close together that their squares underflow.
        return Ok(if ss_res == 0.0 { 1.0 } else { 0.0 });
    }
    Ok(1.0 - ss_res / ss_tot)
}

/// `Σ_i (y_true[i] − y_pred[i])²`, in row order.
fn squared_error(y_true: &[f64], y_pred: &[f64]) -> f64 {
    let mut total = 0.0f64;
    for (&t, &p) in y_true.iter().zip(y_pred) {
        total += (t - p) * (t - p);
    }
    total
}

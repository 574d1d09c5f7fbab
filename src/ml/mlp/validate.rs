//! Checks of the settings and the data before training starts.

use crate::error::{Error, Result};
use crate::ml::design::Design;

use super::{Head, Labels, MlpConfig, MlpTarget};

pub(super) fn invalid(step: &str, message: String) -> Error {
    Error::InvalidParameter {
        step: step.into(),
        message,
    }
}

pub(super) fn validate_config(step: &str, config: &MlpConfig) -> Result<()> {
    if let Some(i) = config.hidden.iter().position(|&h| h == 0) {
        return Err(invalid(
            step,
            format!(
                "hidden[{i}] is 0: every hidden layer needs at least one unit (use an empty `hidden` list for a linear model)"
            ),
        ));
    }
    if config.epochs == 0 {
        return Err(invalid(step, "epochs must be at least 1, got 0".into()));
    }
    if config.batch_size == 0 {
        return Err(invalid(step, "batch_size must be at least 1, got 0".into()));
    }
    let lr = config.learning_rate;
    if !(lr.is_finite() && lr > 0.0) {
        return Err(invalid(
            step,
            format!("learning_rate must be a finite number > 0, got {lr}; try 1e-3"),
        ));
    }
    let l2 = config.l2;
    if !(l2.is_finite() && l2 >= 0.0) {
        return Err(invalid(
            step,
            format!("l2 must be a finite number >= 0, got {l2}"),
        ));
    }
    Ok(())
}

/// Check the design and target; returns the labels, head and output width.
pub(super) fn validate_data<'a>(
    step: &str,
    x: &Design,
    y: &MlpTarget<'a>,
) -> Result<(Labels<'a>, Head, usize)> {
    let rows = x.rows;
    if rows == 0 {
        return Err(invalid(step, "the training data has no rows".into()));
    }
    if x.width() == 0 {
        return Err(invalid(
            step,
            "no feature columns given; list at least one".into(),
        ));
    }
    check_design(step, x)?;
    let target_len = match y {
        MlpTarget::Regression(v) => v.len(),
        MlpTarget::Classes { index, .. } => index.len(),
    };
    if target_len != rows {
        return Err(invalid(
            step,
            format!("the target has {target_len} values but the features have {rows} rows"),
        ));
    }
    target_head(step, rows, y)
}

/// The design's size agrees with its shape, and every value is finite.
fn check_design(step: &str, x: &Design) -> Result<()> {
    let rows = x.rows;
    if x.x.len() != rows * x.width() {
        return Err(invalid(
            step,
            format!(
                "the design holds {} values, but {rows} rows x {} features need {}",
                x.x.len(),
                x.width(),
                rows * x.width()
            ),
        ));
    }
    for (j, name) in x.features.iter().enumerate() {
        let bad = x.column(j).iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::Schema {
                step: step.into(),
                column: name.clone(),
                message: format!(
                    "{bad} of {rows} rows are NaN or infinite; replace or filter them before training"
                ),
            });
        }
    }
    Ok(())
}

/// The labels, head and output width a valid target implies.
fn target_head<'a>(
    step: &str,
    rows: usize,
    y: &MlpTarget<'a>,
) -> Result<(Labels<'a>, Head, usize)> {
    match *y {
        MlpTarget::Regression(values) => {
            let bad = values.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(invalid(
                    step,
                    format!(
                        "the regression target has {bad} NaN or infinite values of {rows}; filter those rows before training"
                    ),
                ));
            }
            Ok((Labels::Values(values), Head::Identity, 1))
        }
        MlpTarget::Classes { index, classes } => {
            if classes < 2 {
                return Err(invalid(
                    step,
                    format!("classes must be at least 2 to train a classifier, got {classes}"),
                ));
            }
            if let Some((row, &c)) = index
                .iter()
                .enumerate()
                .find(|&(_, &c)| c as usize >= classes)
            {
                return Err(invalid(
                    step,
                    format!("class index {c} at row {row} is out of range for {classes} classes"),
                ));
            }
            if classes == 2 {
                Ok((Labels::Binary(index), Head::Sigmoid, 1))
            } else {
                Ok((Labels::Multi(index), Head::Softmax, classes))
            }
        }
    }
}

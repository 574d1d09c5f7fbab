//! Training data as dense matrices: feature columns and labels pulled out of a
//! [`Table`] once, checked, and laid out for the training passes.

use arrow_array::{Array, ArrayRef, cast::AsArray, types};
use arrow_schema::DataType;

use crate::data::Table;
use crate::error::{Error, Result};
use crate::ir::ops::Native;

/// Feature values of a training table, column-major in f64.
///
/// Column `j` holds `rows` values at `x[j * rows..(j + 1) * rows]`. Values are
/// widened to f64 once, so every pass accumulates in f64 whatever the input type.
#[derive(Clone, Debug)]
pub struct Design {
    /// Number of rows.
    pub rows: usize,
    /// Feature names, in column order.
    pub features: Vec<String>,
    /// Column-major values.
    pub x: Vec<f64>,
}

impl Design {
    /// Pull `features` out of `table`.
    ///
    /// # Errors
    /// [`Error::Schema`] naming `step` and the column when a feature is missing,
    /// not numeric or boolean, has nulls, or has NaN or infinite values (with
    /// how many rows), and [`Error::InvalidParameter`] when there are no rows
    /// or no features.
    pub fn from_table(step: &str, table: &Table, features: &[String]) -> Result<Design> {
        let rows = table.num_rows();
        if features.is_empty() {
            return Err(Error::InvalidParameter {
                step: step.into(),
                message: "no feature columns given; list at least one".into(),
            });
        }
        if rows == 0 {
            return Err(Error::InvalidParameter {
                step: step.into(),
                message: "the training data has no rows".into(),
            });
        }
        let mut x = Vec::with_capacity(rows * features.len());
        for name in features {
            let chunks = table.column(step, name)?;
            let start = x.len();
            for chunk in &chunks {
                extend_f64(step, name, chunk, &mut x)?;
            }
            let nulls: usize = chunks.iter().map(|c| c.null_count()).sum();
            let bad = x[start..].iter().filter(|v| !v.is_finite()).count();
            let problem = if nulls > 0 {
                Some(format!(
                    "{nulls} of {rows} rows are null; fill or filter them before training"
                ))
            } else if bad > 0 {
                Some(format!(
                    "{bad} of {rows} rows are NaN or infinite; replace or filter them before training"
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                return Err(Error::Schema {
                    step: step.into(),
                    column: name.clone(),
                    message,
                });
            }
        }
        Ok(Design {
            rows,
            features: features.to_vec(),
            x,
        })
    }

    /// Number of feature columns.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// The values of feature `j`.
    pub fn column(&self, j: usize) -> &[f64] {
        &self.x[j * self.rows..(j + 1) * self.rows]
    }
}

/// Append a numeric or boolean column as f64 (null slots become NaN).
fn extend_f64(step: &str, name: &str, array: &ArrayRef, out: &mut Vec<f64>) -> Result<()> {
    fn prim<T: arrow_array::ArrowPrimitiveType>(array: &ArrayRef, out: &mut Vec<f64>)
    where
        T::Native: Native,
    {
        let a = array.as_primitive::<T>();
        out.extend(a.iter().map(|v| v.map_or(f64::NAN, Native::to_f64)));
    }
    match array.data_type() {
        DataType::Float32 => prim::<types::Float32Type>(array, out),
        DataType::Float64 => prim::<types::Float64Type>(array, out),
        DataType::Int32 => prim::<types::Int32Type>(array, out),
        DataType::Int64 => prim::<types::Int64Type>(array, out),
        DataType::Boolean => out.extend(
            array
                .as_boolean()
                .iter()
                .map(|v| v.map_or(f64::NAN, |b| f64::from(u8::from(b)))),
        ),
        other => {
            return Err(Error::Schema {
                step: step.into(),
                column: name.into(),
                message: format!(
                    "features must be numeric or bool, found {other}; encode categoricals first"
                ),
            });
        }
    }
    Ok(())
}

/// A regression target: one f64 per row.
///
/// # Errors
/// [`Error::Schema`] when the label column is missing, not numeric, or has
/// nulls or non-finite values (with how many).
pub fn regression_target(step: &str, table: &Table, label: &str) -> Result<Vec<f64>> {
    let design =
        Design::from_table(step, table, &[label.to_string()]).map_err(|e| relabel(e, "label"))?;
    Ok(design.x)
}

/// Class labels: the sorted distinct label values (as text) and each row's class index.
#[derive(Clone, Debug)]
pub struct Classes {
    /// Class names, sorted (`false` < `true` for booleans; numeric order for integers).
    pub names: Vec<String>,
    /// Class index of each row.
    pub index: Vec<u32>,
}

/// Class labels from a bool, integer or utf8 column.
///
/// # Errors
/// [`Error::Schema`] when the label column is missing, has nulls, has another
/// type, or holds fewer than two classes.
pub fn class_target(step: &str, table: &Table, label: &str) -> Result<Classes> {
    let chunks = table.column(step, label)?;
    let schema_error = |message: String| Error::Schema {
        step: step.into(),
        column: label.into(),
        message,
    };
    let nulls: usize = chunks.iter().map(|c| c.null_count()).sum();
    if nulls > 0 {
        return Err(schema_error(format!(
            "{nulls} of {} labels are null; filter those rows before training",
            table.num_rows()
        )));
    }
    // Keys sort in the class order: integers numerically, strings lexically.
    let mut keys: Vec<(i128, String)> = Vec::with_capacity(table.num_rows());
    for chunk in &chunks {
        match chunk.data_type() {
            DataType::Boolean => keys.extend(
                chunk
                    .as_boolean()
                    .iter()
                    .flatten()
                    .map(|b| (i128::from(b), b.to_string())),
            ),
            DataType::Int32 => keys.extend(
                chunk
                    .as_primitive::<types::Int32Type>()
                    .values()
                    .iter()
                    .map(|&v| (i128::from(v), v.to_string())),
            ),
            DataType::Int64 => keys.extend(
                chunk
                    .as_primitive::<types::Int64Type>()
                    .values()
                    .iter()
                    .map(|&v| (i128::from(v), v.to_string())),
            ),
            DataType::Utf8 => keys.extend(
                chunk
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(|s| (0, s.to_string())),
            ),
            other => {
                return Err(schema_error(format!(
                    "class labels must be bool, integer or utf8, found {other}"
                )));
            }
        }
    }
    let mut names: Vec<(i128, String)> = keys.clone();
    names.sort();
    names.dedup();
    if names.len() < 2 {
        let only = names
            .first()
            .map_or_else(|| "none".to_string(), |(_, n)| format!("'{n}'"));
        return Err(schema_error(format!(
            "needs at least two classes to train a classifier, found one: {only}"
        )));
    }
    let index = keys
        .iter()
        .map(|k| names.binary_search(k).expect("every key is a class") as u32)
        .collect();
    Ok(Classes {
        names: names.into_iter().map(|(_, n)| n).collect(),
        index,
    })
}

fn relabel(e: Error, what: &str) -> Error {
    match e {
        Error::Schema {
            step,
            column,
            message,
        } => Error::Schema {
            step,
            column,
            message: format!("as the {what}: {message}"),
        },
        other => other,
    }
}

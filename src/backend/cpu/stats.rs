//! One-pass column statistics on the CPU, in parallel and deterministic.
//!
//! Each column is cut into fixed blocks of [`BLOCK`] rows; every block yields a
//! partial result (count, f64 sum, centred sum of squares, min, max) computed
//! while the block is in cache, and partials are combined in block order with
//! Chan's parallel-variance formula. Because the blocks and the combine order
//! do not depend on the number of threads, results repeat bit for bit.

use arrow_array::{Array, ArrayRef, cast::AsArray, types};
use rayon::prelude::*;

use super::kernel::BLOCK;
use crate::error::{Error, Result};
use crate::ir::DType;
use crate::ir::ops::Native;

/// Summary statistics of the non-null values of one column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColumnStats {
    /// Number of non-null values (NaN included).
    pub count: u64,
    /// Number of nulls.
    pub nulls: u64,
    /// Number of NaN values (not nulls; they are excluded from every statistic below).
    pub nans: u64,
    /// Mean of the non-null, non-NaN values (NaN when there are none).
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    /// Smallest value (NaN when there are none).
    pub min: f64,
    /// Largest value (NaN when there are none).
    pub max: f64,
}

impl ColumnStats {
    const EMPTY: ColumnStats = ColumnStats {
        count: 0,
        nulls: 0,
        nans: 0,
        mean: f64::NAN,
        m2: 0.0,
        min: f64::NAN,
        max: f64::NAN,
    };

    /// Number of values that entered mean and variance.
    pub fn finite_count(&self) -> u64 {
        self.count - self.nans
    }

    /// Population standard deviation (ddof = 0), as scikit-learn's StandardScaler.
    pub fn std(&self) -> f64 {
        (self.m2 / self.finite_count() as f64).sqrt()
    }

    /// Combine two partial results (Chan et al.), `self` first.
    fn merge(self, other: ColumnStats) -> ColumnStats {
        let (na, nb) = (self.finite_count() as f64, other.finite_count() as f64);
        let (mean, m2) = if nb == 0.0 {
            (self.mean, self.m2)
        } else if na == 0.0 {
            (other.mean, other.m2)
        } else {
            let n = na + nb;
            let delta = other.mean - self.mean;
            (
                self.mean + delta * nb / n,
                self.m2 + other.m2 + delta * delta * na * nb / n,
            )
        };
        ColumnStats {
            count: self.count + other.count,
            nulls: self.nulls + other.nulls,
            nans: self.nans + other.nans,
            mean,
            m2,
            min: nan_min(self.min, other.min),
            max: nan_max(self.max, other.max),
        }
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b < a { b } else { a }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b > a { b } else { a }
}

/// Statistics of each column; `columns[c]` is the list of chunks of column `c`.
///
/// # Errors
/// [`Error::Type`] for a column that is not numeric.
pub fn column_stats(columns: &[(String, Vec<ArrayRef>)]) -> Result<Vec<ColumnStats>> {
    for (name, chunks) in columns {
        if let Some(chunk) = chunks.first() {
            let dtype = DType::from_arrow(chunk.data_type());
            if !dtype.is_some_and(|d| d.is_numeric()) {
                return Err(Error::Type {
                    expr: name.clone(),
                    message: format!(
                        "statistics need a numeric column, '{name}' is {}",
                        chunk.data_type()
                    ),
                });
            }
        }
    }
    let tasks: Vec<(usize, &ArrayRef, usize)> = columns
        .iter()
        .enumerate()
        .flat_map(|(c, (_, chunks))| {
            chunks
                .iter()
                .flat_map(move |a| (0..a.len()).step_by(BLOCK).map(move |s| (c, a, s)))
        })
        .collect();
    let partials: Vec<(usize, ColumnStats)> = tasks
        .into_par_iter()
        .map(|(c, array, start)| {
            let len = BLOCK.min(array.len() - start);
            (c, block_stats(array.as_ref(), start, len))
        })
        .collect();
    let mut out = vec![ColumnStats::EMPTY; columns.len()];
    for (c, partial) in partials {
        out[c] = out[c].merge(partial);
    }
    Ok(out)
}

fn block_stats(array: &dyn Array, start: usize, len: usize) -> ColumnStats {
    let valid: Option<Vec<bool>> = array
        .nulls()
        .map(|n| n.inner().slice(start, len))
        .filter(|b| b.count_set_bits() != len)
        .map(|b| b.iter().collect());
    match array.data_type() {
        arrow_schema::DataType::Float32 => typed(
            &array.as_primitive::<types::Float32Type>().values()[start..start + len],
            valid.as_deref(),
        ),
        arrow_schema::DataType::Float64 => typed(
            &array.as_primitive::<types::Float64Type>().values()[start..start + len],
            valid.as_deref(),
        ),
        arrow_schema::DataType::Int32 => typed(
            &array.as_primitive::<types::Int32Type>().values()[start..start + len],
            valid.as_deref(),
        ),
        arrow_schema::DataType::Int64 => typed(
            &array.as_primitive::<types::Int64Type>().values()[start..start + len],
            valid.as_deref(),
        ),
        other => unreachable!("column_stats checked the type, found {other}"),
    }
}

/// Two passes over a cached block: sums, then squared deviations from the block mean.
fn typed<T: Native>(values: &[T], valid: Option<&[bool]>) -> ColumnStats {
    let n = values.len();
    let mut nans = 0u64;
    let mut count = 0u64;
    let mut sum = 0.0f64;
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    // A value enters the sums when it is valid and not NaN; branch-free masks keep the loop vectorized.
    let take = |i: usize, x: f64| valid.is_none_or(|v| v[i]) & !x.is_nan();
    for (i, x) in values.iter().enumerate() {
        let x = x.to_f64();
        let t = take(i, x);
        nans += u64::from(valid.is_none_or(|v| v[i]) & x.is_nan());
        count += u64::from(t);
        sum += if t { x } else { 0.0 };
        min = if t && x < min { x } else { min };
        max = if t && x > max { x } else { max };
    }
    let nulls = valid.map_or(0, |v| v.iter().filter(|&&b| !b).count() as u64);
    if count == 0 {
        return ColumnStats {
            nulls,
            nans,
            count: nans,
            ..ColumnStats::EMPTY
        };
    }
    let mean = sum / count as f64;
    let mut m2 = 0.0f64;
    for (i, x) in values.iter().enumerate() {
        let x = x.to_f64();
        let d = if take(i, x) { x - mean } else { 0.0 };
        m2 += d * d;
    }
    ColumnStats {
        count: count + nans,
        nulls: nulls.min(n as u64),
        nans,
        mean,
        m2,
        min,
        max,
    }
}

/// Exact quantiles (linear interpolation, as numpy's default) of the non-null,
/// non-NaN values of a column; `None` when there are no such values.
pub fn quantiles(chunks: &[ArrayRef], qs: &[f64]) -> Option<Vec<f64>> {
    let mut values: Vec<f64> = Vec::new();
    for chunk in chunks {
        let valid = |i: usize| chunk.is_valid(i);
        macro_rules! collect {
            ($t:ty) => {
                values.extend(
                    chunk
                        .as_primitive::<$t>()
                        .values()
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| valid(*i))
                        .map(|(_, x)| x.to_f64()),
                )
            };
        }
        match chunk.data_type() {
            arrow_schema::DataType::Float32 => collect!(types::Float32Type),
            arrow_schema::DataType::Float64 => collect!(types::Float64Type),
            arrow_schema::DataType::Int32 => collect!(types::Int32Type),
            arrow_schema::DataType::Int64 => collect!(types::Int64Type),
            _ => return None,
        }
    }
    values.retain(|x| !x.is_nan());
    if values.is_empty() {
        return None;
    }
    let last = values.len() - 1;
    Some(
        qs.iter()
            .map(|&q| {
                let pos = q.clamp(0.0, 1.0) * last as f64;
                let lo = pos.floor() as usize;
                let frac = pos - lo as f64;
                let (_, &mut lo_value, right) = values.select_nth_unstable_by(lo, f64::total_cmp);
                let hi_value = right.iter().copied().fold(f64::INFINITY, f64::min);
                if frac == 0.0 || right.is_empty() {
                    lo_value
                } else {
                    lo_value + frac * (hi_value - lo_value)
                }
            })
            .collect(),
    )
}

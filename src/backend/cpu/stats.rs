//! One-pass column statistics on the CPU, in parallel and deterministic.
//!
//! Each column is cut into fixed blocks of [`BLOCK`] rows; every block yields a
//! partial result (count, f64 sum, centred sum of squares, min, max) computed
//! while the block is in cache, and partials are combined in block order with
//! Chan's parallel-variance formula. Because the blocks and the combine order
//! do not depend on the number of threads, results repeat bit for bit.

use arrow_array::{Array, ArrayRef, cast::AsArray, types};
use rayon::prelude::*;

use super::kernel::{BLOCK, unpack_bits};
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
    /// No values at all: the start of a combine.
    pub const EMPTY: ColumnStats = ColumnStats {
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

    /// Combine two partial results (Chan et al.), `self` first; every backend
    /// combines its per-block partials with this, in block order (and a
    /// distributed engine its partitions' partial states).
    pub fn merge(self, other: ColumnStats) -> ColumnStats {
        let (na, nb) = (self.finite_count() as f64, other.finite_count() as f64);
        let (mean, m2) = if nb == 0.0 {
            (self.mean, self.m2)
        } else if na == 0.0 {
            (other.mean, other.m2)
        } else {
            let n = na + nb;
            let delta = other.mean - self.mean;
            if delta.is_finite() {
                (
                    self.mean + delta * nb / n,
                    self.m2 + other.m2 + delta * delta * na * nb / n,
                )
            } else {
                // An infinity among the values: the mean is that infinity
                // (NaN for both signs), and there is no finite spread.
                (self.mean * (na / n) + other.mean * (nb / n), f64::NAN)
            }
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
    let mut stats = vec![ColumnStats::EMPTY; columns.len()];
    column_stats_onto(&mut stats, columns)?;
    Ok(stats)
}

/// Merge the statistics of more chunks of each column into `stats` (one per
/// column), in chunk order: statistics gathered window by window over a
/// stream equal those of all the chunks at once, bit for bit.
///
/// # Errors
/// As [`column_stats`].
pub fn column_stats_onto(
    stats: &mut [ColumnStats],
    columns: &[(String, Vec<ArrayRef>)],
) -> Result<()> {
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
    for (c, partial) in partials {
        stats[c] = stats[c].merge(partial);
    }
    Ok(())
}

fn block_stats(array: &dyn Array, start: usize, len: usize) -> ColumnStats {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        if array.data_type() == &arrow_schema::DataType::Float32
            && std::arch::is_x86_feature_detected!("fma")
        {
            let values = &array.as_primitive::<types::Float32Type>().values()[start..start + len];
            let valid = array.nulls().map(|n| n.inner().slice(start, len));
            // SAFETY: the running CPU supports AVX2 and FMA, checked just above.
            if let Some(stats) = unsafe { super::stats_avx2::f32_block(values, valid.as_ref()) } {
                return stats;
            }
        }
        // SAFETY: the running CPU supports AVX2, checked just above.
        return unsafe { block_stats_avx2(array, start, len) };
    }
    block_stats_body(array, start, len)
}

/// [`block_stats_body`] compiled for AVX2 (4 f64 lanes per instruction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_stats_avx2(array: &dyn Array, start: usize, len: usize) -> ColumnStats {
    block_stats_body(array, start, len)
}

#[inline(always)]
fn block_stats_body(array: &dyn Array, start: usize, len: usize) -> ColumnStats {
    let mut valid = Vec::new();
    let mut nulls = 0;
    if let Some(bits) = array.nulls().map(|n| n.inner().slice(start, len)) {
        nulls = (len - bits.count_set_bits()) as u64;
        if nulls > 0 {
            unpack_bits(&bits, &mut valid);
        }
    }
    let valid = (nulls > 0).then_some(valid.as_slice());
    macro_rules! go {
        ($t:ty) => {{
            let values = &array.as_primitive::<$t>().values()[start..start + len];
            match valid {
                Some(v) => typed::<_, true>(values, v, nulls),
                None => typed::<_, false>(values, &[], nulls),
            }
        }};
    }
    match array.data_type() {
        arrow_schema::DataType::Float32 => go!(types::Float32Type),
        arrow_schema::DataType::Float64 => go!(types::Float64Type),
        arrow_schema::DataType::Int32 => go!(types::Int32Type),
        arrow_schema::DataType::Int64 => go!(types::Int64Type),
        other => unreachable!("column_stats checked the type, found {other}"),
    }
}

/// Independent accumulators per pass, so the adds pipeline and vectorize; they
/// are combined in a fixed order, so results do not depend on the machine.
const LANES: usize = 4;

/// Two passes over a cached block: sums, then squared deviations from the
/// block mean. A value counts when it is valid (`NULLS`: per `valid`) and not
/// NaN. Every accumulator is an f64 lane (counts too, exact below 2^53), so
/// each pass is one vectorizable stream.
#[inline(always)]
fn typed<T: Native, const NULLS: bool>(values: &[T], valid: &[bool], nulls: u64) -> ColumnStats {
    let mut sum = [0.0f64; LANES];
    let mut count = [0.0f64; LANES];
    let mut min = [f64::INFINITY; LANES];
    let mut max = [f64::NEG_INFINITY; LANES];
    let full = values.len() / LANES * LANES;
    let (head, tail) = values.split_at(full);
    let is_valid = |i: usize| !NULLS || valid[i];
    let mut visit = |l: usize, x: f64, v: bool| {
        #[allow(clippy::eq_op)] // x == x is false exactly for NaN
        let ok = v & (x == x);
        sum[l] += if ok { x } else { 0.0 };
        count[l] += if ok { 1.0 } else { 0.0 };
        min[l] = if ok & (x < min[l]) { x } else { min[l] };
        max[l] = if ok & (x > max[l]) { x } else { max[l] };
    };
    for (c, chunk) in head.chunks_exact(LANES).enumerate() {
        #[allow(
            clippy::needless_range_loop,
            reason = "lane l indexes the accumulators inside visit, and the validity"
        )]
        for l in 0..LANES {
            visit(l, chunk[l].to_f64(), is_valid(c * LANES + l));
        }
    }
    for (k, x) in tail.iter().enumerate() {
        visit(0, x.to_f64(), is_valid(full + k));
    }
    let count = count.iter().sum::<f64>() as u64;
    // Valid values that did not count are NaN.
    let nans = values.len() as u64 - nulls - count;
    if count == 0 {
        return ColumnStats {
            nulls,
            nans,
            count: nans,
            ..ColumnStats::EMPTY
        };
    }
    let mean = sum.iter().sum::<f64>() / count as f64;
    let mut m2 = [0.0f64; LANES];
    for (c, chunk) in head.chunks_exact(LANES).enumerate() {
        for l in 0..LANES {
            let x = chunk[l].to_f64();
            let d = if is_valid(c * LANES + l) & !x.is_nan() {
                x - mean
            } else {
                0.0
            };
            m2[l] += d * d;
        }
    }
    for (k, x) in tail.iter().enumerate() {
        let x = x.to_f64();
        let d = if is_valid(full + k) & !x.is_nan() {
            x - mean
        } else {
            0.0
        };
        m2[0] += d * d;
    }
    ColumnStats {
        count: count + nans,
        nulls,
        nans,
        mean,
        m2: m2.iter().sum(),
        min: min.iter().copied().fold(f64::INFINITY, f64::min),
        max: max.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// `x`'s place in IEEE 754 total order, as [`f64::total_cmp`] compares: a
/// negative value's magnitude bits flipped.
fn total_order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

/// The value whose [`total_order_key`] is `key`.
fn from_total_order_key(key: i64) -> f64 {
    f64::from_bits(total_order_key(f64::from_bits(key as u64)) as u64)
}

/// Exact quantiles (linear interpolation, as numpy's default) of the non-null,
/// non-NaN values of a column; `None` when there are no such values.
pub fn quantiles(chunks: &[ArrayRef], qs: &[f64]) -> Option<Vec<f64>> {
    // Selections compare integers: each value's key in IEEE total order.
    let mut keys: Vec<i64> = Vec::new();
    let key = |x: f64| (!x.is_nan()).then(|| total_order_key(x));
    for chunk in chunks {
        macro_rules! collect {
            ($t:ty) => {{
                let all = chunk.as_primitive::<$t>().values().iter();
                match chunk.nulls() {
                    None => keys.extend(all.filter_map(|x| key(x.to_f64()))),
                    Some(nulls) => keys.extend(
                        (all.zip(nulls.iter()))
                            .filter_map(|(x, valid)| valid.then(|| key(x.to_f64())).flatten()),
                    ),
                }
            }};
        }
        match chunk.data_type() {
            arrow_schema::DataType::Float32 => collect!(types::Float32Type),
            arrow_schema::DataType::Float64 => collect!(types::Float64Type),
            arrow_schema::DataType::Int32 => collect!(types::Int32Type),
            arrow_schema::DataType::Int64 => collect!(types::Int64Type),
            _ => return None,
        }
    }
    if keys.is_empty() {
        return None;
    }
    // Smallest quantile first: each selection works on what lies above the
    // one before.
    let mut order: Vec<usize> = (0..qs.len()).collect();
    order.sort_by(|&a, &b| qs[a].total_cmp(&qs[b]));
    let (last, mut answers, mut selected) = (keys.len() - 1, vec![0.0; qs.len()], None);
    for k in order {
        let pos = qs[k].clamp(0.0, 1.0) * last as f64;
        let lo = pos.floor() as usize;
        let from = selected.map_or(0, |s: usize| s + 1);
        if selected != Some(lo) {
            keys[from..].select_nth_unstable(lo - from);
            selected = Some(lo);
        }
        let (lo_value, right) = (from_total_order_key(keys[lo]), &keys[lo + 1..]);
        let frac = pos - lo as f64;
        // The next value up, only where it is interpolated towards.
        answers[k] = match (frac != 0.0).then(|| right.iter().min()).flatten() {
            Some(&hi) => lo_value + frac * (from_total_order_key(hi) - lo_value),
            None => lo_value,
        };
    }
    Some(answers)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Float32Array;

    use super::*;
    use crate::data::Rng;

    #[test]
    fn quantiles_in_any_order_equal_those_of_the_sorted_values() {
        let mut rng = Rng::new(5);
        // Few distinct values (ties), nulls and NaN, over two chunks.
        let chunk = |rng: &mut Rng, n: usize| -> ArrayRef {
            let values = (0..n).map(|i| match i % 13 {
                0 => None,
                1 => Some(f32::NAN),
                _ => Some((rng.uniform() * 40.0).floor() as f32 * 0.25),
            });
            Arc::new(values.collect::<Float32Array>())
        };
        let chunks = [chunk(&mut rng, 1_001), chunk(&mut rng, 77)];
        let mut sorted: Vec<f64> = (chunks.iter())
            .flat_map(|c| c.as_primitive::<types::Float32Type>().iter().flatten().map(f64::from))
            .filter(|x| !x.is_nan())
            .collect();
        sorted.sort_by(f64::total_cmp);
        let qs = [0.75, 0.25, 0.5, 0.5, 1.0, 0.0, 0.999, 0.1234];
        let last = (sorted.len() - 1) as f64;
        let want: Vec<f64> = (qs.iter())
            .map(|q| {
                let (pos, lo) = (q * last, (q * last).floor() as usize);
                let hi = sorted[(lo + 1).min(sorted.len() - 1)];
                sorted[lo] + (pos - lo as f64) * (hi - sorted[lo])
            })
            .collect();
        assert_eq!(quantiles(&chunks, &qs), Some(want));
        assert_eq!(quantiles(&[chunk(&mut rng, 0)], &qs), None);
    }

    /// Statistics the slow, obvious way, in f64.
    fn reference(array: &Float32Array) -> ColumnStats {
        let values: Vec<f64> = array.iter().flatten().map(f64::from).collect();
        let finite: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        let n = finite.len() as f64;
        let mean = finite.iter().sum::<f64>() / n;
        ColumnStats {
            count: values.len() as u64,
            nulls: array.null_count() as u64,
            nans: (values.len() - finite.len()) as u64,
            mean: if finite.is_empty() { f64::NAN } else { mean },
            m2: finite.iter().map(|x| (x - mean) * (x - mean)).sum(),
            min: finite.iter().copied().reduce(f64::min).unwrap_or(f64::NAN),
            max: finite.iter().copied().reduce(f64::max).unwrap_or(f64::NAN),
        }
    }

    fn assert_close(got: &ColumnStats, want: &ColumnStats, what: &str) {
        let exact = (
            got.count,
            got.nulls,
            got.nans,
            got.min.to_bits(),
            got.max.to_bits(),
        );
        let expected = (
            want.count,
            want.nulls,
            want.nans,
            want.min.to_bits(),
            want.max.to_bits(),
        );
        assert_eq!(exact, expected, "{what}: counts, min, max");
        if want.mean.is_nan() {
            assert!(got.mean.is_nan(), "{what}: mean {} should be NaN", got.mean);
            return;
        }
        if want.mean.is_infinite() {
            // Infinities in the data: the mean is that infinity, m2 is NaN.
            assert_eq!(got.mean, want.mean, "{what}: mean");
            assert!(got.m2.is_nan() && want.m2.is_nan(), "{what}: m2 {}", got.m2);
            return;
        }
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-300);
        assert!(
            rel(got.mean, want.mean) < 1e-12,
            "{what}: mean {} vs {}",
            got.mean,
            want.mean
        );
        assert!(
            rel(got.m2, want.m2) < 1e-10,
            "{what}: m2 {} vs {}",
            got.m2,
            want.m2
        );
    }

    /// Counts beyond 2^32 rows (a large source streamed window by window)
    /// stay exact when partials merge, and so do the mean and the spread.
    #[test]
    fn statistics_merged_beyond_two_to_the_32_rows_stay_exact() {
        const G: u64 = 1 << 30;
        let part = |count: u64, mean: f64, variance: f64| ColumnStats {
            count,
            nulls: 7,
            nans: 3,
            mean,
            m2: variance * (count - 3) as f64,
            min: mean - 1.0,
            max: mean + 1.0,
        };
        let merged = part(3 * G + 3, 1.0, 2.0).merge(part(5 * G + 3, 3.0, 2.0));
        assert_eq!(merged.count, 8 * G + 6);
        assert!(merged.finite_count() > u64::from(u32::MAX));
        assert_eq!((merged.nulls, merged.nans), (14, 6));
        assert_eq!(merged.mean, 2.25);
        // m2 = m2a + m2b + delta^2 * na * nb / n = 16 G + 7.5 G.
        assert_eq!(merged.m2, 23.5 * G as f64);
        assert_eq!((merged.min, merged.max), (0.0, 4.0));

        // 4096 windows of 2^20 rows each, merged in order: 2^32 rows.
        let window = ColumnStats {
            count: 1 << 20,
            nulls: 0,
            nans: 0,
            mean: 0.5,
            m2: 0.25 * (1u64 << 20) as f64,
            min: 0.0,
            max: 1.0,
        };
        let total = (0..4096).fold(ColumnStats::EMPTY, |acc, _| acc.merge(window));
        assert_eq!(total.count, 1 << 32);
        assert_eq!(total.mean, 0.5);
        assert_eq!(total.std(), 0.5);
    }

    /// The one-pass AVX2 block keeps its precision when the value it shifts
    /// by (the first one) lies far from the rest, or sits among nulls and NaN;
    /// infinities (first, or all there is) give the reference's results.
    #[test]
    fn f32_blocks_shifted_by_an_outlier_keep_their_precision() {
        let mut rng = Rng::new(11);
        let all_infinite = Float32Array::from(vec![Some(f32::INFINITY), None, Some(f32::NAN)]);
        let want = reference(&all_infinite);
        let array: ArrayRef = Arc::new(all_infinite);
        let got = column_stats(&[("x".into(), vec![array])]).unwrap()[0];
        assert_close(&got, &want, "only an infinity");
        for (first, null_rate) in [
            (3.0e6f32, 0.0),
            (-2.5e4, 0.1),
            (1000.0, 0.5),
            (f32::INFINITY, 0.0),
            (f32::NEG_INFINITY, 0.2),
        ] {
            let values: Vec<Option<f32>> = std::iter::once(None)
                .chain([Some(f32::NAN), Some(first)])
                .chain((0..2 * BLOCK).map(|_| {
                    let x = (rng.normal() * 0.01 + 1000.0) as f32;
                    (rng.uniform() >= null_rate).then_some(x)
                }))
                .collect();
            let array = Float32Array::from(values);
            let want = reference(&array);
            let array: ArrayRef = Arc::new(array);
            let got = column_stats(&[("x".into(), vec![array])]).unwrap()[0];
            assert_close(
                &got,
                &want,
                &format!("first value {first}, nulls {null_rate}"),
            );
        }
    }

    /// The dispatched path (AVX2 for f32 where the CPU has it) and the portable
    /// loop agree with the reference on nulls, NaN, odd lengths and offsets.
    #[test]
    fn f32_blocks_match_the_reference() {
        let mut rng = Rng::new(7);
        for (len, null_rate, nan_rate) in [
            (1, 0.0, 0.0),
            (63, 0.2, 0.0),
            (64, 0.0, 0.1),
            (1000, 0.01, 0.01),
            (BLOCK + 77, 0.3, 0.0),
            (3 * BLOCK - 5, 0.0, 0.0),
            (200, 1.0, 0.0),
            (130, 0.0, 1.0),
        ] {
            let values: Vec<Option<f32>> = (0..len + 13)
                .map(|_| {
                    let x = (rng.normal() * 3.0 + 1000.0) as f32;
                    let x = if rng.uniform() < nan_rate {
                        f32::NAN
                    } else {
                        x
                    };
                    (rng.uniform() >= null_rate).then_some(x)
                })
                .collect();
            let whole = Float32Array::from(values);
            for offset in [0, 3, 13] {
                let array = whole.slice(offset, len);
                let what = format!("len {len}, offset {offset}, nulls {null_rate}, NaN {nan_rate}");
                let want = reference(&array);
                let array: ArrayRef = Arc::new(array);
                let got = column_stats(&[("x".into(), vec![array.clone()])]).unwrap()[0];
                assert_close(&got, &want, &format!("dispatched, {what}"));
                let portable = (0..len)
                    .step_by(BLOCK)
                    .map(|s| block_stats_body(array.as_ref(), s, BLOCK.min(len - s)))
                    .fold(ColumnStats::EMPTY, ColumnStats::merge);
                assert_close(&portable, &want, &format!("portable, {what}"));
            }
        }
    }
}

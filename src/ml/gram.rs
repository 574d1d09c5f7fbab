//! The weighted Gram matrix of a block of columns, `sum_i w_i x_i x_i^T`:
//! the Hessian of logistic regression and the normal equations of ridge.
//!
//! It is computed in register tiles: [`TILE_J`] weighted columns times
//! [`TILE_K`] columns, each pair's sum held in a vector accumulator over
//! [`LANES`] rows, so every value loaded feeds several multiply-adds rather
//! than one, over sub-blocks of [`SUB_ROWS`] rows that stay in cache.
//! Entries outside whole tiles (the last columns) are plain dot products.
//! The order of additions depends only on the block's length, so the result
//! does not depend on threads or scheduling.

use std::ops::Range;

use super::pass::dot;

/// Weighted columns per tile.
const TILE_J: usize = 4;
/// Columns per tile: 4 x 3 accumulators, the 4 weighted values and one
/// loaded value fill 16 vector registers.
const TILE_K: usize = 3;
/// Rows per accumulator: one 256-bit vector of f64.
const LANES: usize = 4;
/// Rows per sub-block: the sub-block's columns and their weighted copies
/// stay in the core's cache while every tile reads them.
const SUB_ROWS: usize = 512;

/// The lower triangle of `sum_i w_i x_i x_i^T` over `range` (with `w = 1`
/// when `weights` is `None`), for the columns `cols` (each the full column);
/// row-major `n x n`, upper triangle left zero.
pub fn weighted_gram(cols: &[&[f64]], weights: Option<&[f64]>, range: Range<usize>) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the running CPU supports AVX2 and FMA, checked just above.
        return unsafe { weighted_gram_avx2(cols, weights, range) };
    }
    weighted_gram_body::<Portable>(cols, weights, range)
}

/// [`weighted_gram_body`] compiled for AVX2 and FMA, its tiles in
/// registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_gram_avx2(
    cols: &[&[f64]],
    weights: Option<&[f64]>,
    range: Range<usize>,
) -> Vec<f64> {
    weighted_gram_body::<Avx2Fma>(cols, weights, range)
}

/// How a tile's sums are computed.
trait Tile {
    /// The `J x TILE_K` sums `s_a . x_b` of equally long columns.
    fn sums<const J: usize>(s: [&[f64]; J], x: [&[f64]; TILE_K]) -> [[f64; TILE_K]; J];
}

#[inline(always)]
fn weighted_gram_body<T: Tile>(
    cols: &[&[f64]],
    weights: Option<&[f64]>,
    range: Range<usize>,
) -> Vec<f64> {
    let n = cols.len();
    let mut out = vec![0.0; n * n];
    let mut buffer = vec![0.0; if weights.is_some() { n * SUB_ROWS } else { 0 }];
    let mut start = range.start;
    while start < range.end {
        let rows = start..(start + SUB_ROWS).min(range.end);
        let local: Vec<&[f64]> = cols.iter().map(|c| &c[rows.clone()]).collect();
        let scaled: Vec<&[f64]> = match weights {
            Some(w) => {
                let (w, len) = (&w[rows.clone()], rows.len());
                for (column, into) in local.iter().zip(buffer.chunks_exact_mut(SUB_ROWS)) {
                    let pairs = into[..len].iter_mut().zip(column.iter().zip(w));
                    pairs.for_each(|(s, (x, w))| *s = x * w);
                }
                buffer.chunks_exact(SUB_ROWS).map(|c| &c[..len]).collect()
            }
            None => local.clone(),
        };
        let mut j0 = 0;
        while j0 < n {
            j0 += match n - j0 {
                1 => add_rows::<T, 1>(&mut out, &scaled, &local, j0),
                2 => add_rows::<T, 2>(&mut out, &scaled, &local, j0),
                3 => add_rows::<T, 3>(&mut out, &scaled, &local, j0),
                _ => add_rows::<T, TILE_J>(&mut out, &scaled, &local, j0),
            };
        }
        start = rows.end;
    }
    out
}

/// Add rows `j0..j0 + J` of the lower triangle of `scaled^T local` to
/// `out`: whole tiles up to the diagonal (their entries above it dropped),
/// then dot products for the last columns no whole tile covers. Returns `J`.
#[inline(always)]
fn add_rows<T: Tile, const J: usize>(
    out: &mut [f64],
    scaled: &[&[f64]],
    local: &[&[f64]],
    j0: usize,
) -> usize {
    let n = local.len();
    let s: [&[f64]; J] = std::array::from_fn(|a| scaled[j0 + a]);
    let mut k0 = 0;
    while k0 < j0 + J && k0 + TILE_K <= n {
        let x: [&[f64]; TILE_K] = std::array::from_fn(|b| local[k0 + b]);
        for (a, row) in T::sums(s, x).iter().enumerate() {
            let below_diagonal = (j0 + a + 1).saturating_sub(k0);
            for (b, &v) in row.iter().enumerate().take(below_diagonal) {
                out[(j0 + a) * n + k0 + b] += v;
            }
        }
        k0 += TILE_K;
    }
    for j in j0..j0 + J {
        for k in k0..=j {
            out[j * n + k] += dot(scaled[j], local[k]);
        }
    }
    J
}

/// Tiles in plain Rust, for CPUs without AVX2 and FMA.
struct Portable;

impl Tile for Portable {
    #[inline(always)]
    fn sums<const J: usize>(s: [&[f64]; J], x: [&[f64]; TILE_K]) -> [[f64; TILE_K]; J] {
        std::array::from_fn(|a| std::array::from_fn(|b| dot(s[a], x[b])))
    }
}

/// Tiles in AVX2 registers; only used once the CPU is known to have AVX2
/// and FMA (see [`weighted_gram`]).
#[cfg(target_arch = "x86_64")]
struct Avx2Fma;

#[cfg(target_arch = "x86_64")]
impl Tile for Avx2Fma {
    #[inline(always)]
    fn sums<const J: usize>(s: [&[f64]; J], x: [&[f64]; TILE_K]) -> [[f64; TILE_K]; J] {
        // SAFETY: an `Avx2Fma` tile runs only inside `weighted_gram_avx2`,
        // reached after the CPU was found to support AVX2 and FMA.
        unsafe { tile_avx2(s, x) }
    }
}

/// The tile's sums with AVX2 and FMA: `J x TILE_K` accumulators of
/// [`LANES`] rows each, held in registers, reduced in a fixed order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_avx2<const J: usize>(s: [&[f64]; J], x: [&[f64]; TILE_K]) -> [[f64; TILE_K]; J] {
    use std::arch::x86_64::{
        __m256d, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_setzero_pd, _mm256_storeu_pd,
    };
    let len = s[0].len();
    assert!(s.iter().all(|c| c.len() == len) && x.iter().all(|c| c.len() == len));
    let mut acc: [[__m256d; TILE_K]; J] = [[_mm256_setzero_pd(); TILE_K]; J];
    let whole = len / LANES * LANES;
    let mut i = 0;
    while i < whole {
        // SAFETY: i + LANES <= whole <= len, the length of every column.
        let load = |column: &[f64]| unsafe { _mm256_loadu_pd(column.as_ptr().add(i)) };
        let sv: [__m256d; J] = std::array::from_fn(|a| load(s[a]));
        for b in 0..TILE_K {
            let xv = load(x[b]);
            for a in 0..J {
                acc[a][b] = _mm256_fmadd_pd(sv[a], xv, acc[a][b]);
            }
        }
        i += LANES;
    }
    std::array::from_fn(|a| {
        std::array::from_fn(|b| {
            let mut l = [0.0; LANES];
            // SAFETY: `l` holds LANES f64.
            unsafe { _mm256_storeu_pd(l.as_mut_ptr(), acc[a][b]) };
            let tail: f64 = (whole..len).map(|i| s[a][i] * x[b][i]).sum();
            (l[0] + l[1]) + (l[2] + l[3]) + tail
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Rng;

    /// The Gram matrix entry by entry in the obvious order.
    fn reference(cols: &[Vec<f64>], w: &[f64], range: Range<usize>) -> Vec<f64> {
        let n = cols.len();
        let mut out = vec![0.0; n * n];
        for j in 0..n {
            for k in 0..=j {
                out[j * n + k] = range.clone().map(|i| w[i] * cols[j][i] * cols[k][i]).sum();
            }
        }
        out
    }

    #[test]
    fn tiles_agree_with_the_plain_sums_for_every_width_and_odd_lengths_on_both_paths() {
        let mut rng = Rng::new(7);
        for n in [1, 2, 3, 4, 5, 7, 8, 12, 13, 33] {
            let rows = 1031;
            let cols: Vec<Vec<f64>> = (0..n)
                .map(|_| (0..rows).map(|_| rng.uniform() * 2.0 - 1.0).collect())
                .collect();
            let w: Vec<f64> = (0..rows).map(|_| rng.uniform()).collect();
            let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
            for range in [0..rows, 3..rows - 2, 5..6, 9..9] {
                let want = reference(&cols, &w, range.clone());
                let got = weighted_gram(&refs, Some(&w), range.clone());
                let portable = weighted_gram_body::<Portable>(&refs, Some(&w), range.clone());
                let ones = vec![1.0; rows];
                let unweighted = weighted_gram(&refs, None, range.clone());
                let want_unweighted = reference(&cols, &ones, range.clone());
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-12 * (1.0 + e.abs()), "n {n} entry {i}");
                    let p = portable[i];
                    assert!((p - e).abs() <= 1e-12 * (1.0 + e.abs()), "portable, n {n} entry {i}");
                    let (g, e) = (unweighted[i], want_unweighted[i]);
                    assert!((g - e).abs() <= 1e-12 * (1.0 + e.abs()), "n {n} entry {i}");
                }
                // The upper triangle stays zero.
                for j in 0..n {
                    assert!((j + 1..n).all(|k| got[j * n + k] == 0.0));
                }
            }
        }
    }
}

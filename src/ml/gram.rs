//! The weighted Gram matrix of a block of columns, `sum_i w_i x_i x_i^T`:
//! the normal equations of ridge, exactly in f64 ([`weighted_gram`]), and
//! the Hessian of logistic regression, with products in f32
//! ([`hessian_gram`]).
//!
//! It is computed in register tiles: [`TILE_J`] weighted columns times
//! [`TILE_K`] columns, each pair's sum held in a vector accumulator over one
//! vector of rows, so every value loaded feeds several multiply-adds rather
//! than one, over sub-blocks of [`SUB_ROWS`] rows that stay in cache.
//! Entries outside whole tiles (the last columns) are plain dot products.
//! The order of additions depends only on the block's length, so the result
//! does not depend on threads or scheduling.
//!
//! Why f32 is enough for a Hessian: Newton's method stops on the gradient,
//! which stays exact in f64; the Hessian only chooses each step's
//! direction, and one with relative errors near 1e-6 takes the same steps to
//! within that, converging to the same optimum in as many iterations. An AVX2
//! vector holds eight f32 against four f64, so the tiles do twice the
//! multiply-adds per instruction. Each sub-block's sums are widened to f64
//! before they are added up.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::pass::avx2_fma;
use super::pass::dot;

/// Weighted columns per tile.
const TILE_J: usize = 4;
/// Columns per tile: 4 x 3 accumulators, the 4 weighted values and one
/// loaded value fill 16 vector registers.
const TILE_K: usize = 3;
/// Rows per sub-block: the sub-block's columns and their weighted copies
/// stay in the core's cache while every tile reads them.
const SUB_ROWS: usize = 2048;

/// The lower triangle of `sum_i w_i x_i x_i^T` over `range` (with `w = 1`
/// when `weights` is `None`), for the columns `cols` (each the full column),
/// in f64; row-major `n x n`, upper triangle left zero.
pub fn weighted_gram(cols: &[&[f64]], weights: Option<&[f64]>, range: Range<usize>) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the running CPU supports AVX2 and FMA, checked just above.
        return unsafe { gram_avx2::<f64>(cols, weights, range) };
    }
    gram_body::<Portable, f64>(cols, weights, range)
}

/// [`weighted_gram`] with weights, its products and each sub-block's sums
/// in f32 (the sub-blocks added up in f64): Newton's Hessian, to a relative
/// error near 1e-6 (see the module's documentation).
pub fn hessian_gram(cols: &[&[f64]], weights: &[f64], range: Range<usize>) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the running CPU supports AVX-512F, checked just above.
        return unsafe { gram_avx512(cols, weights, range) };
    }
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the running CPU supports AVX2 and FMA, checked just above.
        return unsafe { gram_avx2::<f32>(cols, Some(weights), range) };
    }
    gram_body::<Portable, f32>(cols, Some(weights), range)
}

/// [`gram_body`] compiled for AVX2 and FMA, its tiles in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gram_avx2<E: Element>(
    cols: &[&[f64]],
    weights: Option<&[f64]>,
    range: Range<usize>,
) -> Vec<f64>
where
    Avx2Fma: Tile<E>,
{
    gram_body::<Avx2Fma, E>(cols, weights, range)
}

/// [`gram_body`] in f32 compiled for AVX-512, sixteen lanes per register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gram_avx512(cols: &[&[f64]], weights: &[f64], range: Range<usize>) -> Vec<f64> {
    gram_body::<Avx512, f32>(cols, Some(weights), range)
}

/// The number type the tiles multiply in.
trait Element: Copy + Default {
    /// `v` rounded to this type.
    fn narrow(v: f64) -> Self;
    /// `v` exactly, in f64.
    fn widen(self) -> f64;
    /// Rows `rows` of `cols` as the tiles read them: borrowed when the
    /// columns already hold this type, else converted into `buffer`.
    fn columns<'a>(cols: &[&'a [f64]], rows: Range<usize>, buffer: &'a mut Vec<Self>)
    -> Vec<&'a [Self]>;
    /// `a . b`, products in this type, summed in f64.
    fn dot(a: &[Self], b: &[Self]) -> f64;
}

impl Element for f64 {
    #[inline(always)]
    fn narrow(v: f64) -> f64 {
        v
    }

    #[inline(always)]
    fn widen(self) -> f64 {
        self
    }

    #[inline(always)]
    fn columns<'a>(cols: &[&'a [f64]], rows: Range<usize>, _: &'a mut Vec<f64>) -> Vec<&'a [f64]> {
        cols.iter().map(|c| &c[rows.clone()]).collect()
    }

    #[inline(always)]
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        dot(a, b)
    }
}

impl Element for f32 {
    #[inline(always)]
    fn narrow(v: f64) -> f32 {
        v as f32
    }

    #[inline(always)]
    fn widen(self) -> f64 {
        f64::from(self)
    }

    #[inline(always)]
    fn columns<'a>(cols: &[&'a [f64]], rows: Range<usize>, buffer: &'a mut Vec<f32>) -> Vec<&'a [f32]> {
        fill(cols, None, rows, buffer)
    }

    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| f64::from(x * y)).sum()
    }
}

/// Rows `rows` (not empty) of `cols`, times `weights` when given, rounded
/// into `buffer`, one run of rows per column. The buffer keeps its capacity
/// from one sub-block to the next and is never zeroed first.
#[inline(always)]
fn fill<'a, E: Element>(
    cols: &[&[f64]],
    weights: Option<&[f64]>,
    rows: Range<usize>,
    buffer: &'a mut Vec<E>,
) -> Vec<&'a [E]> {
    buffer.clear();
    for column in cols {
        let column = &column[rows.clone()];
        match weights {
            Some(w) => {
                let products = column.iter().zip(&w[rows.clone()]);
                buffer.extend(products.map(|(x, w)| E::narrow(x * w)));
            }
            None => buffer.extend(column.iter().map(|&x| E::narrow(x))),
        }
    }
    buffer.chunks_exact(rows.len()).collect()
}

/// How a tile's sums are computed.
trait Tile<E> {
    /// The `J x TILE_K` sums `s_a . x_b` of equally long columns.
    fn sums<const J: usize>(s: [&[E]; J], x: [&[E]; TILE_K]) -> [[f64; TILE_K]; J];
}

#[inline(always)]
fn gram_body<T: Tile<E>, E: Element>(
    cols: &[&[f64]],
    weights: Option<&[f64]>,
    range: Range<usize>,
) -> Vec<f64> {
    let n = cols.len();
    let mut out = vec![0.0; n * n];
    let (mut converted, mut weighted) = (Vec::new(), Vec::new());
    let mut start = range.start;
    while start < range.end {
        let rows = start..(start + SUB_ROWS).min(range.end);
        let local = E::columns(cols, rows.clone(), &mut converted);
        let scaled = match weights {
            Some(_) => fill(cols, weights, rows.clone(), &mut weighted),
            None => local.clone(),
        };
        let mut j0 = 0;
        while j0 < n {
            j0 += match n - j0 {
                1 => add_rows::<T, E, 1>(&mut out, &scaled, &local, j0),
                2 => add_rows::<T, E, 2>(&mut out, &scaled, &local, j0),
                3 => add_rows::<T, E, 3>(&mut out, &scaled, &local, j0),
                _ => add_rows::<T, E, TILE_J>(&mut out, &scaled, &local, j0),
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
fn add_rows<T: Tile<E>, E: Element, const J: usize>(
    out: &mut [f64],
    scaled: &[&[E]],
    local: &[&[E]],
    j0: usize,
) -> usize {
    let n = local.len();
    let s: [&[E]; J] = std::array::from_fn(|a| scaled[j0 + a]);
    let mut k0 = 0;
    while k0 < j0 + J && k0 + TILE_K <= n {
        let x: [&[E]; TILE_K] = std::array::from_fn(|b| local[k0 + b]);
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
            out[j * n + k] += E::dot(scaled[j], local[k]);
        }
    }
    J
}

/// Tiles in plain Rust, for CPUs without AVX2 and FMA.
struct Portable;

impl<E: Element> Tile<E> for Portable {
    #[inline(always)]
    fn sums<const J: usize>(s: [&[E]; J], x: [&[E]; TILE_K]) -> [[f64; TILE_K]; J] {
        std::array::from_fn(|a| std::array::from_fn(|b| E::dot(s[a], x[b])))
    }
}

/// Tiles in AVX2 registers; only used once the CPU is known to have AVX2
/// and FMA (see [`weighted_gram`]).
#[cfg(target_arch = "x86_64")]
struct Avx2Fma;

/// Tiles in AVX-512 registers, f32 only; used once the CPU is known to
/// have AVX-512F (see [`hessian_gram`]).
#[cfg(target_arch = "x86_64")]
struct Avx512;

/// The sum of a vector's lanes, widened to f64, adjacent pairs first: a
/// fixed order (for four lanes `(l0 + l1) + (l2 + l3)`).
#[inline(always)]
fn lanes_sum<E: Element, const L: usize>(lanes: [E; L]) -> f64 {
    let mut v = lanes.map(E::widen);
    let mut width = L;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            v[i] = v[2 * i] + v[2 * i + 1];
        }
    }
    v[0]
}

/// Implements `Tile<$elem>` for `$tiles` by `$name`, the tile's sums in
/// vectors of `$lanes` `$elem` (AVX2 or AVX-512, as `$features` enables):
/// `J x TILE_K` accumulators held in registers, each reduced in a fixed
/// order and widened to f64. The instruction sets and element types differ
/// only in the intrinsics named.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_tile {
    ($tiles:ty, $name:ident, $features:literal, $elem:ty, $vector:ty, $lanes:expr, $zero:ident, $load:ident, $fma:ident, $store:ident) => {
        impl Tile<$elem> for $tiles {
            #[inline(always)]
            fn sums<const J: usize>(s: [&[$elem]; J], x: [&[$elem]; TILE_K]) -> [[f64; TILE_K]; J] {
                // SAFETY: these tiles run only inside the gram function
                // compiled for `$features`, reached after the CPU was found
                // to support them.
                unsafe { $name(s, x) }
            }
        }

        #[target_feature(enable = $features)]
        fn $name<const J: usize>(s: [&[$elem]; J], x: [&[$elem]; TILE_K]) -> [[f64; TILE_K]; J] {
            use std::arch::x86_64::{$fma, $load, $store, $vector, $zero};
            let len = s[0].len();
            assert!(s.iter().all(|c| c.len() == len) && x.iter().all(|c| c.len() == len));
            let mut acc: [[$vector; TILE_K]; J] = [[$zero(); TILE_K]; J];
            let whole = len / $lanes * $lanes;
            let mut i = 0;
            while i < whole {
                // SAFETY: i + lanes <= whole <= len, the length of every column.
                let load = |column: &[$elem]| unsafe { $load(column.as_ptr().add(i)) };
                let sv: [$vector; J] = std::array::from_fn(|a| load(s[a]));
                for b in 0..TILE_K {
                    let xv = load(x[b]);
                    for a in 0..J {
                        acc[a][b] = $fma(sv[a], xv, acc[a][b]);
                    }
                }
                i += $lanes;
            }
            std::array::from_fn(|a| {
                std::array::from_fn(|b| {
                    let mut l: [$elem; $lanes] = [0.0; $lanes];
                    // SAFETY: `l` holds one vector's lanes.
                    unsafe { $store(l.as_mut_ptr(), acc[a][b]) };
                    let tail: f64 = (whole..len).map(|i| f64::from(s[a][i] * x[b][i])).sum();
                    lanes_sum(l) + tail
                })
            })
        }
    };
}

#[cfg(target_arch = "x86_64")]
simd_tile!(Avx2Fma, tile_avx2_f64, "avx2,fma", f64, __m256d, 4, _mm256_setzero_pd, _mm256_loadu_pd, _mm256_fmadd_pd, _mm256_storeu_pd);
#[cfg(target_arch = "x86_64")]
simd_tile!(Avx2Fma, tile_avx2_f32, "avx2,fma", f32, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_storeu_ps);
#[cfg(target_arch = "x86_64")]
simd_tile!(Avx512, tile_avx512_f32, "avx512f,avx2,fma", f32, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_storeu_ps);

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
    fn tiles_agree_with_the_plain_sums_for_every_width_and_odd_lengths_on_both_paths_and_in_f32() {
        let mut rng = Rng::new(7);
        for n in [1, 2, 3, 4, 5, 7, 8, 12, 13, 33] {
            let rows = 1031;
            let cols: Vec<Vec<f64>> = (0..n)
                .map(|_| (0..rows).map(|_| rng.uniform() * 2.0 - 1.0).collect())
                .collect();
            let w: Vec<f64> = (0..rows).map(|_| rng.uniform()).collect();
            let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
            let abs: Vec<Vec<f64>> = cols.iter().map(|c| c.iter().map(|v| v.abs()).collect()).collect();
            for range in [0..rows, 3..rows - 2, 5..6, 9..9] {
                let want = reference(&cols, &w, range.clone());
                let got = weighted_gram(&refs, Some(&w), range.clone());
                let portable = gram_body::<Portable, f64>(&refs, Some(&w), range.clone());
                let portable_f32 = gram_body::<Portable, f32>(&refs, Some(&w), range.clone());
                #[cfg(target_arch = "x86_64")]
                // SAFETY: called only where the CPU has AVX2 and FMA.
                let avx2_f32 = avx2_fma()
                    .then(|| unsafe { gram_avx2::<f32>(&refs, Some(&w), range.clone()) });
                #[cfg(not(target_arch = "x86_64"))]
                let avx2_f32: Option<Vec<f64>> = None;
                let f32_products = hessian_gram(&refs, &w, range.clone());
                let magnitudes = reference(&abs, &w, range.clone());
                let ones = vec![1.0; rows];
                let unweighted = weighted_gram(&refs, None, range.clone());
                let want_unweighted = reference(&cols, &ones, range.clone());
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-12 * (1.0 + e.abs()), "n {n} entry {i}");
                    let p = portable[i];
                    assert!((p - e).abs() <= 1e-12 * (1.0 + e.abs()), "portable, n {n} entry {i}");
                    let paths = [(f32_products[i], "f32"), (portable_f32[i], "portable f32")];
                    let avx2 = avx2_f32.as_ref().map(|a| (a[i], "AVX2 f32"));
                    for (h, path) in paths.into_iter().chain(avx2) {
                        assert!((h - e).abs() <= 1e-5 * magnitudes[i], "{path}, n {n} entry {i}");
                    }
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

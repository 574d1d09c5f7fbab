//! Deterministic parallel passes over rows.
//!
//! Rows are cut into fixed blocks of [`ROWS_PER_BLOCK`]; each block's partial
//! result is computed on any thread, and partials are combined in block order.
//! The result therefore depends on neither the thread count nor scheduling.

use std::ops::Range;

use rayon::prelude::*;

/// Rows per block of a pass.
pub const ROWS_PER_BLOCK: usize = 4096;

/// Whether the running CPU has AVX2 and FMA: passes that find them run
/// copies of their loops compiled for them (four f64 lanes instead of two).
/// Without explicit FMA intrinsics the compiler does not fuse a multiply and
/// an add, so such a copy computes bit for bit what the portable one does.
#[cfg(target_arch = "x86_64")]
pub fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Map every row block to a partial result in parallel, then fold the partials in block order.
pub fn fold_blocks<T: Send>(
    rows: usize,
    map: impl Fn(Range<usize>) -> T + Sync,
    mut combine: impl FnMut(&mut T, T),
    empty: T,
) -> T {
    let partials: Vec<T> = (0..rows.div_ceil(ROWS_PER_BLOCK))
        .into_par_iter()
        .map(|b| map(b * ROWS_PER_BLOCK..((b + 1) * ROWS_PER_BLOCK).min(rows)))
        .collect();
    let mut acc = empty;
    for p in partials {
        combine(&mut acc, p);
    }
    acc
}

/// Element-wise `acc += part`.
pub fn add_into(acc: &mut Vec<f64>, part: Vec<f64>) {
    if acc.is_empty() {
        *acc = part;
    } else {
        acc.iter_mut().zip(part).for_each(|(a, p)| *a += p);
    }
}

/// Independent accumulators of [`dot`]: enough to hide the add latency with
/// four 4-lane vectors.
const DOT_LANES: usize = 16;

/// A dot product with `DOT_LANES` independent accumulators (combined in a
/// fixed order), so the loop vectorizes and pipelines.
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; DOT_LANES];
    let (ca, cb) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..DOT_LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f64>() + tail
}

/// Mirror the lower triangle of a row-major `n x n` matrix into the upper.
pub fn symmetrize(m: &mut [f64], n: usize) {
    for j in 0..n {
        for k in 0..j {
            m[k * n + j] = m[j * n + k];
        }
    }
}

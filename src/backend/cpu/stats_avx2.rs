//! Block statistics of `f32` columns with explicit AVX2 + FMA: the hot path of
//! fitting normalization statistics.
//!
//! Same definition as the portable loop in [`super::stats`] (count, mean, sum
//! of squared deviations, min and max of the values that are neither null nor
//! NaN, accumulated in f64), computed in one pass over the block: each value
//! is taken relative to a shift, the block's first counted value, so that
//! `m2 = sum(d^2) - sum(d)^2 / n` cannot cancel badly: the shift is one of the
//! values, so `m2 >= (shift - mean)^2` and the subtracted `sum(d)^2 / n =
//! n (shift - mean)^2` is at most `n` times `m2`, which bounds the relative
//! error of `m2` by about `2 n` f64 epsilons (4e-12 for a block of 8192 rows),
//! however far the first value lies from the rest. (Every `d = x - shift` of
//! two f32 values is exact in f64.) What makes it fast is that nothing is
//! latency-bound: independent f64 accumulators, validity read straight from
//! the Arrow bitmap (eight rows per byte, expanded to a lane mask), rows that do
//! not count replaced by the shift (so they add nothing and need no masks
//! downstream), minimum and maximum kept in f32 (exact: every f32 is an f64).
//! Lanes are combined in a fixed order, so a block's result does not depend on
//! the thread that computed it.

use std::arch::x86_64::*;

use arrow_buffer::BooleanBuffer;

use super::stats::ColumnStats;

/// Rows per validity word.
const WORD: usize = 64;

/// Statistics of `values`, whose validity is `valid` (`None`: no nulls);
/// `None` for a block without a finite value to shift by (only nulls, NaN
/// and infinities), which the caller leaves to the portable loop. Callers
/// check that the running CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) fn f32_block(values: &[f32], valid: Option<&BooleanBuffer>) -> Option<ColumnStats> {
    let n = values.len();
    let mut words = Vec::new();
    let nulls = match valid {
        Some(bits) => {
            let chunks = bits.inner().bit_chunks(bits.offset(), bits.len());
            words.extend(chunks.iter());
            if chunks.remainder_len() > 0 {
                words.push(chunks.remainder_bits());
            }
            (n - bits.count_set_bits()) as u64
        }
        None => 0,
    };
    // A finite shift keeps every counted infinity infinite in `d`, as the
    // reference's sums do.
    let first = (0..n).find(|&i| values[i].is_finite() && counted_scalar(values[i], &words, i))?;
    let shift = values[first];
    let pass = if nulls > 0 {
        shifted_pass::<true>(values, &words, shift)
    } else {
        shifted_pass::<false>(values, &words, shift)
    };
    let count = pass.count;
    let nans = n as u64 - nulls - count;
    let mean_d = pass.sum / count as f64;
    // Rounding may leave a tiny negative for a constant block; infinities
    // in the data make it NaN, which stays (as the reference's does).
    let m2 = pass.sum_sq - pass.sum * mean_d;
    Some(ColumnStats {
        count: count + nans,
        nulls,
        nans,
        mean: f64::from(shift) + mean_d,
        m2: if m2 < 0.0 { 0.0 } else { m2 },
        min: f64::from(pass.min),
        max: f64::from(pass.max),
    })
}

/// One pass over a block: count, sums of `d = x - shift` and of `d^2`, min
/// and max, over the rows that count.
struct ShiftedPass {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f32,
    max: f32,
}

/// Lane mask of the eight rows whose validity bits are `byte`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn byte_mask(byte: u8) -> __m256 {
    let select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let bits = _mm256_and_si256(_mm256_set1_epi32(i32::from(byte)), select);
    _mm256_castsi256_ps(_mm256_cmpeq_epi32(bits, select))
}

/// Lanes that count: not NaN and, with `NULLS`, valid per `word`'s byte `g`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn counted<const NULLS: bool>(x: __m256, word: u64, g: usize) -> __m256 {
    let ordered = _mm256_cmp_ps::<_CMP_ORD_Q>(x, x);
    if NULLS {
        _mm256_and_ps(ordered, byte_mask((word >> (8 * g)) as u8))
    } else {
        ordered
    }
}

/// Validity bits of rows `64 w .. 64 w + 63` (`words` is empty without nulls).
#[inline(always)]
fn word_of(words: &[u64], w: usize) -> u64 {
    words.get(w).copied().unwrap_or(u64::MAX)
}

/// Whether row `i` counts, for the scalar tail (`words` is empty without nulls).
#[inline(always)]
fn counted_scalar(x: f32, words: &[u64], i: usize) -> bool {
    !x.is_nan()
        && words
            .get(i / WORD)
            .is_none_or(|w| (w >> (i % WORD)) & 1 == 1)
}

/// The two f64 halves of eight f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn widen(x: __m256) -> (__m256d, __m256d) {
    (
        _mm256_cvtps_pd(_mm256_castps256_ps128(x)),
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)),
    )
}

/// Sum of four f64 accumulators of four lanes each, in a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn reduce_sum(acc: [__m256d; 4]) -> f64 {
    let v = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3]));
    let mut lanes = [0.0f64; 4];
    // SAFETY: `lanes` holds four f64.
    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), v) };
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
}

/// Count, sums of `d = x - shift` and `d^2`, min and max over the rows that
/// count. Rows that do not count become `shift`: `d = 0`, and min and max
/// already include `shift` (itself a counted value). Whole 64-row words are
/// vectorized (eight loads of eight lanes, reading `values[..n / 64 * 64]`);
/// the last partial word runs scalar.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn shifted_pass<const NULLS: bool>(values: &[f32], words: &[u64], shift: f32) -> ShiftedPass {
    let full = values.len() / WORD;
    let (shift_ps, shift_pd) = (_mm256_set1_ps(shift), _mm256_set1_pd(f64::from(shift)));
    let mut sum = [_mm256_setzero_pd(); 4];
    let mut sum_sq = [_mm256_setzero_pd(); 4];
    let mut min = [shift_ps; 2];
    let mut max = [shift_ps; 2];
    // Per lane, minus the number of rows that counted (a mask lane is -1).
    let mut uncounted = _mm256_setzero_si256();
    for (w, chunk) in values.chunks_exact(WORD).enumerate() {
        let word = word_of(words, w);
        for g in 0..WORD / 8 {
            // SAFETY: lanes 8 g .. 8 g + 7 lie within the 64-value chunk.
            let x = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * g)) };
            let m = counted::<NULLS>(x, word, g);
            uncounted = _mm256_add_epi32(uncounted, _mm256_castps_si256(m));
            let x = _mm256_blendv_ps(shift_ps, x, m);
            let b = g & 1;
            min[b] = _mm256_min_ps(min[b], x);
            max[b] = _mm256_max_ps(max[b], x);
            let (lo, hi) = widen(x);
            let (dlo, dhi) = (_mm256_sub_pd(lo, shift_pd), _mm256_sub_pd(hi, shift_pd));
            let a = b * 2;
            sum[a] = _mm256_add_pd(sum[a], dlo);
            sum[a + 1] = _mm256_add_pd(sum[a + 1], dhi);
            sum_sq[a] = _mm256_fmadd_pd(dlo, dlo, sum_sq[a]);
            sum_sq[a + 1] = _mm256_fmadd_pd(dhi, dhi, sum_sq[a + 1]);
        }
    }
    let mut lanes = [[0.0f32; 8]; 2];
    let mut counts = [0i32; 8];
    // SAFETY: each row of `lanes` holds eight f32, `counts` eight i32.
    unsafe {
        _mm256_storeu_ps(lanes[0].as_mut_ptr(), _mm256_min_ps(min[0], min[1]));
        _mm256_storeu_ps(lanes[1].as_mut_ptr(), _mm256_max_ps(max[0], max[1]));
        _mm256_storeu_si256(counts.as_mut_ptr().cast(), uncounted);
    }
    let mut pass = ShiftedPass {
        count: counts.iter().map(|&c| u64::from(c.unsigned_abs())).sum(),
        sum: reduce_sum(sum),
        sum_sq: reduce_sum(sum_sq),
        min: lanes[0].iter().copied().fold(shift, f32::min),
        max: lanes[1].iter().copied().fold(shift, f32::max),
    };
    for (i, &x) in values.iter().enumerate().skip(full * WORD) {
        if counted_scalar(x, words, i) {
            let d = f64::from(x) - f64::from(shift);
            pass.count += 1;
            pass.sum += d;
            pass.sum_sq += d * d;
            pass.min = pass.min.min(x);
            pass.max = pass.max.max(x);
        }
    }
    pass
}

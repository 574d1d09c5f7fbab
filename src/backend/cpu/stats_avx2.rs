//! Block statistics of `f32` columns with explicit AVX2 + FMA: the hot path of
//! fitting normalization statistics.
//!
//! Same definition as the portable loop in [`super::stats`]: two passes over a
//! block held in cache, f64 sums of the values, then f64 sums of squared
//! deviations from the block mean; nulls and NaN are left out of both. What
//! makes it fast is that nothing is latency-bound: four independent f64
//! accumulators per pass, validity read straight from the Arrow bitmap (eight
//! rows per byte, expanded to a lane mask), minimum and maximum kept in f32
//! (exact: every f32 is an f64), and the second pass drops its masks when the
//! block has neither nulls nor NaN. Lanes are combined in a fixed order, so a
//! block's result does not depend on the thread that computed it.

use std::arch::x86_64::*;

use arrow_buffer::BooleanBuffer;

use super::stats::ColumnStats;

/// Rows per validity word.
const WORD: usize = 64;

/// Statistics of `values`, whose validity is `valid` (`None`: no nulls).
/// Callers check that the running CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) fn f32_block(values: &[f32], valid: Option<&BooleanBuffer>) -> ColumnStats {
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
    let pass1 = if nulls > 0 {
        first_pass::<true>(values, &words)
    } else {
        first_pass::<false>(values, &words)
    };
    let count = pass1.count;
    let nans = n as u64 - nulls - count;
    if count == 0 {
        return ColumnStats {
            count: nans,
            nulls,
            nans,
            ..ColumnStats::EMPTY
        };
    }
    let mean = pass1.sum / count as f64;
    let m2 = if count == n as u64 {
        second_pass::<false>(values, &words, mean)
    } else {
        second_pass::<true>(values, &words, mean)
    };
    ColumnStats {
        count: count + nans,
        nulls,
        nans,
        mean,
        m2,
        min: f64::from(pass1.min),
        max: f64::from(pass1.max),
    }
}

/// What the first pass learns: count, sum, min and max of the counted values.
struct FirstPass {
    count: u64,
    sum: f64,
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

/// Count, sum, min and max over the rows that count. Whole 64-row words are
/// vectorized (eight loads of eight lanes, reading `values[..n / 64 * 64]`);
/// the last partial word runs scalar.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn first_pass<const NULLS: bool>(values: &[f32], words: &[u64]) -> FirstPass {
    let full = values.len() / WORD;
    let mut sum = [_mm256_setzero_pd(); 4];
    let mut min = [_mm256_set1_ps(f32::INFINITY); 2];
    let mut max = [_mm256_set1_ps(f32::NEG_INFINITY); 2];
    let mut count = 0u64;
    for (w, chunk) in values.chunks_exact(WORD).enumerate() {
        let word = word_of(words, w);
        for g in 0..WORD / 8 {
            // SAFETY: lanes 8 g .. 8 g + 7 lie within the 64-value chunk.
            let x = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * g)) };
            let m = counted::<NULLS>(x, word, g);
            count += u64::from(_mm256_movemask_ps(m).count_ones());
            let (lo, hi) = widen(_mm256_and_ps(x, m));
            let a = (g & 1) * 2;
            sum[a] = _mm256_add_pd(sum[a], lo);
            sum[a + 1] = _mm256_add_pd(sum[a + 1], hi);
            let b = g & 1;
            min[b] = _mm256_min_ps(
                min[b],
                _mm256_blendv_ps(_mm256_set1_ps(f32::INFINITY), x, m),
            );
            max[b] = _mm256_max_ps(
                max[b],
                _mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), x, m),
            );
        }
    }
    let mut lanes = [[0.0f32; 8]; 2];
    // SAFETY: each row of `lanes` holds eight f32.
    unsafe {
        _mm256_storeu_ps(lanes[0].as_mut_ptr(), _mm256_min_ps(min[0], min[1]));
        _mm256_storeu_ps(lanes[1].as_mut_ptr(), _mm256_max_ps(max[0], max[1]));
    }
    let mut pass = FirstPass {
        count,
        sum: reduce_sum(sum),
        min: lanes[0].iter().copied().fold(f32::INFINITY, f32::min),
        max: lanes[1].iter().copied().fold(f32::NEG_INFINITY, f32::max),
    };
    for (i, &x) in values.iter().enumerate().skip(full * WORD) {
        if counted_scalar(x, words, i) {
            pass.count += 1;
            pass.sum += f64::from(x);
            pass.min = pass.min.min(x);
            pass.max = pass.max.max(x);
        }
    }
    pass
}

/// Sum of squared deviations from `mean` over the rows that count; with
/// `MASKED` false every row counts (no nulls, no NaN), so no masks are built.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn second_pass<const MASKED: bool>(values: &[f32], words: &[u64], mean: f64) -> f64 {
    let full = values.len() / WORD;
    let centre = _mm256_set1_pd(mean);
    let mut m2 = [_mm256_setzero_pd(); 4];
    for (w, chunk) in values.chunks_exact(WORD).enumerate() {
        let word = word_of(words, w);
        for g in 0..WORD / 8 {
            // SAFETY: lanes 8 g .. 8 g + 7 lie within the 64-value chunk.
            let x = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * g)) };
            let (lo, hi) = widen(x);
            let (mut dlo, mut dhi) = (_mm256_sub_pd(lo, centre), _mm256_sub_pd(hi, centre));
            if MASKED {
                // Sign-extending the 32-bit lane masks gives 64-bit lane masks.
                let m = _mm256_castps_si256(counted::<true>(x, word, g));
                let mlo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(m));
                let mhi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(m));
                dlo = _mm256_and_pd(dlo, _mm256_castsi256_pd(mlo));
                dhi = _mm256_and_pd(dhi, _mm256_castsi256_pd(mhi));
            }
            let a = (g & 1) * 2;
            m2[a] = _mm256_fmadd_pd(dlo, dlo, m2[a]);
            m2[a + 1] = _mm256_fmadd_pd(dhi, dhi, m2[a + 1]);
        }
    }
    let mut total = reduce_sum(m2);
    for (i, &x) in values.iter().enumerate().skip(full * WORD) {
        if !MASKED || counted_scalar(x, words, i) {
            let d = f64::from(x) - mean;
            total += d * d;
        }
    }
    total
}

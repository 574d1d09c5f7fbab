//! Elementary functions written so that the compiler vectorizes them.
//!
//! The C library's `expf` is a call per element, which keeps a fused kernel's
//! loop scalar: the sigmoid of a scoring kernel then costs more than reading
//! all its feature columns. [`exp_f32`] is branch-free arithmetic (Cody-Waite
//! range reduction and a degree-6 polynomial, as in Cephes), so the block
//! loops of the CPU kernel run it eight lanes at a time under AVX2.
//! [`sigmoid`], [`softmax`] and [`logistic_loss`] are the numerically stable
//! forms every trainer and the training kernels' CPU reference share.

/// `e ** x` for `f32`, within 2 ulp of the correctly rounded result over the
/// whole range (subnormal results included), exact at 0, `inf` above
/// 88.72284, `0` below -103.97208, and NaN for NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // Beyond these bounds the result is inf or 0 either way; clamping keeps
    // the exponent arithmetic below in range. NaN passes through `clamp`.
    let x = x.clamp(-104.0, 89.0);
    // k = round(x / ln 2), by the add-a-magic-number trick: afterwards the
    // low bits of `shifted` hold k, and `shifted - MAGIC` is k as a float.
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let k = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    let kf = shifted - MAGIC;
    // r = x - k ln 2, with ln 2 split in two so that k * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let r = x - kf * LN2_HI - kf * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2^k in two factors, each a normal float for k in [-150, 129].
    let half = k >> 1;
    let scale = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    er * scale(half) * scale(k - half)
}

/// The binary cross-entropy of the probability `sigmoid(z)` against the
/// label `y` (0 or 1), `-y ln s(z) - (1 - y) ln(1 - s(z))`, computed from the
/// logit as `softplus(z) - y z` so that it neither overflows nor loses the
/// tail: the one definition the trainers and the training kernels' CPU
/// reference share.
#[inline]
pub fn logistic_loss(z: f64, y: f64) -> f64 {
    z.max(0.0) - y * z + (-z.abs()).exp().ln_1p()
}

/// [`logistic_loss`] and [`sigmoid`] of one logit, both from one
/// exponential; each equal to the bit to its function's own answer.
#[inline]
pub fn logistic_loss_and_sigmoid(z: f64, y: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let loss = z.max(0.0) - y * z + e.ln_1p();
    let p = if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (loss, p)
}

/// `1 / (1 + e^-z)`, without overflow for large `|z|`.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The softmax of `logits`, written into `probabilities` (of the same
/// length), and `ln Σ e^z` (log-sum-exp), both computed with the largest
/// logit subtracted first so that nothing overflows.
#[inline]
pub fn softmax(logits: &[f64], probabilities: &mut [f64]) -> f64 {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (p, &z) in probabilities.iter_mut().zip(logits) {
        *p = (z - max).exp();
        sum += *p;
    }
    for p in probabilities.iter_mut() {
        *p /= sum;
    }
    max + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite f32 or both 0.
    fn ulps(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let bits = v.to_bits() as i32;
            if bits < 0 { i32::MIN - bits } else { bits }
        };
        key(a).abs_diff(key(b))
    }

    #[test]
    fn exp_is_within_two_ulp_everywhere() {
        let mut worst = (0, 0.0f32);
        let mut x = -110.0f32;
        while x < 90.0 {
            let want = f64::from(x).exp() as f32;
            let got = exp_f32(x);
            let d = ulps(got, want);
            if d > worst.0 {
                worst = (d, x);
            }
            // Steps of about 1e-4 relative, so every binade and every
            // reduction interval is visited many times.
            x += (x.abs() * 1e-4).max(1e-6);
        }
        assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn the_shared_exponential_gives_the_separate_answers() {
        for z in [-800.0, -30.0, -1.5, -0.0, 0.0, 1e-300, 0.7, 36.0, 800.0] {
            for y in [0.0, 1.0] {
                let (loss, p) = logistic_loss_and_sigmoid(z, y);
                assert_eq!(loss.to_bits(), logistic_loss(z, y).to_bits(), "z {z} y {y}");
                assert_eq!(p.to_bits(), sigmoid(z).to_bits(), "z {z}");
            }
        }
    }

    #[test]
    fn sigmoid_and_softmax_are_stable_at_the_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(800.0), 1.0);
        assert_eq!(sigmoid(-800.0), 0.0);
        assert!((sigmoid(-3.0) + sigmoid(3.0) - 1.0).abs() < 1e-15);
        let mut p = [0.0; 3];
        let lse = softmax(&[1000.0, 1000.0, -1000.0], &mut p);
        assert_eq!(p, [0.5, 0.5, 0.0]);
        assert!((lse - (1000.0 + 2f64.ln())).abs() < 1e-12);
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(-104.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(1.0), std::f32::consts::E);
    }
}

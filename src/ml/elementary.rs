//! Elementary functions as plain arithmetic, so that a loop over them
//! vectorizes: libm's `exp` and `log1p` are calls, one value at a time, and
//! were most of a logistic loss pass. Each is within a few ulp of the
//! correctly rounded answer over the range it serves (tested against std
//! on a dense sweep), uses no fused multiply-add (so a copy compiled for
//! AVX2 computes what the portable one does, bit for bit; see
//! [`avx2_fma`](super::pass::avx2_fma)), and branches only as selects.

/// `ln 2` split so that `n * LN2_HI` is exact for the exponents used
/// (fdlibm's constants).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// `1.5 * 2^52`: adding it to a value below `2^51` in magnitude rounds the
/// value to an integer held in the sum's low mantissa bits.
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// Below this `e^x` is subnormal; [`exp_nonpositive`] answers 0 there.
const SMALLEST_EXPONENT: f64 = -708.0;

/// `1 / k!` for `k = 0..14`: the Taylor series of `e^r`, enough for
/// `|r| <= ln 2 / 2` to 4e-18 relative.
const EXP_TERMS: [f64; 14] = {
    let mut terms = [1.0; 14];
    let mut k = 1;
    while k < 14 {
        terms[k] = terms[k - 1] / k as f64;
        k += 1;
    }
    terms
};

/// `1 / (2k + 1)` for `k = 0..16`: `atanh(s) / s` as a series in `s^2`,
/// enough for `s <= 1/3` to 2e-17 relative.
const ATANH_TERMS: [f64; 16] = {
    let mut terms = [1.0; 16];
    let mut k = 1;
    while k < 16 {
        terms[k] = 1.0 / (2 * k + 1) as f64;
        k += 1;
    }
    terms
};

/// `Σ terms[k] x^k` by Horner's rule.
#[inline(always)]
fn series(terms: &[f64], x: f64) -> f64 {
    let mut sum = 0.0;
    for &t in terms.iter().rev() {
        sum = sum * x + t;
    }
    sum
}

/// `e^x` for `x <= 0` (a NaN stays NaN); 0 below -708, where the answer is
/// subnormal. `x = n ln 2 + r` with `|r| <= ln 2 / 2`, so `e^x = 2^n e^r`,
/// with `2^n` built from its bits.
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    let reduced = if x < SMALLEST_EXPONENT {
        SMALLEST_EXPONENT
    } else {
        x
    };
    let shifted = reduced * std::f64::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (reduced - n * LN2_HI) - n * LN2_LO;
    // The low bits of `shifted` hold `n` in two's complement.
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    let two_to_n = f64::from_bits(n_bits.wrapping_add(1023) << 52);
    let e = series(&EXP_TERMS, r) * two_to_n;
    if x < SMALLEST_EXPONENT { 0.0 } else { e }
}

/// `ln(1 + e)` for `0 <= e <= 1`, as `2 atanh(s)` with `s = e / (2 + e)`
/// (at most 1/3): no cancellation for small `e`.
#[inline(always)]
pub fn ln_1p_unit(e: f64) -> f64 {
    let s = e / (2.0 + e);
    2.0 * s * series(&ATANH_TERMS, s * s)
}

/// The logistic loss `ln(1 + e^z) - y z` of one logit and its sigmoid, from
/// one exponential; what [`crate::ir::math::logistic_loss_and_sigmoid`]
/// computes, to a few ulp, in a form that vectorizes.
#[inline(always)]
pub fn logistic_loss_and_sigmoid(z: f64, y: f64) -> (f64, f64) {
    let e = exp_nonpositive(-z.abs());
    let loss = z.max(0.0) - y * z + ln_1p_unit(e);
    let p = if z >= 0.0 { 1.0 } else { e } / (1.0 + e);
    (loss, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `got` within `ulps` units in the last place of `want`.
    fn close(got: f64, want: f64, ulps: f64) -> bool {
        (got - want).abs() <= ulps * f64::EPSILON * want.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn exp_is_within_two_ulp_of_std_down_to_the_subnormals() {
        let mut x = 0.0;
        while x > -708.0 {
            let (got, want) = (exp_nonpositive(x), x.exp());
            assert!(close(got, want, 2.0), "exp({x}) = {got}, std {want}");
            x -= 0.000_731;
        }
        for x in [-0.0, -1e-300, -1e-17, -0.5 * std::f64::consts::LN_2, -707.99] {
            assert!(close(exp_nonpositive(x), x.exp(), 2.0), "exp({x})");
        }
        assert_eq!(exp_nonpositive(-708.5), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
    }

    #[test]
    fn ln_1p_is_within_three_ulp_of_std_on_the_unit_interval() {
        let mut e = 1.0;
        while e > 1e-300 {
            for e in [e, e * 0.999_7, e * 0.5001] {
                let (got, want) = (ln_1p_unit(e), e.ln_1p());
                assert!(close(got, want, 3.0), "ln_1p({e}) = {got}, std {want}");
            }
            e *= 0.9993;
        }
        assert_eq!(ln_1p_unit(0.0), 0.0);
    }

    #[test]
    fn the_loss_and_sigmoid_match_the_scalar_ones() {
        for i in -4000..=4000 {
            let z = f64::from(i) * 0.0173;
            for y in [0.0, 1.0] {
                let (loss, p) = logistic_loss_and_sigmoid(z, y);
                let (want_loss, want_p) = crate::ir::math::logistic_loss_and_sigmoid(z, y);
                assert!((loss - want_loss).abs() <= 4.0 * f64::EPSILON * want_loss.abs().max(1.0));
                assert!(close(p, want_p, 4.0), "sigmoid({z}) = {p}, scalar {want_p}");
            }
        }
    }
}

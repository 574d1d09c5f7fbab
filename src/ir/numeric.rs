//! The numeric traits the operators are generic over: [`Native`] values,
//! [`Num`]bers with arithmetic, [`Float`]s with the float functions;
//! implemented for the column types (`i32`, `i64`, `f32`, `f64`).

use std::fmt;

use super::dtype::DType;

/// A primitive value type the kernels compute on.
pub trait Native: Copy + Default + PartialOrd + Send + Sync + fmt::Debug + 'static {
    /// The dtype this Rust type represents.
    const DTYPE: DType;
    /// Conversion from f64 (used for literals); saturating for integers, NaN to 0.
    fn from_f64(v: f64) -> Self;
    /// Conversion to f64.
    fn to_f64(self) -> f64;
}

/// Arithmetic on integers (wrapping) and floats (IEEE).
pub trait Num: Native {
    /// `a + b`.
    fn add(a: Self, b: Self) -> Self;
    /// `a - b`.
    fn sub(a: Self, b: Self) -> Self;
    /// `a * b`.
    fn mul(a: Self, b: Self) -> Self;
    /// `-a`.
    fn neg(a: Self) -> Self;
    /// `|a|`.
    fn abs(a: Self) -> Self;
    /// Whether the value is NaN (always false for integers).
    fn is_nan(a: Self) -> bool;
}

/// Float-only functions.
pub trait Float: Num {
    /// `a / b`.
    fn div(a: Self, b: Self) -> Self;
    /// `a ** b`.
    fn pow(a: Self, b: Self) -> Self;
    /// Square root.
    fn sqrt(a: Self) -> Self;
    /// `e ** a`.
    fn exp(a: Self) -> Self;
    /// Natural logarithm.
    fn ln(a: Self) -> Self;
    /// `ln(1 + a)`, accurate near zero.
    fn ln_1p(a: Self) -> Self;
    /// `if keep { a } else { b }` computed on the bits: branch-free even where
    /// the compiler would turn a [`select`](super::ops::select) of two loads into a jump.
    fn keep_or(keep: bool, a: Self, b: Self) -> Self;
    /// The constant one.
    const ONE: Self;
}

macro_rules! impl_int {
    ($t:ty, $dt:expr) => {
        impl Native for $t {
            const DTYPE: DType = $dt;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
        impl Num for $t {
            #[inline(always)]
            fn add(a: Self, b: Self) -> Self {
                a.wrapping_add(b)
            }
            #[inline(always)]
            fn sub(a: Self, b: Self) -> Self {
                a.wrapping_sub(b)
            }
            #[inline(always)]
            fn mul(a: Self, b: Self) -> Self {
                a.wrapping_mul(b)
            }
            #[inline(always)]
            fn neg(a: Self) -> Self {
                a.wrapping_neg()
            }
            #[inline(always)]
            fn abs(a: Self) -> Self {
                a.wrapping_abs()
            }
            #[inline(always)]
            fn is_nan(_: Self) -> bool {
                false
            }
        }
    };
}
impl_int!(i32, DType::Int32);
impl_int!(i64, DType::Int64);

macro_rules! impl_float {
    ($t:ty, $bits:ty, $dt:expr, $exp:path) => {
        impl Native for $t {
            const DTYPE: DType = $dt;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
        impl Num for $t {
            #[inline(always)]
            fn add(a: Self, b: Self) -> Self {
                a + b
            }
            #[inline(always)]
            fn sub(a: Self, b: Self) -> Self {
                a - b
            }
            #[inline(always)]
            fn mul(a: Self, b: Self) -> Self {
                a * b
            }
            #[inline(always)]
            fn neg(a: Self) -> Self {
                -a
            }
            #[inline(always)]
            fn abs(a: Self) -> Self {
                a.abs()
            }
            #[inline(always)]
            fn is_nan(a: Self) -> bool {
                a.is_nan()
            }
        }
        impl Float for $t {
            const ONE: Self = 1.0;
            #[inline(always)]
            fn div(a: Self, b: Self) -> Self {
                a / b
            }
            #[inline(always)]
            fn pow(a: Self, b: Self) -> Self {
                a.powf(b)
            }
            #[inline(always)]
            fn sqrt(a: Self) -> Self {
                a.sqrt()
            }
            #[inline(always)]
            fn exp(a: Self) -> Self {
                $exp(a)
            }
            #[inline(always)]
            fn ln(a: Self) -> Self {
                a.ln()
            }
            #[inline(always)]
            fn ln_1p(a: Self) -> Self {
                a.ln_1p()
            }
            #[inline(always)]
            fn keep_or(keep: bool, a: Self, b: Self) -> Self {
                let mask = <$bits>::from(keep).wrapping_neg();
                <$t>::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
            }
        }
    };
}
impl_float!(f32, u32, DType::Float32, super::math::exp_f32);
impl_float!(f64, u64, DType::Float64, f64::exp);

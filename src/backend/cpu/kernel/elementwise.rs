//! The loops of one operator node over a block: unary and binary operators,
//! Kleene logic, clip, copy and cast, each operation as [`crate::ir::ops`]
//! defines it.

use super::registers::{Buf, Operand, Pick, Reg, Src, Values, map1, map2};
use crate::ir::ops::{Native, clip};
use crate::ir::{BinaryOp, DType, UnaryOp, specialize_binary, specialize_unary};

/// Dispatch on a numeric output buffer, binding `$out` to its `&mut Vec<T>`.
macro_rules! dispatch_numeric {
    ($buf:expr, |$out:ident| $body:expr) => {
        match $buf {
            Buf::I32($out) => $body,
            Buf::I64($out) => $body,
            Buf::F32($out) => $body,
            Buf::F64($out) => $body,
            _ => unreachable!("numeric operator on a non-numeric register"),
        }
    };
}

/// `clip(x, lo, hi)` for any numeric dtype.
#[inline(always)]
pub(super) fn clip_values(
    x: &Values<'_, '_>,
    lo: &Values<'_, '_>,
    hi: &Values<'_, '_>,
    out: &mut Buf<'_>,
) {
    dispatch_numeric!(out, |out| ternary(x, lo, hi, out, clip));
}

/// `out[i] = f(x[i], lo[i], hi[i])`, one loop when the bounds are constants.
#[inline(always)]
fn ternary<'r, T: Native + Pick<'r>>(
    x: &Values<'r, '_>,
    lo: &Values<'r, '_>,
    hi: &Values<'r, '_>,
    out: &mut [T],
    f: fn(T, T, T) -> T,
) {
    let (x, lo, hi) = (T::pick(x), T::pick(lo), T::pick(hi));
    match (lo, hi) {
        (Src::Splat(lo), Src::Splat(hi)) => map1(x, out, |x| f(x, lo, hi)),
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = f(x.at(i), lo.at(i), hi.at(i));
            }
        }
    }
}

/// `out = op(a)`, specialized per operator and dtype.
#[inline(always)]
pub(super) fn unary(op: UnaryOp, a: &Values<'_, '_>, out: &mut Buf<'_>) {
    specialize_unary!(op, |OP| match (a, out) {
        (Values::Bool(a), Buf::Bool(out)) => map1(*a, out, |x| OP.logical(x)),
        (Values::I32(a), Buf::I32(out)) => map1(*a, out, |x| OP.numeric(x)),
        (Values::I64(a), Buf::I64(out)) => map1(*a, out, |x| OP.numeric(x)),
        (Values::F32(a), Buf::F32(out)) => map1(*a, out, |x| OP.float(x)),
        (Values::F64(a), Buf::F64(out)) => map1(*a, out, |x| OP.float(x)),
        _ => unreachable!("type checker guarantees operand types"),
    })
}

/// `out = op(a, b)` for arithmetic and comparisons, specialized per operator and dtype.
#[inline(always)]
pub(super) fn binary(op: BinaryOp, a: &Values<'_, '_>, b: &Values<'_, '_>, out: &mut Buf<'_>) {
    specialize_binary!(op, |OP| match (a, b, out) {
        (Values::I32(a), Values::I32(b), Buf::I32(out)) =>
            map2(*a, *b, out, |x, y| OP.numeric(x, y)),
        (Values::I64(a), Values::I64(b), Buf::I64(out)) =>
            map2(*a, *b, out, |x, y| OP.numeric(x, y)),
        (Values::F32(a), Values::F32(b), Buf::F32(out)) => map2(*a, *b, out, |x, y| OP.float(x, y)),
        (Values::F64(a), Values::F64(b), Buf::F64(out)) => map2(*a, *b, out, |x, y| OP.float(x, y)),
        (Values::Bool(a), Values::Bool(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::I32(a), Values::I32(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::I64(a), Values::I64(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::F32(a), Values::F32(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::F64(a), Values::F64(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::Str(a), Values::Str(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        _ => unreachable!("type checker guarantees operand types"),
    })
}

/// Kleene `and` / `or`: a known `false` (for and) or `true` (for or) decides
/// the result even when the other side is null.
#[inline(always)]
pub(super) fn kleene(op: BinaryOp, a: Operand<'_, '_>, b: Operand<'_, '_>, dst: &mut Reg<'_>) {
    let (Values::Bool(av), Values::Bool(bv)) = (a.values, b.values) else {
        unreachable!("logical operands are bool")
    };
    let Buf::Bool(out) = &mut dst.values else {
        unreachable!("logical result is bool")
    };
    let decides = op == BinaryOp::Or; // the value that decides the result alone
    map2(av, bv, out, |x, y| op.logical(x, y));
    if a.valid.is_none() && b.valid.is_none() {
        dst.has_nulls = false;
        return;
    }
    let va = |i: usize| a.valid.is_none_or(|v| v[i]);
    let vb = |i: usize| b.valid.is_none_or(|v| v[i]);
    dst.has_nulls = true;
    dst.valid.clear();
    #[allow(
        clippy::needless_range_loop,
        reason = "row i of four parallel columns and two validity masks"
    )]
    for i in 0..out.len() {
        let a_decides = va(i) && av.at(i) == decides;
        let b_decides = vb(i) && bv.at(i) == decides;
        dst.valid.push((va(i) && vb(i)) || a_decides || b_decides);
        out[i] = if a_decides || b_decides {
            decides
        } else {
            out[i]
        };
    }
}

/// `out = a`: a memcpy for slices, a fill for constants.
#[inline(always)]
pub(super) fn copy<'a>(a: &Values<'_, 'a>, out: &mut Buf<'a>) {
    fn put<T: Copy>(src: Src<'_, T>, out: &mut [T]) {
        match src {
            Src::Slice(s) => out.copy_from_slice(s),
            Src::Splat(v) => out.fill(v),
        }
    }
    match (a, out) {
        (Values::Bool(a), Buf::Bool(o)) => put(*a, o),
        (Values::I32(a), Buf::I32(o)) => put(*a, o),
        (Values::I64(a), Buf::I64(o)) => put(*a, o),
        (Values::F32(a), Buf::F32(o)) => put(*a, o),
        (Values::F64(a), Buf::F64(o)) => put(*a, o),
        (Values::Str(a), Buf::Str(o)) => put(*a, o),
        _ => unreachable!("copy within one dtype"),
    }
}

/// Numeric and boolean conversions. Returns validity for conversions that can
/// fail (float to integer: NaN or out of range becomes null).
#[inline(always)]
pub(super) fn cast<'a>(
    a: &Values<'_, 'a>,
    out: &mut Buf<'a>,
    from: DType,
    to: DType,
) -> Option<Vec<bool>> {
    if from == to {
        copy(a, out);
        return None;
    }
    fn num<'r, T: Native + Pick<'r>, O: Native>(
        a: &Values<'r, '_>,
        out: &mut [O],
    ) -> Option<Vec<bool>> {
        let a = T::pick(a);
        map1(a, out, |x| O::from_f64(x.to_f64()));
        if T::DTYPE.is_float() && O::DTYPE.is_integer() {
            // Truncate first, then require the integer to be representable:
            // [-2^31, 2^31) or [-2^63, 2^63), both exact in f64. NaN fails both tests.
            let bound = if O::DTYPE == DType::Int32 {
                2f64.powi(31)
            } else {
                2f64.powi(63)
            };
            let mut valid = vec![false; out.len()];
            map1(a, &mut valid, |x| {
                let t = x.to_f64().trunc();
                t >= -bound && t < bound
            });
            return Some(valid);
        }
        None
    }
    fn from_bool<O: Native>(a: &Values<'_, '_>, out: &mut [O]) {
        map1(bool::pick(a), out, |x| O::from_f64(f64::from(u8::from(x))));
    }
    fn to_bool<'r, T: Native + Pick<'r>>(a: &Values<'r, '_>, out: &mut [bool]) {
        map1(T::pick(a), out, |x| x.to_f64() != 0.0);
    }
    macro_rules! from_num {
        ($t:ty) => {
            match out {
                Buf::I32(o) => num::<$t, i32>(a, o),
                Buf::I64(o) => num::<$t, i64>(a, o),
                Buf::F32(o) => num::<$t, f32>(a, o),
                Buf::F64(o) => num::<$t, f64>(a, o),
                Buf::Bool(o) => {
                    to_bool::<$t>(a, o);
                    None
                }
                _ => unreachable!("cast target checked by the type checker"),
            }
        };
    }
    match from {
        DType::Int32 => from_num!(i32),
        DType::Int64 => from_num!(i64),
        DType::Float32 => from_num!(f32),
        DType::Float64 => from_num!(f64),
        DType::Bool => {
            match out {
                Buf::I32(o) => from_bool(a, o),
                Buf::I64(o) => from_bool(a, o),
                Buf::F32(o) => from_bool(a, o),
                Buf::F64(o) => from_bool(a, o),
                _ => unreachable!("cast target checked by the type checker"),
            }
            None
        }
        DType::Utf8 => unreachable!("utf8 casts only to utf8"),
    }
}

//! The superinstructions (see `plan.rs`): an affine transform, and a dot
//! product of affine terms that walks the rows once for all of them. Each
//! loop is specialized on the affine's shape and the element type, and
//! computes every operation as [`crate::ir::ops`] defines it, in the order one
//! instruction per node would.

use super::exec::BlockView;
use super::plan::{Affine, Term};
use super::registers::{Buf, Operand, Pick, Reg, Src, Values, map2};
use crate::ir::ops::{Float, Native, clip};
use crate::ir::{BinaryOp, ExprId};

/// `clip((fill_null(x, f) ± a) (*|/) b, lo, hi)` over the block.
#[inline(always)]
pub(super) fn affine_op<'a>(affine: &Affine, block: BlockView<'_, 'a>, dst: &mut Reg<'a>) {
    let x = block.get(affine.x);
    // A fill removes the input's nulls.
    dst.valid_from(&[x.valid.filter(|_| affine.fill.is_none())]);
    affine_block(affine, &x, &mut dst.values);
}

/// `acc + weight * x` over the block.
#[inline(always)]
pub(super) fn mul_add_op<'a>(
    acc: ExprId,
    weight: f64,
    x: ExprId,
    block: BlockView<'_, 'a>,
    dst: &mut Reg<'a>,
) {
    let (acc, x) = (block.get(acc), block.get(x));
    dst.valid_from(&[acc.valid, x.valid]);
    dispatch_float!(&mut dst.values, |out| {
        let w = Native::from_f64(weight);
        map2(
            Pick::pick(&acc.values),
            Pick::pick(&x.values),
            out,
            |acc, x| BinaryOp::Add.float(acc, BinaryOp::Mul.float(w, x)),
        );
    });
}

/// `acc + terms[0] + terms[1] + ...` over the block.
#[inline(always)]
pub(super) fn dot_op<'a>(acc: ExprId, terms: &[Term], block: BlockView<'_, 'a>, dst: &mut Reg<'a>) {
    let acc = block.get(acc);
    let xs: Vec<Operand> = terms.iter().map(|t| block.get(t.affine.x)).collect();
    // A fill removes its input's nulls.
    let nulls = terms
        .iter()
        .zip(&xs)
        .map(|(t, x)| x.valid.filter(|_| t.affine.fill.is_none()));
    dst.valid_from(&std::iter::once(acc.valid).chain(nulls).collect::<Vec<_>>());
    dot_block(terms, &xs, &acc.values, &mut dst.values);
}

/// Dispatch on a float output buffer, binding `$out` to its `&mut Vec<T>`.
macro_rules! dispatch_float {
    ($buf:expr, |$out:ident| $body:expr) => {
        match $buf {
            Buf::F32($out) => $body,
            Buf::F64($out) => $body,
            _ => unreachable!("superinstructions are planned for float types only"),
        }
    };
}
use dispatch_float;

/// `y = clip((fill_null(x, f) ± shift) (*|/) scale, lo, hi)` per element: one
/// loop specialized for the affine's shape, each operation defined in
/// [`crate::ir::ops`].
#[inline(always)]
fn affine_block(affine: &Affine, x: &Operand<'_, '_>, out: &mut Buf<'_>) {
    #[inline(always)]
    fn run<'r, T: Float + Pick<'r>, const SUB: bool, const DIV: bool, const CLIP: bool>(
        affine: &Affine,
        x: &Operand<'r, '_>,
        out: &mut [T],
    ) {
        let transform = Transform::<T>::new(affine, x.valid);
        let y = |i: usize, x: T| transform.apply::<SUB, DIV, CLIP>(transform.filled(i, x));
        match T::pick(&x.values) {
            Src::Slice(xs) => {
                for (i, (o, &x)) in out.iter_mut().zip(xs).enumerate() {
                    *o = y(i, x);
                }
            }
            Src::Splat(x) => out.fill(y(0, x)),
        }
    }
    specialize_shape!(
        affine,
        out,
        |T, SUB, DIV, CLIP, out| run::<T, SUB, DIV, CLIP>(affine, x, out)
    );
}

/// `acc + w_1 * affine_1(x_1) + ... + w_k * affine_k(x_k)` per element, summed
/// left to right. Rows go by in chunks of one cache line of values; each
/// chunk's partial sums stay in vector registers while the terms stream by.
#[inline(always)]
fn dot_block(terms: &[Term], xs: &[Operand<'_, '_>], acc: &Values<'_, '_>, out: &mut Buf<'_>) {
    #[inline(always)]
    fn run<
        'r,
        T: Float + Pick<'r>,
        const SUB: bool,
        const DIV: bool,
        const CLIP: bool,
        const L: usize,
    >(
        terms: &[Term],
        xs: &[Operand<'r, '_>],
        acc: &Values<'r, '_>,
        out: &mut [T],
    ) {
        let n = out.len();
        // A constant input (rare: `fill_null(3.0, 0.0) * 2 ...`) is spread over
        // the block so every term streams a slice.
        let spread: Vec<Vec<T>> = xs
            .iter()
            .filter_map(|x| match T::pick(&x.values) {
                Src::Splat(v) => Some(vec![v; n]),
                Src::Slice(_) => None,
            })
            .collect();
        let mut spread = spread.iter();
        let bound: Vec<BlockTerm<'_, T>> = terms
            .iter()
            .zip(xs)
            .map(|(t, x)| {
                let values = match T::pick(&x.values) {
                    Src::Slice(v) => v,
                    Src::Splat(_) => spread.next().expect("one spread block per constant"),
                };
                BlockTerm {
                    x: values,
                    weight: T::from_f64(t.weight),
                    transform: Transform::new(&t.affine, x.valid),
                }
            })
            .collect();
        let acc = T::pick(acc);
        let chunks = n / L * L;
        for start in (0..chunks).step_by(L) {
            let mut sum: [T; L] = match acc {
                Src::Slice(a) => a[start..start + L].try_into().expect("L values"),
                Src::Splat(a) => [a; L],
            };
            for term in &bound {
                term.accumulate::<SUB, DIV, CLIP, L>(&mut sum, start);
            }
            out[start..start + L].copy_from_slice(&sum);
        }
        for (i, o) in out.iter_mut().enumerate().skip(chunks) {
            let mut sum = [acc.at(i)];
            for term in &bound {
                term.accumulate::<SUB, DIV, CLIP, 1>(&mut sum, i);
            }
            *o = sum[0];
        }
    }
    let shape = &terms[0].affine;
    // 64 bytes per row chunk: one cache line of each term's input.
    specialize_shape!(shape, out, |T, SUB, DIV, CLIP, out| run::<
        T,
        SUB,
        DIV,
        CLIP,
        { 64 / std::mem::size_of::<T>() },
    >(
        terms, xs, acc, out
    ));
}

/// An [`Affine`] bound to a block: its constants converted to the block's
/// type, and where its fill applies.
struct Transform<'r, T> {
    /// The input's validity, if it has nulls in this block and there is a fill.
    fill_where: Option<&'r [bool]>,
    fill: T,
    shift: T,
    scale: T,
    lo: T,
    hi: T,
}

impl<'r, T: Float> Transform<'r, T> {
    #[inline(always)]
    fn new(affine: &Affine, valid: Option<&'r [bool]>) -> Self {
        let (lo, hi) = affine.clip.unwrap_or_default();
        Transform {
            fill_where: valid.filter(|_| affine.fill.is_some()),
            fill: T::from_f64(affine.fill.unwrap_or_default()),
            shift: T::from_f64(affine.shift),
            scale: T::from_f64(affine.scale),
            lo: T::from_f64(lo),
            hi: T::from_f64(hi),
        }
    }

    /// Row `i`'s value `x`, or the fill where it is null.
    #[inline(always)]
    fn filled(&self, i: usize, x: T) -> T {
        match self.fill_where {
            Some(valid) => T::keep_or(valid[i], x, self.fill),
            None => x,
        }
    }

    /// `clip((x ± shift) (*|/) scale, lo, hi)`.
    #[inline(always)]
    fn apply<const SUB: bool, const DIV: bool, const CLIP: bool>(&self, x: T) -> T {
        let shifted = if SUB {
            BinaryOp::Sub.float(x, self.shift)
        } else {
            BinaryOp::Add.float(x, self.shift)
        };
        let scaled = if DIV {
            BinaryOp::Div.float(shifted, self.scale)
        } else {
            BinaryOp::Mul.float(shifted, self.scale)
        };
        if CLIP {
            clip(scaled, self.lo, self.hi)
        } else {
            scaled
        }
    }
}

/// One term `weight * transform(x)` of a dot product, bound to a block.
struct BlockTerm<'r, T> {
    x: &'r [T],
    weight: T,
    transform: Transform<'r, T>,
}

impl<T: Float> BlockTerm<'_, T> {
    /// `sum[l] += weight * transform(x[start + l])` for `L` rows.
    #[inline(always)]
    fn accumulate<const SUB: bool, const DIV: bool, const CLIP: bool, const L: usize>(
        &self,
        sum: &mut [T; L],
        start: usize,
    ) {
        let x: &[T; L] = self.x[start..start + L].try_into().expect("L values");
        let mut x = *x;
        let t = &self.transform;
        // Test once per chunk, not per row, whether the fill applies.
        if let Some(valid) = t.fill_where {
            let valid: &[bool; L] = valid[start..start + L].try_into().expect("L flags");
            for l in 0..L {
                x[l] = T::keep_or(valid[l], x[l], t.fill);
            }
        }
        for l in 0..L {
            let y = t.apply::<SUB, DIV, CLIP>(x[l]);
            sum[l] = BinaryOp::Add.float(sum[l], BinaryOp::Mul.float(self.weight, y));
        }
    }
}

/// Expands `$body` once per element type and affine shape, binding `$t` to
/// the type, the three shape flags to constants and `$out` to the `&mut Vec<T>`.
macro_rules! specialize_shape {
    ($affine:expr, $buf:expr, |$t:ident, $sub:ident, $div:ident, $clip:ident, $out:ident| $body:expr) => {{
        let affine = $affine;
        specialize_flag!(affine.subtract, $sub, {
            specialize_flag!(affine.divide, $div, {
                specialize_flag!(affine.clip.is_some(), $clip, {
                    match $buf {
                        Buf::F32($out) => {
                            type $t = f32;
                            $body
                        }
                        Buf::F64($out) => {
                            type $t = f64;
                            $body
                        }
                        _ => unreachable!("superinstructions are planned for float types only"),
                    }
                })
            })
        })
    }};
}
use specialize_shape;

/// Expands `$body` twice, with the constant `$name` false and true, and runs
/// the one that `$flag` selects.
macro_rules! specialize_flag {
    ($flag:expr, $name:ident, $body:expr) => {
        if $flag {
            const $name: bool = true;
            $body
        } else {
            const $name: bool = false;
            $body
        }
    };
}
use specialize_flag;

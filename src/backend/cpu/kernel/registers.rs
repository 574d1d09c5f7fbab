//! Block registers and the typed views instructions read: a block of values
//! of one dtype (a slice, or one value broadcast over the block) with an
//! optional validity mask.

use super::columns::ColumnScratch;
use super::evaluate::BLOCK;
use crate::ir::ops::select;
use crate::ir::{Const, DType, ExprId};

/// Per-thread block registers.
pub(super) struct Registers<'a> {
    pub(super) regs: Vec<Reg<'a>>,
    pub(super) columns: Vec<ColumnScratch<'a>>,
}

impl Registers<'_> {
    /// One register per dtype in `dtypes`, and scratch for `columns` input columns.
    pub(super) fn new(dtypes: &[DType], columns: usize) -> Self {
        Registers {
            regs: dtypes
                .iter()
                .map(|&d| Reg {
                    values: Buf::new(d),
                    valid: Vec::new(),
                    has_nulls: false,
                    forward: None,
                })
                .collect(),
            columns: (0..columns).map(|_| ColumnScratch::default()).collect(),
        }
    }
}

/// One register: a block of values of one dtype plus validity.
#[derive(Default)]
pub(super) struct Reg<'a> {
    pub(super) values: Buf<'a>,
    pub(super) valid: Vec<bool>,
    pub(super) has_nulls: bool,
    /// For this block the register holds exactly the value of an input column
    /// or constant, which readers then use in place (no copy).
    pub(super) forward: Option<ExprId>,
}

impl<'a> Reg<'a> {
    /// Make room for a block of `len` rows.
    #[inline(always)]
    pub(super) fn resize(&mut self, len: usize) {
        self.values.resize(len);
    }

    /// The register's block as an operand.
    #[inline(always)]
    pub(super) fn view(&self) -> Operand<'_, 'a> {
        Operand {
            values: self.values.view(),
            valid: self.has_nulls.then_some(self.valid.as_slice()),
        }
    }
}

/// A block operand: values and optional validity (`None`: all valid).
pub(super) struct Operand<'r, 'a> {
    pub(super) values: Values<'r, 'a>,
    pub(super) valid: Option<&'r [bool]>,
}

/// A block of values, or one value broadcast over the block.
#[derive(Clone, Copy)]
pub(super) enum Src<'r, T> {
    Slice(&'r [T]),
    Splat(T),
}

impl<T: Copy> Src<'_, T> {
    /// Row `i`'s value.
    #[inline(always)]
    pub(super) fn at(&self, i: usize) -> T {
        match self {
            Src::Slice(s) => s[i],
            Src::Splat(v) => *v,
        }
    }
}

/// Typed block operand values.
pub(super) enum Values<'r, 'a> {
    Bool(Src<'r, bool>),
    I32(Src<'r, i32>),
    I64(Src<'r, i64>),
    F32(Src<'r, f32>),
    F64(Src<'r, f64>),
    Str(Src<'r, &'a str>),
}

impl<'a> Values<'_, 'a> {
    /// A literal broadcast over the block, as a value of `dtype`.
    pub(super) fn constant(c: &'a Const, dtype: DType) -> Self {
        let f = c.as_f64().unwrap_or_default();
        match (c, dtype) {
            (Const::Str(s), _) => Values::Str(Src::Splat(s.as_str())),
            (_, DType::Bool) => Values::Bool(Src::Splat(f != 0.0)),
            (Const::Int(i), DType::Int32) => Values::I32(Src::Splat(*i as i32)),
            (Const::Int(i), DType::Int64) => Values::I64(Src::Splat(*i)),
            (_, DType::Float32) => Values::F32(Src::Splat(f as f32)),
            (_, DType::Float64) => Values::F64(Src::Splat(f)),
            (c, d) => unreachable!("literal {c:?} typed {d}"),
        }
    }
}

/// Owned block storage of one dtype.
#[derive(Default)]
pub(super) enum Buf<'a> {
    #[default]
    Empty,
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str(Vec<&'a str>),
}

impl<'a> Buf<'a> {
    /// Empty storage for a block of `dtype`.
    pub(super) fn new(dtype: DType) -> Self {
        match dtype {
            DType::Bool => Buf::Bool(Vec::with_capacity(BLOCK)),
            DType::Int32 => Buf::I32(Vec::with_capacity(BLOCK)),
            DType::Int64 => Buf::I64(Vec::with_capacity(BLOCK)),
            DType::Float32 => Buf::F32(Vec::with_capacity(BLOCK)),
            DType::Float64 => Buf::F64(Vec::with_capacity(BLOCK)),
            DType::Utf8 => Buf::Str(Vec::with_capacity(BLOCK)),
        }
    }

    /// Resize to `len` rows (new rows hold a default value).
    pub(super) fn resize(&mut self, len: usize) {
        match self {
            Buf::Empty => {}
            Buf::Bool(v) => v.resize(len, false),
            Buf::I32(v) => v.resize(len, 0),
            Buf::I64(v) => v.resize(len, 0),
            Buf::F32(v) => v.resize(len, 0.0),
            Buf::F64(v) => v.resize(len, 0.0),
            Buf::Str(v) => v.resize(len, ""),
        }
    }

    /// The storage as operand values.
    #[inline(always)]
    pub(super) fn view(&self) -> Values<'_, 'a> {
        match self {
            Buf::Empty => unreachable!("register read before it was written"),
            Buf::Bool(v) => Values::Bool(Src::Slice(v)),
            Buf::I32(v) => Values::I32(Src::Slice(v)),
            Buf::I64(v) => Values::I64(Src::Slice(v)),
            Buf::F32(v) => Values::F32(Src::Slice(v)),
            Buf::F64(v) => Values::F64(Src::Slice(v)),
            Buf::Str(v) => Values::Str(Src::Slice(v)),
        }
    }

    /// `out[i] = cond[i] ? a[i] : b[i]` for any dtype.
    #[inline(always)]
    pub(super) fn select(&mut self, cond: &Values<'_, 'a>, a: &Values<'_, 'a>, b: &Values<'_, 'a>) {
        let Values::Bool(c) = cond else {
            unreachable!("select condition is bool")
        };
        macro_rules! go {
            ($($buf:ident),*) => {
                match (self, a, b) {
                    $((Buf::$buf(out), Values::$buf(a), Values::$buf(b)) => match (c, a, b) {
                        // The fill_null shape: a mask, a column and a constant.
                        (Src::Slice(c), Src::Slice(a), Src::Splat(b)) => {
                            for (o, (&c, &a)) in out.iter_mut().zip(c.iter().zip(a.iter())) {
                                *o = select(c, a, *b);
                            }
                        }
                        (Src::Slice(c), Src::Slice(a), Src::Slice(b)) => {
                            for (o, (&c, (&a, &b))) in out.iter_mut().zip(c.iter().zip(a.iter().zip(b.iter()))) {
                                *o = select(c, a, b);
                            }
                        }
                        _ => {
                            for (i, o) in out.iter_mut().enumerate() {
                                *o = select(c.at(i), a.at(i), b.at(i));
                            }
                        }
                    },)*
                    _ => unreachable!("select operands share the output dtype"),
                }
            };
        }
        go!(Bool, I32, I64, F32, F64, Str)
    }
}

/// Typed values of a numeric operand of the same dtype as `out`.
pub(super) trait Pick<'r>: Sized + Copy {
    fn pick(values: &Values<'r, '_>) -> Src<'r, Self>;
}

macro_rules! impl_pick {
    ($t:ty, $variant:ident) => {
        impl<'r> Pick<'r> for $t {
            #[inline(always)]
            fn pick(values: &Values<'r, '_>) -> Src<'r, Self> {
                match values {
                    Values::$variant(s) => *s,
                    _ => unreachable!(concat!("operand is not ", stringify!($t))),
                }
            }
        }
    };
}
impl_pick!(bool, Bool);
impl_pick!(i32, I32);
impl_pick!(i64, I64);
impl_pick!(f32, F32);
impl_pick!(f64, F64);

/// `out[i] = f(a[i])`, specialized for slice and splat inputs.
#[inline(always)]
pub(super) fn map1<A: Copy, O>(a: Src<'_, A>, out: &mut [O], f: impl Fn(A) -> O) {
    match a {
        Src::Slice(a) => {
            for (o, &a) in out.iter_mut().zip(a) {
                *o = f(a);
            }
        }
        Src::Splat(a) => {
            for o in out.iter_mut() {
                *o = f(a);
            }
        }
    }
}

/// `out[i] = f(a[i], b[i])`, specialized for slice and splat inputs.
#[inline(always)]
pub(super) fn map2<A: Copy, O>(a: Src<'_, A>, b: Src<'_, A>, out: &mut [O], f: impl Fn(A, A) -> O) {
    match (a, b) {
        (Src::Slice(a), Src::Slice(b)) => {
            for (o, (&a, &b)) in out.iter_mut().zip(a.iter().zip(b)) {
                *o = f(a, b);
            }
        }
        (Src::Slice(a), Src::Splat(b)) => {
            for (o, &a) in out.iter_mut().zip(a) {
                *o = f(a, b);
            }
        }
        (Src::Splat(a), Src::Slice(b)) => {
            for (o, &b) in out.iter_mut().zip(b) {
                *o = f(a, b);
            }
        }
        (Src::Splat(a), Src::Splat(b)) => {
            for o in out.iter_mut() {
                *o = f(a, b);
            }
        }
    }
}

//! The elementwise operators: one definition per op.
//!
//! Each operator's meaning lives here exactly once, as a scalar function over the
//! numeric traits ([`Native`], [`Num`], [`Float`]). Backends build their loops around these functions
//! (the CPU backend specializes one tight loop per op with `specialize_unary!`
//! and `specialize_binary!`), so a fused kernel and the op-by-op reference
//! cannot drift apart. Beside each CPU function is the op's spelling in the
//! GPU kernel languages ([`UnaryOp::spelling`], [`BinaryOp::spelling`]): a
//! template over `{a}`, `{b}` and `{t}` (the WGSL type, for helpers WGSL cannot
//! overload) that `backend::codegen` fills in. Helpers named `ff_*` are defined
//! once per language in `kernels/wgsl/prelude.wgsl` and `kernels/cuda/prelude.cuh`.
//!
//! # NaN and nulls
//! NaN is a value, never a null. Arithmetic and float functions follow IEEE 754
//! (NaN in, NaN out; `log(-1)` is NaN, `log(0)` is `-inf`). Comparisons with NaN are
//! false except `!=`. `minimum`/`maximum` return NaN if either side is NaN; `clip`
//! keeps NaN as NaN. Nulls are handled by the evaluator, not here: every op except
//! `is_null`, `fill_null`, Kleene `and`/`or` and the `if_else` condition propagates
//! nulls.

pub use super::numeric::{Float, Native, Num};

/// A GPU kernel language that fused kernels are generated in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    /// WGSL, for wgpu.
    Wgsl,
    /// CUDA C++, compiled by NVRTC.
    Cuda,
}

/// An operator with one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// Arithmetic negation (numeric).
    Neg,
    /// Absolute value (numeric).
    Abs,
    /// Square root (float; integers are promoted to f64).
    Sqrt,
    /// Exponential (float).
    Exp,
    /// Natural logarithm (float).
    Log,
    /// `ln(1 + x)` (float).
    Log1p,
    /// Logistic function `1 / (1 + exp(-x))` (float).
    Sigmoid,
    /// Boolean negation.
    Not,
}

/// What an operator accepts and returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpClass {
    /// Numeric in, same numeric type out.
    Numeric,
    /// Float in (integers promoted to f64), same float type out.
    Float,
    /// Operands of one common type in, bool out.
    Comparison,
    /// Bool in, bool out.
    Logical,
}

impl UnaryOp {
    /// Every unary operator.
    pub const ALL: [UnaryOp; 8] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sqrt,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Sigmoid,
        UnaryOp::Not,
    ];

    /// The function name used in expression text (`-` for negation, `!` for not).
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Abs => "abs",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Not => "!",
        }
    }

    /// The operator's type class.
    pub fn class(self) -> OpClass {
        match self {
            UnaryOp::Neg | UnaryOp::Abs => OpClass::Numeric,
            UnaryOp::Sqrt | UnaryOp::Exp | UnaryOp::Log | UnaryOp::Log1p | UnaryOp::Sigmoid => {
                OpClass::Float
            }
            UnaryOp::Not => OpClass::Logical,
        }
    }

    /// The CPU definition for numeric operators.
    ///
    /// # Panics
    /// When called for a float-only or logical operator; the type checker
    /// routes those to [`UnaryOp::float`] and [`UnaryOp::logical`].
    #[inline(always)]
    pub fn numeric<T: Num>(self, x: T) -> T {
        match self {
            UnaryOp::Neg => T::neg(x),
            UnaryOp::Abs => T::abs(x),
            _ => unreachable!("{self:?} is not a numeric operator"),
        }
    }

    /// The CPU definition for float operators (numeric ones included).
    #[inline(always)]
    pub fn float<T: Float>(self, x: T) -> T {
        match self {
            UnaryOp::Neg | UnaryOp::Abs => self.numeric(x),
            UnaryOp::Sqrt => T::sqrt(x),
            UnaryOp::Exp => T::exp(x),
            UnaryOp::Log => T::ln(x),
            UnaryOp::Log1p => T::ln_1p(x),
            UnaryOp::Sigmoid => T::div(T::ONE, T::add(T::ONE, T::exp(T::neg(x)))),
            UnaryOp::Not => unreachable!("not is a logical operator"),
        }
    }

    /// The CPU definition for logical operators.
    #[inline(always)]
    pub fn logical(self, x: bool) -> bool {
        match self {
            UnaryOp::Not => !x,
            _ => unreachable!("{self:?} is not a logical operator"),
        }
    }

    /// The op in a kernel language: a template over the operand `{a}` and the
    /// WGSL type `{t}`. The `ff_*` helpers keep the CPU's meaning where the
    /// language leaves it open (WGSL's `log` of a negative number, integer
    /// overflow in C++).
    pub fn spelling(self, lang: Lang) -> &'static str {
        use Lang::{Cuda, Wgsl};
        match (self, lang) {
            (UnaryOp::Neg, Wgsl) => "(-{a})",
            (UnaryOp::Neg, Cuda) => "ff_neg({a})",
            (UnaryOp::Abs, Wgsl) => "abs({a})",
            (UnaryOp::Abs, Cuda) => "ff_abs({a})",
            (UnaryOp::Sqrt, Wgsl) => "ff_sqrt_{t}({a})",
            (UnaryOp::Sqrt, Cuda) => "ff_sqrt({a})",
            (UnaryOp::Exp, Wgsl) => "exp({a})",
            (UnaryOp::Exp, Cuda) => "ff_exp({a})",
            (UnaryOp::Log, Wgsl) => "ff_log_{t}({a})",
            (UnaryOp::Log, Cuda) => "ff_log({a})",
            (UnaryOp::Log1p, Wgsl) => "ff_log1p_{t}({a})",
            (UnaryOp::Log1p, Cuda) => "ff_log1p({a})",
            (UnaryOp::Sigmoid, Wgsl) => "(1.0 / (1.0 + exp(-{a})))",
            (UnaryOp::Sigmoid, Cuda) => "ff_sigmoid({a})",
            (UnaryOp::Not, _) => "(!{a})",
        }
    }
}

/// An operator with two operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b` (numeric).
    Add,
    /// `a - b` (numeric).
    Sub,
    /// `a * b` (numeric).
    Mul,
    /// `a / b`: true division, always float (integers promoted to f64).
    Div,
    /// `a ** b` (float).
    Pow,
    /// Elementwise minimum (numeric; NaN if either is NaN).
    Min,
    /// Elementwise maximum (numeric; NaN if either is NaN).
    Max,
    /// `a == b`.
    Eq,
    /// `a != b`.
    NotEq,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    LtEq,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    GtEq,
    /// Kleene `and`: `false and null` is false.
    And,
    /// Kleene `or`: `true or null` is true.
    Or,
}

impl BinaryOp {
    /// Every binary operator.
    pub const ALL: [BinaryOp; 15] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Eq,
        BinaryOp::NotEq,
        BinaryOp::Lt,
        BinaryOp::LtEq,
        BinaryOp::Gt,
        BinaryOp::GtEq,
        BinaryOp::And,
        BinaryOp::Or,
    ];

    /// The symbol or function name used in expression text.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Pow => "**",
            BinaryOp::Min => "minimum",
            BinaryOp::Max => "maximum",
            BinaryOp::Eq => "==",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }

    /// Whether the operator is written infix (`a + b`) rather than as a call.
    pub fn is_infix(self) -> bool {
        !matches!(self, BinaryOp::Min | BinaryOp::Max)
    }

    /// The operator's type class.
    pub fn class(self) -> OpClass {
        match self {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Min | BinaryOp::Max => {
                OpClass::Numeric
            }
            BinaryOp::Div | BinaryOp::Pow => OpClass::Float,
            BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq => OpClass::Comparison,
            BinaryOp::And | BinaryOp::Or => OpClass::Logical,
        }
    }

    /// The CPU definition for numeric operators.
    #[inline(always)]
    pub fn numeric<T: Num>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => T::add(a, b),
            BinaryOp::Sub => T::sub(a, b),
            BinaryOp::Mul => T::mul(a, b),
            // `a + b` is NaN exactly when either side is NaN, so both stay branch-free.
            BinaryOp::Min => select(a < b, a, select(b <= a, b, T::add(a, b))),
            BinaryOp::Max => select(a > b, a, select(b >= a, b, T::add(a, b))),
            _ => unreachable!("{self:?} is not a numeric operator"),
        }
    }

    /// The CPU definition for float operators (numeric ones included).
    #[inline(always)]
    pub fn float<T: Float>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Div => T::div(a, b),
            BinaryOp::Pow => T::pow(a, b),
            _ => self.numeric(a, b),
        }
    }

    /// The CPU definition for comparisons.
    #[inline(always)]
    pub fn compare<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            BinaryOp::Eq => a == b,
            BinaryOp::NotEq => a != b,
            BinaryOp::Lt => a < b,
            BinaryOp::LtEq => a <= b,
            BinaryOp::Gt => a > b,
            BinaryOp::GtEq => a >= b,
            _ => unreachable!("{self:?} is not a comparison"),
        }
    }

    /// The CPU definition for logical operators on valid values.
    #[inline(always)]
    pub fn logical(self, a: bool, b: bool) -> bool {
        match self {
            BinaryOp::And => a & b,
            BinaryOp::Or => a | b,
            _ => unreachable!("{self:?} is not a logical operator"),
        }
    }

    /// The op in a kernel language: a template over the operands `{a}`, `{b}`
    /// and the WGSL type `{t}`, as [`UnaryOp::spelling`]. Kleene `and`/`or`
    /// spell the value on valid operands; the generator adds the null rules.
    pub fn spelling(self, lang: Lang) -> &'static str {
        use Lang::{Cuda, Wgsl};
        match (self, lang) {
            (BinaryOp::Add, Wgsl) => "({a} + {b})",
            (BinaryOp::Add, Cuda) => "ff_add({a}, {b})",
            (BinaryOp::Sub, Wgsl) => "({a} - {b})",
            (BinaryOp::Sub, Cuda) => "ff_sub({a}, {b})",
            (BinaryOp::Mul, Wgsl) => "({a} * {b})",
            (BinaryOp::Mul, Cuda) => "ff_mul({a}, {b})",
            (BinaryOp::Div, _) => "({a} / {b})",
            (BinaryOp::Pow, Wgsl) => "ff_pow_{t}({a}, {b})",
            (BinaryOp::Pow, Cuda) => "ff_pow({a}, {b})",
            (BinaryOp::Min, Wgsl) => "ff_min_{t}({a}, {b})",
            (BinaryOp::Min, Cuda) => "ff_min({a}, {b})",
            (BinaryOp::Max, Wgsl) => "ff_max_{t}({a}, {b})",
            (BinaryOp::Max, Cuda) => "ff_max({a}, {b})",
            (BinaryOp::Eq, _) => "({a} == {b})",
            // WGSL's `!=` is ordered on some drivers (false for NaN); C's is not.
            (BinaryOp::NotEq, Wgsl) => "(!({a} == {b}))",
            (BinaryOp::NotEq, Cuda) => "({a} != {b})",
            (BinaryOp::Lt, _) => "({a} < {b})",
            (BinaryOp::LtEq, _) => "({a} <= {b})",
            (BinaryOp::Gt, _) => "({a} > {b})",
            (BinaryOp::GtEq, _) => "({a} >= {b})",
            (BinaryOp::And, _) => "({a} && {b})",
            (BinaryOp::Or, _) => "({a} || {b})",
        }
    }
}

/// `clip(x, lo, hi)`: `lo` below, `hi` above, NaN stays NaN.
#[inline(always)]
pub fn clip<T: Native>(x: T, lo: T, hi: T) -> T {
    select(x < lo, lo, select(x > hi, hi, x))
}

/// [`clip`] in a kernel language, a template over `{a}` (x), `{b}` (lo), `{c}` (hi), `{t}`.
pub fn clip_spelling(lang: Lang) -> &'static str {
    match lang {
        Lang::Wgsl => "ff_clip_{t}({a}, {b}, {c})",
        Lang::Cuda => "ff_clip({a}, {b}, {c})",
    }
}

/// A branch-free select the vectorizer turns into a blend.
#[inline(always)]
pub fn select<T: Copy>(cond: bool, a: T, b: T) -> T {
    if cond { a } else { b }
}

/// Expands `$body` once per unary operator with `$op` bound to that operator as a
/// constant, so a loop written around `$op.float(x)` is specialized per operator
/// instead of dispatching inside the loop.
macro_rules! specialize_unary {
    ($value:expr, |$op:ident| $body:expr) => {
        match $value {
            $crate::ir::UnaryOp::Neg => {
                const $op: $crate::ir::UnaryOp = $crate::ir::UnaryOp::Neg;
                $body
            }
            $crate::ir::UnaryOp::Abs => {
                const $op: $crate::ir::UnaryOp = $crate::ir::UnaryOp::Abs;
                $body
            }
            $crate::ir::UnaryOp::Sqrt => {
                const $op: $crate::ir::UnaryOp = $crate::ir::UnaryOp::Sqrt;
                $body
            }
            $crate::ir::UnaryOp::Exp => {
                const $op: $crate::ir::UnaryOp = $crate::ir::UnaryOp::Exp;
                $body
            }
            $crate::ir::UnaryOp::Log => {
                const $op: $crate::ir::UnaryOp = $crate::ir::UnaryOp::Log;
                $body
            }
            $crate::ir::UnaryOp::Log1p => {
                const $op: $crate::ir::UnaryOp = $crate::ir::UnaryOp::Log1p;
                $body
            }
            $crate::ir::UnaryOp::Sigmoid => {
                const $op: $crate::ir::UnaryOp = $crate::ir::UnaryOp::Sigmoid;
                $body
            }
            $crate::ir::UnaryOp::Not => {
                const $op: $crate::ir::UnaryOp = $crate::ir::UnaryOp::Not;
                $body
            }
        }
    };
}

/// The binary counterpart of [`specialize_unary!`].
macro_rules! specialize_binary {
    ($value:expr, |$op:ident| $body:expr) => {
        match $value {
            $crate::ir::BinaryOp::Add => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Add;
                $body
            }
            $crate::ir::BinaryOp::Sub => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Sub;
                $body
            }
            $crate::ir::BinaryOp::Mul => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Mul;
                $body
            }
            $crate::ir::BinaryOp::Div => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Div;
                $body
            }
            $crate::ir::BinaryOp::Pow => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Pow;
                $body
            }
            $crate::ir::BinaryOp::Min => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Min;
                $body
            }
            $crate::ir::BinaryOp::Max => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Max;
                $body
            }
            $crate::ir::BinaryOp::Eq => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Eq;
                $body
            }
            $crate::ir::BinaryOp::NotEq => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::NotEq;
                $body
            }
            $crate::ir::BinaryOp::Lt => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Lt;
                $body
            }
            $crate::ir::BinaryOp::LtEq => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::LtEq;
                $body
            }
            $crate::ir::BinaryOp::Gt => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Gt;
                $body
            }
            $crate::ir::BinaryOp::GtEq => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::GtEq;
                $body
            }
            $crate::ir::BinaryOp::And => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::And;
                $body
            }
            $crate::ir::BinaryOp::Or => {
                const $op: $crate::ir::BinaryOp = $crate::ir::BinaryOp::Or;
                $body
            }
        }
    };
}

pub(crate) use {specialize_binary, specialize_unary};

//! The user-facing expression tree and its builder functions.
//!
//! Users write `col("x").fill_null(0.0).clip(-5.0, 5.0)` or the same as text
//! (`clip(fill_null(x, 0.0), -5.0, 5.0)`, see [`crate::ir::parse`]). A tree is
//! type-checked against an input schema when it is added to an
//! [`ExprArena`](crate::ir::ExprArena), which is what the planner and backends use.

use std::fmt;
use std::ops;

use super::dtype::{DType, Scalar};
use super::ops::{BinaryOp, UnaryOp};

/// An elementwise expression over the columns of one table.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A column of the input, by name.
    Column(String),
    /// A constant.
    Literal(Scalar),
    /// A one-operand operator.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        input: Box<Expr>,
    },
    /// A two-operand operator.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `clip(input, min, max)`.
    Clip {
        /// The value to clip.
        input: Box<Expr>,
        /// Lower bound.
        min: Box<Expr>,
        /// Upper bound.
        max: Box<Expr>,
    },
    /// `is_null(input)`: true where the input is null; never null itself.
    IsNull(Box<Expr>),
    /// `fill_null(input, value)`: the input, with nulls replaced by `value`.
    FillNull {
        /// The value with nulls.
        input: Box<Expr>,
        /// The replacement.
        value: Box<Expr>,
    },
    /// `if_else(condition, then, otherwise)`; a null condition selects `otherwise`
    /// (as SQL's `CASE WHEN`).
    IfElse {
        /// A boolean expression.
        condition: Box<Expr>,
        /// Value where the condition is true.
        then: Box<Expr>,
        /// Value where the condition is false or null.
        otherwise: Box<Expr>,
    },
    /// `cast(input, dtype)`: numeric and boolean conversions. Float to integer
    /// truncates toward zero; NaN or out-of-range values become null.
    Cast {
        /// The value to convert.
        input: Box<Expr>,
        /// The target type.
        dtype: DType,
    },
}

/// A column reference.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Column(name.into())
}

/// A literal value.
pub fn lit(value: impl Into<Scalar>) -> Expr {
    Expr::Literal(value.into())
}

/// `if_else(condition, then, otherwise)`.
pub fn if_else(condition: Expr, then: impl Into<Expr>, otherwise: impl Into<Expr>) -> Expr {
    Expr::IfElse {
        condition: Box::new(condition),
        then: Box::new(then.into()),
        otherwise: Box::new(otherwise.into()),
    }
}

impl Expr {
    fn unary(self, op: UnaryOp) -> Expr {
        Expr::Unary {
            op,
            input: Box::new(self),
        }
    }

    fn binary(self, op: BinaryOp, right: impl Into<Expr>) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(self),
            right: Box::new(right.into()),
        }
    }

    /// Absolute value.
    pub fn abs(self) -> Expr {
        self.unary(UnaryOp::Abs)
    }
    /// Square root.
    pub fn sqrt(self) -> Expr {
        self.unary(UnaryOp::Sqrt)
    }
    /// Exponential.
    pub fn exp(self) -> Expr {
        self.unary(UnaryOp::Exp)
    }
    /// Natural logarithm.
    pub fn log(self) -> Expr {
        self.unary(UnaryOp::Log)
    }
    /// `ln(1 + x)`.
    pub fn log1p(self) -> Expr {
        self.unary(UnaryOp::Log1p)
    }
    /// Logistic function.
    pub fn sigmoid(self) -> Expr {
        self.unary(UnaryOp::Sigmoid)
    }
    /// Boolean negation.
    #[allow(
        clippy::should_implement_trait,
        reason = "`!` on an expression would read as negating the Rust value; `not()` matches the expression syntax"
    )]
    pub fn not(self) -> Expr {
        self.unary(UnaryOp::Not)
    }
    /// `self ** exponent`.
    pub fn pow(self, exponent: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Pow, exponent)
    }
    /// Elementwise minimum.
    pub fn minimum(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Min, other)
    }
    /// Elementwise maximum.
    pub fn maximum(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Max, other)
    }
    /// `self == other`.
    pub fn eq(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Eq, other)
    }
    /// `self != other`.
    pub fn not_eq(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::NotEq, other)
    }
    /// `self < other`.
    pub fn lt(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Lt, other)
    }
    /// `self <= other`.
    pub fn lt_eq(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::LtEq, other)
    }
    /// `self > other`.
    pub fn gt(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Gt, other)
    }
    /// `self >= other`.
    pub fn gt_eq(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::GtEq, other)
    }
    /// Kleene `and`.
    pub fn and(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::And, other)
    }
    /// Kleene `or`.
    pub fn or(self, other: impl Into<Expr>) -> Expr {
        self.binary(BinaryOp::Or, other)
    }
    /// Clip to `[min, max]`.
    pub fn clip(self, min: impl Into<Expr>, max: impl Into<Expr>) -> Expr {
        Expr::Clip {
            input: Box::new(self),
            min: Box::new(min.into()),
            max: Box::new(max.into()),
        }
    }
    /// True where null.
    pub fn is_null(self) -> Expr {
        Expr::IsNull(Box::new(self))
    }
    /// Replace nulls with `value`.
    pub fn fill_null(self, value: impl Into<Expr>) -> Expr {
        Expr::FillNull {
            input: Box::new(self),
            value: Box::new(value.into()),
        }
    }
    /// Convert to `dtype`.
    pub fn cast(self, dtype: DType) -> Expr {
        Expr::Cast {
            input: Box::new(self),
            dtype,
        }
    }

    /// The direct sub-expressions, left to right.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column(_) | Expr::Literal(_) => vec![],
            Expr::Unary { input, .. } | Expr::IsNull(input) | Expr::Cast { input, .. } => {
                vec![input]
            }
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::FillNull { input, value } => vec![input, value],
            Expr::Clip { input, min, max } => vec![input, min, max],
            Expr::IfElse {
                condition,
                then,
                otherwise,
            } => vec![condition, then, otherwise],
        }
    }

    /// The expression with every column reference replaced by `f(name)`.
    pub fn map_columns(&self, f: &impl Fn(&str) -> Expr) -> Expr {
        let map = |e: &Expr| Box::new(e.map_columns(f));
        match self {
            Expr::Column(name) => f(name),
            Expr::Literal(_) => self.clone(),
            Expr::Unary { op, input } => Expr::Unary {
                op: *op,
                input: map(input),
            },
            Expr::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: map(left),
                right: map(right),
            },
            Expr::Clip { input, min, max } => Expr::Clip {
                input: map(input),
                min: map(min),
                max: map(max),
            },
            Expr::IsNull(input) => Expr::IsNull(map(input)),
            Expr::FillNull { input, value } => Expr::FillNull {
                input: map(input),
                value: map(value),
            },
            Expr::IfElse {
                condition,
                then,
                otherwise,
            } => Expr::IfElse {
                condition: map(condition),
                then: map(then),
                otherwise: map(otherwise),
            },
            Expr::Cast { input, dtype } => Expr::Cast {
                input: map(input),
                dtype: *dtype,
            },
        }
    }

    /// Names of the columns the expression reads, in first-use order, without repeats.
    pub fn columns(&self) -> Vec<String> {
        fn walk(e: &Expr, out: &mut Vec<String>) {
            if let Expr::Column(name) = e
                && !out.contains(name)
            {
                out.push(name.clone());
            }
            for c in e.children() {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

macro_rules! impl_from_literal {
    ($($t:ty),*) => {$(
        impl From<$t> for Expr {
            fn from(value: $t) -> Self {
                Expr::Literal(value.into())
            }
        }
    )*};
}
impl_from_literal!(f64, f32, i64, i32, bool, &str, String, Scalar);

macro_rules! impl_infix {
    ($trait:ident, $method:ident, $op:expr) => {
        impl<R: Into<Expr>> ops::$trait<R> for Expr {
            type Output = Expr;
            fn $method(self, rhs: R) -> Expr {
                self.binary($op, rhs)
            }
        }
    };
}
impl_infix!(Add, add, BinaryOp::Add);
impl_infix!(Sub, sub, BinaryOp::Sub);
impl_infix!(Mul, mul, BinaryOp::Mul);
impl_infix!(Div, div, BinaryOp::Div);

impl ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        self.unary(UnaryOp::Neg)
    }
}

/// Whether a column name can be written bare in expression text.
pub(crate) fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            name,
            "true" | "false" | "and" | "or" | "not" | "col" | "inf" | "nan" | "NaN"
        )
}

/// Expressions print in the same syntax [`crate::ir::parse`] reads, fully
/// parenthesized, so printing then parsing gives back the same tree.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(name) if is_plain_identifier(name) => f.write_str(name),
            Expr::Column(name) => write!(f, "col({name:?})"),
            Expr::Literal(s) => write!(f, "{s}"),
            // A negated literal in parentheses: `-2` would read back as the
            // literal -2, not as the negation of 2.
            Expr::Unary {
                op: UnaryOp::Neg,
                input,
            } if matches!(**input, Expr::Literal(_)) => write!(f, "(-({input}))"),
            Expr::Unary {
                op: UnaryOp::Neg,
                input,
            } => write!(f, "(-{input})"),
            Expr::Unary {
                op: UnaryOp::Not,
                input,
            } => write!(f, "(not {input})"),
            Expr::Unary { op, input } => write!(f, "{}({input})", op.name()),
            Expr::Binary { op, left, right } if op.is_infix() => {
                write!(f, "({left} {} {right})", op.name())
            }
            Expr::Binary { op, left, right } => write!(f, "{}({left}, {right})", op.name()),
            Expr::Clip { input, min, max } => write!(f, "clip({input}, {min}, {max})"),
            Expr::IsNull(input) => write!(f, "is_null({input})"),
            Expr::FillNull { input, value } => write!(f, "fill_null({input}, {value})"),
            Expr::IfElse {
                condition,
                then,
                otherwise,
            } => write!(f, "if_else({condition}, {then}, {otherwise})"),
            Expr::Cast { input, dtype } => write!(f, "cast({input}, {dtype})"),
        }
    }
}

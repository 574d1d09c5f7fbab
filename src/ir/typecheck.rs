//! Type checking: lowering an [`Expr`] tree into the typed [`ExprArena`].
//!
//! Rules, in short:
//! - numeric operators need numeric operands and compute in their common type:
//!   same type, else the wider integer, else f64 (`i32 + f32` is f64);
//! - division, `pow` and the float functions compute in float (integers become f64);
//! - comparisons need operands of one kind (numeric, bool or utf8) and give bool;
//! - numeric literals are weak: they take the type of the other operand, so
//!   `f32_col * 2.0` stays f32; a float literal against an integer column gives f64;
//! - `and`, `or`, `not` and the `if_else` condition need bool.

use arrow_schema::Schema;

use super::arena::{Const, ExprArena, ExprId, Node};
use super::dtype::{DType, Scalar};
use super::expr::Expr;
use super::ops::{BinaryOp, OpClass};
use crate::error::{Error, Result, bail};

/// A lowered operand: its id, dtype and whether it is a weakly typed literal.
#[derive(Clone, Copy)]
struct Typed {
    id: ExprId,
    dtype: DType,
    weak: bool,
}

impl ExprArena {
    /// Type-check `expr` against `schema` and add it to the arena.
    ///
    /// # Errors
    /// [`Error::Type`] naming the offending (sub-)expression when a column is
    /// missing, has a dtype fuseflow cannot compute on, or operands do not fit
    /// their operator.
    pub fn add_expr(&mut self, expr: &Expr, schema: &Schema) -> Result<ExprId> {
        Ok(self.lower(expr, schema)?.id)
    }

    /// Lower the children, then type this node. Only this small function
    /// recurses, so deep trees need little stack per level.
    fn lower(&mut self, expr: &Expr, schema: &Schema) -> Result<Typed> {
        let parts = expr
            .children()
            .into_iter()
            .map(|child| self.lower(child, schema))
            .collect::<Result<Vec<_>>>()?;
        self.type_node(expr, &parts, schema)
    }

    /// Type one node whose operands are already lowered into `parts`.
    #[inline(never)]
    fn type_node(&mut self, expr: &Expr, parts: &[Typed], schema: &Schema) -> Result<Typed> {
        Ok(match expr {
            Expr::Column(name) => self.column(expr, name, schema)?,
            Expr::Literal(value) => {
                let dtype = value.default_dtype();
                let id = self
                    .literal(value, dtype)
                    .map_err(|message| type_error(expr, message))?;
                Typed {
                    id,
                    dtype,
                    weak: dtype.is_numeric(),
                }
            }
            Expr::Unary { op, input } => {
                let a = parts[0];
                let dtype = result_class_type(op.class(), &[a], expr)?;
                let id = self.coerce(a, input, dtype)?;
                Typed {
                    id: self.push(Node::Unary(*op, id), dtype),
                    dtype,
                    weak: a.weak,
                }
            }
            Expr::Binary { op, left, right } => self.binary(expr, *op, [left, right], parts)?,
            Expr::Clip { input, min, max } => {
                let dtype = result_class_type(OpClass::Numeric, parts, expr)?;
                let ids = [
                    self.coerce(parts[0], input, dtype)?,
                    self.coerce(parts[1], min, dtype)?,
                    self.coerce(parts[2], max, dtype)?,
                ];
                Typed {
                    id: self.push(Node::Clip(ids[0], ids[1], ids[2]), dtype),
                    dtype,
                    weak: parts[0].weak,
                }
            }
            Expr::IsNull(_) => {
                let a = parts[0];
                Typed {
                    id: self.push(Node::IsNull(a.id), DType::Bool),
                    dtype: DType::Bool,
                    weak: false,
                }
            }
            Expr::FillNull { input, value } => {
                let (dtype, weak) = common_type(parts).ok_or_else(|| mismatch(expr, parts))?;
                let (a, b) = (
                    self.coerce(parts[0], input, dtype)?,
                    self.coerce(parts[1], value, dtype)?,
                );
                Typed {
                    id: self.push(Node::FillNull(a, b), dtype),
                    dtype,
                    weak,
                }
            }
            Expr::IfElse {
                condition,
                then,
                otherwise,
            } => self.if_else(expr, condition, [then, otherwise], parts)?,
            Expr::Cast { input, dtype } => self.cast(expr, input, *dtype, parts[0])?,
        })
    }

    /// A column reference: its index in `schema` and its dtype.
    fn column(&mut self, expr: &Expr, name: &str, schema: &Schema) -> Result<Typed> {
        let Ok(index) = schema.index_of(name) else {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            bail!(type_error(
                expr,
                format!(
                    "no column '{name}' in the input; available columns: {}",
                    names.join(", ")
                )
            ));
        };
        let field = schema.field(index);
        let Some(dtype) = DType::from_arrow(field.data_type()) else {
            bail!(type_error(
                expr,
                format!(
                    "column '{name}' has Arrow type {}, which expressions do not support (use bool, i32, i64, f32, f64 or utf8)",
                    field.data_type()
                )
            ));
        };
        Ok(Typed {
            id: self.push(Node::Column(index), dtype),
            dtype,
            weak: false,
        })
    }

    /// A binary operator: comparisons compare in the operands' common type,
    /// the others compute in their result type.
    fn binary(
        &mut self,
        expr: &Expr,
        op: BinaryOp,
        [left, right]: [&Expr; 2],
        parts: &[Typed],
    ) -> Result<Typed> {
        let (a, b) = (parts[0], parts[1]);
        let dtype = result_class_type(op.class(), &[a, b], expr)?;
        let operand = match op.class() {
            OpClass::Comparison => {
                common_type(&[a, b])
                    .ok_or_else(|| mismatch(expr, &[a, b]))?
                    .0
            }
            _ => dtype,
        };
        let weak = a.weak && b.weak && dtype != DType::Bool;
        let (a, b) = (
            self.coerce(a, left, operand)?,
            self.coerce(b, right, operand)?,
        );
        Ok(Typed {
            id: self.push(Node::Binary(op, a, b), dtype),
            dtype,
            weak,
        })
    }

    /// `if_else(condition, then, otherwise)`: a bool condition, both branches
    /// in their common type.
    fn if_else(
        &mut self,
        expr: &Expr,
        condition: &Expr,
        [then, otherwise]: [&Expr; 2],
        parts: &[Typed],
    ) -> Result<Typed> {
        let c = parts[0];
        if c.dtype != DType::Bool {
            bail!(type_error(
                expr,
                format!(
                    "the condition `{condition}` is {}, it must be bool",
                    c.dtype
                )
            ));
        }
        let parts = &parts[1..];
        let (dtype, weak) = common_type(parts).ok_or_else(|| mismatch(expr, parts))?;
        let (t, f) = (
            self.coerce(parts[0], then, dtype)?,
            self.coerce(parts[1], otherwise, dtype)?,
        );
        Ok(Typed {
            id: self.push(Node::IfElse(c.id, t, f), dtype),
            dtype,
            weak,
        })
    }

    /// An explicit cast: numbers and bools convert among themselves, strings
    /// only to strings.
    fn cast(&mut self, expr: &Expr, input: &Expr, dtype: DType, a: Typed) -> Result<Typed> {
        if (a.dtype == DType::Utf8) != (dtype == DType::Utf8) {
            bail!(type_error(
                expr,
                format!(
                    "cannot cast {} to {dtype}: strings convert only to strings; encode categoricals with an index or one-hot encoding step",
                    a.dtype
                )
            ));
        }
        Ok(Typed {
            id: self.coerce(a, input, dtype)?,
            dtype,
            weak: false,
        })
    }

    /// Convert an operand to `dtype`: literals are re-typed, other nodes get a cast.
    fn coerce(&mut self, typed: Typed, expr: &Expr, dtype: DType) -> Result<ExprId> {
        if typed.dtype == dtype {
            return Ok(typed.id);
        }
        if let Expr::Literal(value) = expr {
            return self.literal(value, dtype).map_err(|message| Error::Type {
                expr: expr.to_string(),
                message,
            });
        }
        Ok(self.push(Node::Cast(typed.id), dtype))
    }

    fn literal(&mut self, value: &Scalar, dtype: DType) -> std::result::Result<ExprId, String> {
        let constant = match (value, dtype) {
            (Scalar::Str(s), DType::Utf8) => Const::Str(s.clone()),
            (Scalar::Bool(b), DType::Bool) => Const::Bool(*b),
            (Scalar::Int(i), DType::Int32) if i32::try_from(*i).is_ok() => Const::Int(*i),
            (Scalar::Int(i), DType::Int32) => return Err(format!("{i} does not fit in i32")),
            (Scalar::Int(i), DType::Int64) => Const::Int(*i),
            (Scalar::Int(i), DType::Float32 | DType::Float64) => {
                Const::Float((*i as f64).to_bits())
            }
            (Scalar::Float(x), DType::Float64) => Const::Float(x.to_bits()),
            (Scalar::Float(x), DType::Float32) => Const::Float(f64::from(*x as f32).to_bits()),
            (value, dtype) => return Err(format!("the literal {value} cannot be used as {dtype}")),
        };
        Ok(self.push(Node::Literal(constant), dtype))
    }
}

/// The result dtype of an operator of `class` over `parts`.
fn result_class_type(class: OpClass, parts: &[Typed], expr: &Expr) -> Result<DType> {
    let (common, _) = common_type(parts).ok_or_else(|| mismatch(expr, parts))?;
    let need = |what: &str, ok: bool| -> Result<()> {
        if ok {
            Ok(())
        } else {
            let found: Vec<String> = parts.iter().map(|p| p.dtype.to_string()).collect();
            Err(Error::Type {
                expr: expr.to_string(),
                message: format!(
                    "needs {what} operands, found {}; convert with cast(x, f64) or cast(x, bool)",
                    found.join(" and ")
                ),
            })
        }
    };
    Ok(match class {
        OpClass::Numeric => {
            need("numeric", common.is_numeric())?;
            common
        }
        OpClass::Float => {
            need("numeric", common.is_numeric())?;
            if common.is_float() {
                common
            } else {
                DType::Float64
            }
        }
        OpClass::Comparison => DType::Bool,
        OpClass::Logical => {
            need("bool", common == DType::Bool)?;
            DType::Bool
        }
    })
}

/// A type error in `expr`.
fn type_error(expr: &Expr, message: String) -> Error {
    Error::Type {
        expr: expr.to_string(),
        message,
    }
}

fn mismatch(expr: &Expr, parts: &[Typed]) -> Error {
    let found: Vec<String> = parts.iter().map(|p| p.dtype.to_string()).collect();
    Error::Type {
        expr: expr.to_string(),
        message: format!(
            "operands have incompatible types {}; convert one with cast(x, <type>)",
            found.join(" and ")
        ),
    }
}

/// The common dtype of several operands and whether it is still weak.
/// Strings mix only with strings and bools only with bools.
fn common_type(parts: &[Typed]) -> Option<(DType, bool)> {
    let mut acc: Option<Typed> = None;
    for &p in parts {
        acc = Some(match acc {
            None => p,
            Some(a) => {
                let dtype = supertype(a, p)?;
                Typed {
                    id: a.id,
                    dtype,
                    weak: a.weak && p.weak,
                }
            }
        });
    }
    acc.map(|t| (t.dtype, t.weak))
}

fn supertype(a: Typed, b: Typed) -> Option<DType> {
    use DType::*;
    if a.dtype == b.dtype {
        return Some(a.dtype);
    }
    if !a.dtype.is_numeric() || !b.dtype.is_numeric() {
        return None;
    }
    Some(match (a.weak, b.weak) {
        // A weak literal adopts the column's type, unless a float literal meets an integer column.
        (true, false) if !(a.dtype.is_float() && b.dtype.is_integer()) => b.dtype,
        (false, true) if !(b.dtype.is_float() && a.dtype.is_integer()) => a.dtype,
        _ => match (a.dtype, b.dtype) {
            (Int32, Int64) | (Int64, Int32) => Int64,
            _ => Float64,
        },
    })
}

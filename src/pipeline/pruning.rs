//! A step's row condition ([`Step::row_condition`](crate::Step::row_condition),
//! a filter's predicate) as a [`RowGroupPredicate`], which a Parquet source
//! checks against each row group's statistics to skip the groups in which
//! no row can satisfy it.
//!
//! The analysis reads the *typed* expression (the arena the filter's kernel
//! runs), so it sees what the kernel compares: a literal already coerced to
//! its column's type (`f32_col > 0.1` compares with `0.1f32`), and every
//! implicit conversion as an explicit cast. It keeps only what statistics
//! can refute exactly: a bare column compared with a literal (`==`, `<`,
//! `<=`, `>`, `>=`, the literal on either side), `is_null(col)`,
//! `not is_null(col)`, a bare bool column, and `and` / `or` of those. Under
//! `and`, a part it cannot read is dropped (the rest still must hold); under
//! `or`, such a part makes the whole unknown. Anything else (casts,
//! arithmetic, `!=`, `not` of a comparison, strings) is unknown, and an
//! unknown predicate prunes nothing.

use std::sync::Arc;

use arrow_schema::SchemaRef;

use crate::data::files::{Comparison, RowGroupPredicate, Value};
use crate::ir::{BinaryOp, Const, DType, Expr, ExprId, Node, Projection, UnaryOp};

/// `condition` over `input` as a predicate on row-group statistics, or
/// `None` when no part of it can be checked that way (or it does not
/// type-check as a boolean: the step reports that itself).
pub fn row_group_predicate(condition: &Expr, input: &SchemaRef) -> Option<RowGroupPredicate> {
    let exprs = [("keep".to_string(), condition.clone())];
    let projection = Projection::try_new(Arc::clone(input), &exprs).ok()?;
    let &(_, root) = projection.outputs().first()?;
    (projection.arena().dtype(root) == DType::Bool)
        .then(|| analyse(&projection, root))
        .flatten()
}

/// The predicate node `id` computes, where statistics can refute it.
fn analyse(p: &Projection, id: ExprId) -> Option<RowGroupPredicate> {
    let arena = p.arena();
    match *arena.node(id) {
        Node::Binary(BinaryOp::And, a, b) => {
            let mut parts = Vec::new();
            for part in [a, b].into_iter().filter_map(|c| analyse(p, c)) {
                match part {
                    RowGroupPredicate::And(inner) => parts.extend(inner),
                    other => parts.push(other),
                }
            }
            (!parts.is_empty()).then_some(RowGroupPredicate::And(parts))
        }
        Node::Binary(BinaryOp::Or, a, b) => {
            let mut parts = Vec::new();
            for part in [analyse(p, a)?, analyse(p, b)?] {
                match part {
                    RowGroupPredicate::Or(inner) => parts.extend(inner),
                    other => parts.push(other),
                }
            }
            Some(RowGroupPredicate::Or(parts))
        }
        Node::Binary(op, a, b) => comparison(p, op, a, b),
        Node::IsNull(a) => column(p, a).map(RowGroupPredicate::IsNull),
        Node::Unary(UnaryOp::Not, a) => match *arena.node(a) {
            Node::IsNull(c) => column(p, c).map(RowGroupPredicate::IsNotNull),
            _ => None,
        },
        Node::Column(_) => Some(RowGroupPredicate::Compare {
            column: column(p, id)?,
            op: Comparison::Eq,
            value: Value::Bool(true),
        }),
        _ => None,
    }
}

/// `a op b` with one side a bare column and the other a literal of its type.
fn comparison(p: &Projection, op: BinaryOp, a: ExprId, b: ExprId) -> Option<RowGroupPredicate> {
    let op = match op {
        BinaryOp::Eq => Comparison::Eq,
        BinaryOp::Lt => Comparison::Lt,
        BinaryOp::LtEq => Comparison::LtEq,
        BinaryOp::Gt => Comparison::Gt,
        BinaryOp::GtEq => Comparison::GtEq,
        _ => return None,
    };
    let (column_id, literal, op) = match (column(p, a), column(p, b)) {
        (Some(_), None) => (a, b, op),
        (None, Some(_)) => (b, a, op.flipped()),
        _ => return None,
    };
    let arena = p.arena();
    if arena.dtype(column_id) != arena.dtype(literal) {
        return None;
    }
    let Node::Literal(constant) = arena.node(literal) else {
        return None;
    };
    Some(RowGroupPredicate::Compare {
        column: column(p, column_id)?,
        op,
        value: value(constant, arena.dtype(literal))?,
    })
}

/// The name of the input column node `id` reads, when it is a bare column.
fn column(p: &Projection, id: ExprId) -> Option<String> {
    match *p.arena().node(id) {
        Node::Column(index) => Some(p.input_schema().field(index).name().clone()),
        _ => None,
    }
}

/// A typed constant as a statistics value (strings are not compared).
fn value(constant: &Const, dtype: DType) -> Option<Value> {
    Some(match (constant, dtype) {
        (Const::Bool(b), DType::Bool) => Value::Bool(*b),
        (Const::Int(i), DType::Int32) => Value::Int32(i32::try_from(*i).ok()?),
        (Const::Int(i), DType::Int64) => Value::Int64(*i),
        // Exact: the type checker stored an f32 literal's f32 value.
        (Const::Float(bits), DType::Float32) => Value::Float32(f64::from_bits(*bits) as f32),
        (Const::Float(bits), DType::Float64) => Value::Float64(f64::from_bits(*bits)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::ir::parse_expr;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("f0", DataType::Float32, true),
            Field::new("d", DataType::Float64, true),
            Field::new("i", DataType::Int32, true),
            Field::new("n", DataType::Int64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    fn analysed(text: &str) -> Option<RowGroupPredicate> {
        row_group_predicate(&parse_expr(text).unwrap(), &schema())
    }

    fn cmp(column: &str, op: Comparison, value: Value) -> RowGroupPredicate {
        RowGroupPredicate::Compare {
            column: column.into(),
            op,
            value,
        }
    }

    #[test]
    fn a_column_against_a_literal_compares_in_the_column_type() {
        assert_eq!(
            analysed("f0 > 0.1"),
            Some(cmp("f0", Comparison::Gt, Value::Float32(0.1f32)))
        );
        assert_eq!(
            analysed("d <= 2"),
            Some(cmp("d", Comparison::LtEq, Value::Float64(2.0)))
        );
        assert_eq!(
            analysed("i == 3"),
            Some(cmp("i", Comparison::Eq, Value::Int32(3)))
        );
        assert_eq!(
            analysed("n >= -4"),
            Some(cmp("n", Comparison::GtEq, Value::Int64(-4)))
        );
    }

    #[test]
    fn a_literal_on_the_left_flips_the_comparison() {
        assert_eq!(
            analysed("2.5 < d"),
            Some(cmp("d", Comparison::Gt, Value::Float64(2.5)))
        );
        assert_eq!(
            analysed("3 >= i"),
            Some(cmp("i", Comparison::LtEq, Value::Int32(3)))
        );
    }

    #[test]
    fn and_keeps_what_it_can_read_or_needs_both_sides() {
        assert_eq!(
            analysed("d > 1 and i < 5 and d * 2 > 3"),
            Some(RowGroupPredicate::And(vec![
                cmp("d", Comparison::Gt, Value::Float64(1.0)),
                cmp("i", Comparison::Lt, Value::Int32(5)),
            ]))
        );
        assert_eq!(
            analysed("d > 1 or i < 5"),
            Some(RowGroupPredicate::Or(vec![
                cmp("d", Comparison::Gt, Value::Float64(1.0)),
                cmp("i", Comparison::Lt, Value::Int32(5)),
            ]))
        );
        assert_eq!(analysed("d > 1 or d * 2 > 3"), None);
    }

    #[test]
    fn null_tests_and_bool_columns() {
        assert_eq!(
            analysed("is_null(i)"),
            Some(RowGroupPredicate::IsNull("i".into()))
        );
        assert_eq!(
            analysed("not is_null(d)"),
            Some(RowGroupPredicate::IsNotNull("d".into()))
        );
        assert_eq!(
            analysed("b"),
            Some(cmp("b", Comparison::Eq, Value::Bool(true)))
        );
        assert_eq!(
            analysed("b == false"),
            Some(cmp("b", Comparison::Eq, Value::Bool(false)))
        );
    }

    #[test]
    fn anything_else_is_unknown() {
        for text in [
            "d * 2 > 3",
            "i > 2.5",
            "i > n",
            "d != 1",
            "not (d > 1)",
            "s == \"a\"",
            "cast(d, f32) > 1",
            "d > d",
            "is_null(d + 1)",
            "fill_null(d, 0) > 1",
            "d",
        ] {
            assert_eq!(analysed(text), None, "{text}");
        }
    }
}

//! Projections that together use every operator, dtype, cast and null rule
//! of the expression IR, for the GPU backends' kernel tests.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use fuseflow::ir::{DType, Expr, Projection, col, if_else, lit};

/// The input schema: one column of every device dtype, plus a string.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("i", DataType::Int32, true),
        Field::new("l", DataType::Int64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn projection(exprs: Vec<(&str, Expr)>) -> Projection {
    let exprs: Vec<(String, Expr)> = exprs.into_iter().map(|(n, e)| (n.to_string(), e)).collect();
    Projection::try_new(schema(), &exprs).expect("test projections type-check")
}

const NUMERIC: [&str; 4] = ["x", "d", "i", "l"];
const FLOATS: [&str; 2] = ["x", "d"];

/// Named projections covering the IR, none of which reads the string column.
pub fn projections() -> Vec<(&'static str, Projection)> {
    let mut unary = Vec::new();
    for c in FLOATS {
        let x = || col(c);
        unary.extend([
            ("neg", -x()),
            ("abs", x().abs()),
            ("sqrt", x().sqrt()),
            ("exp", x().exp()),
            ("log", x().log()),
            ("log1p", x().log1p()),
            ("sigmoid", x().sigmoid()),
        ]);
    }
    for c in ["i", "l"] {
        unary.extend([("neg", -col(c)), ("abs", col(c).abs())]);
    }
    let unary: Vec<(String, Expr)> = unary
        .into_iter()
        .enumerate()
        .map(|(k, (n, e))| (format!("{n}_{k}"), e))
        .collect();

    let mut binary: Vec<(String, Expr)> = Vec::new();
    for c in NUMERIC {
        let x = || col(c);
        let y = || col(c) * lit(3) - lit(1);
        binary.extend([
            (format!("add_{c}"), x() + y()),
            (format!("sub_{c}"), x() - y()),
            (format!("mul_{c}"), x() * y()),
            (format!("min_{c}"), x().minimum(y())),
            (format!("max_{c}"), x().maximum(y())),
            (format!("clip_{c}"), x().clip(lit(-5), lit(5))),
            (format!("eq_{c}"), x().eq(y())),
            (format!("ne_{c}"), x().not_eq(y())),
            (format!("lt_{c}"), x().lt(y())),
            (format!("le_{c}"), x().lt_eq(y())),
            (format!("gt_{c}"), x().gt(y())),
            (format!("ge_{c}"), x().gt_eq(y())),
        ]);
    }
    for c in FLOATS {
        binary.extend([
            (format!("div_{c}"), col(c) / (col(c) + lit(1.5))),
            (format!("pow_{c}"), col(c).abs().pow(lit(0.5))),
        ]);
    }

    let logic = vec![
        ("and", col("flag").and(col("x").gt(lit(0.0)))),
        ("or", col("flag").or(col("d").lt(lit(0.0)))),
        ("not", col("flag").not()),
        ("is_null", col("x").is_null()),
        ("fill_lit", col("x").fill_null(lit(0.5))),
        ("fill_col", col("x").fill_null(col("x") * lit(2.0))),
        ("fill_i", col("i").fill_null(lit(7))),
        ("if_else", if_else(col("flag"), col("x"), -col("x"))),
        (
            "if_else_lit",
            if_else(col("d").gt(lit(0.0)), lit(1.0), col("d")),
        ),
        ("nan", col("x") + lit(f32::NAN)),
        ("inf", col("d").minimum(lit(f64::INFINITY))),
        ("neg_inf", col("x").maximum(lit(f32::NEG_INFINITY))),
        ("i32_min", col("i").maximum(lit(i32::MIN))),
        ("i64_min", col("l").maximum(lit(i64::MIN))),
    ];

    let dtypes = [
        DType::Bool,
        DType::Int32,
        DType::Int64,
        DType::Float32,
        DType::Float64,
    ];
    let mut casts = Vec::new();
    for (c, from) in [
        ("flag", DType::Bool),
        ("x", DType::Float32),
        ("d", DType::Float64),
        ("i", DType::Int32),
        ("l", DType::Int64),
    ] {
        for to in dtypes {
            if to != from {
                casts.push((format!("{c}_as_{}", to.name()), col(c).cast(to)));
            }
        }
    }

    let prep = vec![
        (
            "z",
            ((col("x").fill_null(lit(0.25)) - lit(1.5)) / lit(2.0)).clip(lit(-5.0), lit(5.0)),
        ),
        (
            "score",
            (col("x").fill_null(lit(0.0)) * lit(0.5) + col("d").cast(DType::Float32) * lit(-0.25))
                .sigmoid(),
        ),
        ("positive", col("x").gt(lit(0.0))),
    ];

    let named = |v: Vec<(String, Expr)>| {
        projection(v.iter().map(|(n, e)| (n.as_str(), e.clone())).collect())
    };
    vec![
        ("unary", named(unary)),
        ("binary", named(binary)),
        ("logic", projection(logic)),
        ("casts", named(casts)),
        ("prep", projection(prep)),
    ]
}

//! Expression text parsing: precedence, functions, literals, round trips through
//! `Display`, and error messages.

use fuseflow::Error;
use fuseflow::ir::{BinaryOp, DType, Expr, Scalar, UnaryOp, col, if_else, lit, parse_expr};

fn parse(text: &str) -> Expr {
    match parse_expr(text) {
        Ok(e) => e,
        Err(err) => panic!("`{text}` should parse: {err}"),
    }
}

/// The parse error's (position, message), failing the test if parsing succeeds.
fn parse_err(text: &str) -> (usize, String) {
    match parse_expr(text) {
        Ok(e) => panic!("`{text}` should not parse, got {e:?}"),
        Err(Error::Parse {
            text: t,
            position,
            message,
        }) => {
            assert_eq!(t, text);
            (position, message)
        }
        Err(other) => panic!("`{text}`: expected a parse error, got {other}"),
    }
}

fn un(op: UnaryOp, input: Expr) -> Expr {
    Expr::Unary {
        op,
        input: Box::new(input),
    }
}

fn bin(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

fn float(x: f64) -> Expr {
    Expr::Literal(Scalar::Float(x))
}

fn int(i: i64) -> Expr {
    Expr::Literal(Scalar::Int(i))
}

// ----------------------------------------------------------------- precedence

#[test]
fn arithmetic_precedence_and_associativity() {
    assert_eq!(parse("a + b * c"), col("a") + col("b") * col("c"));
    assert_eq!(parse("a * b + c"), col("a") * col("b") + col("c"));
    assert_eq!(parse("a - b - c"), (col("a") - col("b")) - col("c"));
    assert_eq!(parse("a / b / c"), (col("a") / col("b")) / col("c"));
    assert_eq!(parse("a - b + c"), (col("a") - col("b")) + col("c"));
    assert_eq!(parse("a * b / c"), (col("a") * col("b")) / col("c"));
    assert_eq!(parse("(a + b) * c"), (col("a") + col("b")) * col("c"));
    assert_eq!(parse("a+b*c"), parse("  a   +  b *c  "));
}

#[test]
fn power_is_right_associative_and_binds_tighter_than_minus() {
    assert_eq!(parse("a ** b ** c"), col("a").pow(col("b").pow(col("c"))));
    assert_eq!(parse("-x ** 2"), -(col("x").pow(2)));
    assert_eq!(parse("-x**2"), -(col("x").pow(2)));
    assert_eq!(parse("-2 ** 2"), -(lit(2).pow(2)));
    assert_eq!(parse("2 ** -1"), lit(2).pow(-1));
    assert_eq!(parse("2 ** -x"), lit(2).pow(-col("x")));
    assert_eq!(parse("a * b ** 2"), col("a") * col("b").pow(2));
    assert_eq!(parse("-x * y"), (-col("x")) * col("y"));
    assert_eq!(parse("(-x) ** 2"), (-col("x")).pow(2));
}

#[test]
fn unary_minus_and_negative_literals() {
    assert_eq!(parse("-5.0"), float(-5.0));
    assert_eq!(parse("-5"), int(-5));
    assert_eq!(parse("- 5"), int(-5));
    assert_eq!(parse("-x"), -col("x"));
    assert_eq!(parse("--x"), -(-col("x")));
    assert_eq!(parse("- -5"), -int(-5));
    assert_eq!(parse("-(5)"), -int(5));
    assert_eq!(parse("x - 5"), col("x") - 5);
    assert_eq!(parse("x - -5"), col("x") - int(-5));
    assert_eq!(parse("x*-2.5"), col("x") * float(-2.5));
    assert_eq!(parse("-9223372036854775808"), int(i64::MIN));
    assert_eq!(parse("-inf"), float(f64::NEG_INFINITY));
}

#[test]
fn logical_and_comparison_precedence() {
    assert_eq!(
        parse("a < 1 or b > 2 and c == 3"),
        col("a").lt(1).or(col("b").gt(2).and(col("c").eq(3)))
    );
    assert_eq!(parse("a || b && c"), col("a").or(col("b").and(col("c"))));
    assert_eq!(parse("a or b or c"), col("a").or(col("b")).or(col("c")));
    assert_eq!(parse("a and b and c"), col("a").and(col("b")).and(col("c")));
    assert_eq!(parse("not a and b"), col("a").not().and(col("b")));
    assert_eq!(parse("!a || b"), col("a").not().or(col("b")));
    assert_eq!(parse("not a == b"), col("a").eq(col("b")).not());
    assert_eq!(parse("not not a"), col("a").not().not());
    assert_eq!(parse("not(a)"), col("a").not());
    assert_eq!(parse("a + 1 >= b * 2"), (col("a") + 1).gt_eq(col("b") * 2));
    assert_eq!(parse("a != b"), col("a").not_eq(col("b")));
    assert_eq!(parse("a <= b"), col("a").lt_eq(col("b")));
    assert_eq!(parse("(a < b) == true"), col("a").lt(col("b")).eq(true));
    // `and` / `or` are keywords only between operands; `android` is a column.
    assert_eq!(parse("android or order"), col("android").or(col("order")));
}

// ------------------------------------------------------------------- literals

#[test]
fn number_literals() {
    assert_eq!(parse("1"), int(1));
    assert_eq!(parse("007"), int(7));
    assert_eq!(parse("2.5"), float(2.5));
    assert_eq!(parse("2."), float(2.0));
    assert_eq!(parse(".5"), float(0.5));
    assert_eq!(parse("1e-3"), float(1e-3));
    assert_eq!(parse("1E3"), float(1000.0));
    assert_eq!(parse("2.5e+2"), float(250.0));
    assert_eq!(parse("inf"), float(f64::INFINITY));
    assert!(matches!(parse("nan"), Expr::Literal(Scalar::Float(x)) if x.is_nan()));
    assert!(matches!(parse("NaN"), Expr::Literal(Scalar::Float(x)) if x.is_nan()));
    // Too large for i64: a float.
    assert_eq!(parse("100000000000000000000"), float(1e20));
    assert_eq!(parse("true"), lit(true));
    assert_eq!(parse("false"), lit(false));
}

#[test]
fn string_literals_and_escapes() {
    assert_eq!(parse(r#""abc""#), lit("abc"));
    assert_eq!(parse("'abc'"), lit("abc"));
    assert_eq!(parse(r#""""#), lit(""));
    assert_eq!(parse(r#""it's""#), lit("it's"));
    assert_eq!(parse(r#"'say "hi"'"#), lit("say \"hi\""));
    assert_eq!(parse(r#""a\"b""#), lit("a\"b"));
    assert_eq!(parse(r#"'a\'b'"#), lit("a'b"));
    assert_eq!(parse(r#""back\\slash""#), lit("back\\slash"));
    assert_eq!(parse(r#""\n\t\r\0""#), lit("\n\t\r\0"));
    assert_eq!(parse(r#""\u{e9}\u{1F600}""#), lit("é😀"));
    assert_eq!(parse("\"héllo wörld\""), lit("héllo wörld"));
    assert_eq!(parse(r#"city == "Zürich""#), col("city").eq("Zürich"));
}

#[test]
fn columns() {
    assert_eq!(parse("x"), col("x"));
    assert_eq!(parse("_x1"), col("_x1"));
    assert_eq!(parse(r#"col("unit price")"#), col("unit price"));
    assert_eq!(parse("col('a-b')"), col("a-b"));
    assert_eq!(parse(r#"col("true")"#), col("true"));
    assert_eq!(parse(r#"col("")"#), col(""));
    assert_eq!(parse(r#"col("inf") + col("not")"#), col("inf") + col("not"));
    assert_eq!(parse(r#"col("naïve") * 2"#), col("naïve") * 2);
    // Function names without parentheses are columns.
    assert_eq!(parse("log + abs"), col("log") + col("abs"));
}

// ------------------------------------------------------------------ functions

#[test]
fn every_function() {
    let x = || col("x");
    assert_eq!(parse("abs(x)"), x().abs());
    assert_eq!(parse("sqrt(x)"), x().sqrt());
    assert_eq!(parse("exp(x)"), x().exp());
    assert_eq!(parse("log(x)"), x().log());
    assert_eq!(parse("log1p(x)"), x().log1p());
    assert_eq!(parse("sigmoid(x)"), x().sigmoid());
    assert_eq!(parse("pow(x, 2)"), x().pow(2));
    assert_eq!(parse("minimum(x, y)"), x().minimum(col("y")));
    assert_eq!(parse("maximum(x, 0.0)"), x().maximum(0.0));
    assert_eq!(parse("clip(x, -1, 1)"), x().clip(-1, 1));
    assert_eq!(parse("is_null(x)"), x().is_null());
    assert_eq!(parse("fill_null(x, 0.0)"), x().fill_null(0.0));
    assert_eq!(
        parse("if_else(x > 0, x, -x)"),
        if_else(x().gt(0), x(), -x())
    );
    assert_eq!(parse("pow(x, 2)"), parse("x ** 2"));
    assert_eq!(
        parse("clip(fill_null(x, 0.0), -5.0, 5.0)"),
        x().fill_null(0.0).clip(-5.0, 5.0)
    );
    assert_eq!(parse("log1p(abs(x) + 1)"), (x().abs() + 1).log1p());
    // The exact node shapes.
    assert_eq!(parse("!x"), un(UnaryOp::Not, x()));
    assert_eq!(parse("-x"), un(UnaryOp::Neg, x()));
    assert_eq!(parse("sigmoid(x)"), un(UnaryOp::Sigmoid, x()));
    assert_eq!(parse("minimum(x, 1)"), bin(BinaryOp::Min, x(), int(1)));
    assert_eq!(parse("maximum(1, x)"), bin(BinaryOp::Max, int(1), x()));
    assert_eq!(parse("x ** 0.5"), bin(BinaryOp::Pow, x(), float(0.5)));
}

#[test]
fn casts() {
    let x = || col("x");
    assert_eq!(parse("cast(x, f32)"), x().cast(DType::Float32));
    assert_eq!(parse("cast(x, f64)"), x().cast(DType::Float64));
    assert_eq!(parse("cast(x, i32)"), x().cast(DType::Int32));
    assert_eq!(parse("cast(x, i64)"), x().cast(DType::Int64));
    assert_eq!(parse("cast(x, bool)"), x().cast(DType::Bool));
    assert_eq!(parse("cast(x, utf8)"), x().cast(DType::Utf8));
    assert_eq!(parse("cast(x, float32)"), x().cast(DType::Float32));
    assert_eq!(parse("cast(x, int)"), x().cast(DType::Int64));
    assert_eq!(parse("cast(x, \"f32\")"), x().cast(DType::Float32));
    assert_eq!(
        parse("cast(x > 0, i32) * 2"),
        x().gt(0).cast(DType::Int32) * 2
    );
}

// ----------------------------------------------------------------- round trip

#[test]
fn display_round_trips() {
    let trees = vec![
        col("x"),
        lit(-5.0),
        lit(-3),
        lit(0.1) + lit(1e-7),
        lit(1e300) * lit(-2.5e-300),
        lit(f64::INFINITY).maximum(lit(f64::NEG_INFINITY)),
        col("x").fill_null(0.0).clip(-5.0, 5.0),
        (col("a") + col("b")) * (col("c") - -col("d")) / lit(2),
        col("a") - (col("b") - col("c")),
        col("x").pow(col("y").pow(lit(-0.5))),
        -(col("x").pow(2)),
        -(-col("x")),
        (-col("x")).pow(lit(2)),
        if_else(
            col("a").gt(0).and(col("b").is_null().not()),
            if_else(col("c").lt_eq(1.5), lit("low"), lit("high")),
            lit("none"),
        ),
        col("city")
            .eq("Zürich")
            .or(col("city").not_eq("it's \"quoted\"\\\n\t"))
            .and(col("name").gt_eq(col("other name"))),
        col("unit price").cast(DType::Float32) * col("qty").cast(DType::Float64),
        col("flag").cast(DType::Bool).not().or(lit(false)),
        col("x").cast(DType::Utf8).eq(lit("1")),
        col("x").cast(DType::Int32).cast(DType::Int64),
        col("log").log().sqrt().exp().abs().sigmoid().log1p(),
        col("x").minimum(col("y")).maximum(lit(i64::MIN)),
        col("true") + col("and") + col("col") + col("naïve") + col("a\u{1b}b"),
        lit(true).and(lit(false)).or(col("b").lt(col("c"))),
        col("x").lt(1).eq(col("y").gt(2)),
    ];
    for e in trees {
        let text = e.to_string();
        match parse_expr(&text) {
            Ok(back) => assert_eq!(back, e, "round trip through `{text}`"),
            Err(err) => panic!("`{text}` (printed from {e:?}) does not parse: {err}"),
        }
    }
}

// --------------------------------------------------------------------- errors

#[test]
fn unknown_function_lists_the_known_ones() {
    let (pos, msg) = parse_err("foo(x)");
    assert_eq!(pos, 0);
    assert!(msg.contains("`foo`"), "{msg}");
    assert!(msg.contains("clip") && msg.contains("if_else"), "{msg}");
    let (pos, msg) = parse_err("x + bar(1, 2)");
    assert_eq!(pos, 4);
    assert!(msg.contains("`bar`"), "{msg}");
    // The full error names the text and the position.
    let err = parse_expr("foo(x)").map(|_| ()).unwrap_err().to_string();
    assert!(
        err.contains("foo(x)") && err.contains("character 0"),
        "{err}"
    );
}

#[test]
fn wrong_argument_counts_say_what_is_expected() {
    let (pos, msg) = parse_err("clip(x, 1)");
    assert_eq!(pos, 0);
    assert!(
        msg.contains("3 arguments") && msg.contains("got 2"),
        "{msg}"
    );
    let (_, msg) = parse_err("abs(x, y)");
    assert!(msg.contains("1 argument") && msg.contains("got 2"), "{msg}");
    let (_, msg) = parse_err("abs()");
    assert!(msg.contains("got 0"), "{msg}");
    let (pos, msg) = parse_err("y + pow(x)");
    assert_eq!(pos, 4);
    assert!(msg.contains("`pow` takes 2 arguments"), "{msg}");
    let (_, msg) = parse_err("if_else(c, 1)");
    assert!(msg.contains("3 arguments"), "{msg}");
    let (_, msg) = parse_err("fill_null(x)");
    assert!(msg.contains("2 arguments"), "{msg}");
    let (_, msg) = parse_err("cast(x)");
    assert!(
        msg.contains("2 arguments") && msg.contains("got 1"),
        "{msg}"
    );
    let (_, msg) = parse_err("cast(x, f32, 1)");
    assert!(msg.contains("2 arguments"), "{msg}");
    let (_, msg) = parse_err("col(\"a\", \"b\")");
    assert!(msg.contains("1 argument"), "{msg}");
}

#[test]
fn unexpected_end_of_input() {
    let (pos, msg) = parse_err("x +");
    assert_eq!(pos, 3);
    assert!(msg.contains("end of input") && msg.contains("`+`"), "{msg}");
    let (pos, msg) = parse_err("");
    assert_eq!(pos, 0);
    assert!(msg.contains("expected an expression"), "{msg}");
    let (pos, msg) = parse_err("   ");
    assert_eq!(pos, 3);
    assert!(msg.contains("end of input"), "{msg}");
    let (pos, msg) = parse_err("(x + 1");
    assert_eq!(pos, 6);
    assert!(msg.contains("`)`") && msg.contains("end of input"), "{msg}");
    let (pos, msg) = parse_err("clip(x, 1,");
    assert_eq!(pos, 10);
    assert!(msg.contains("end of input"), "{msg}");
}

#[test]
fn unexpected_tokens() {
    let (pos, msg) = parse_err("x y");
    assert_eq!(pos, 2);
    assert!(msg.contains("`y`") && msg.contains("operator"), "{msg}");
    let (pos, msg) = parse_err("x + )");
    assert_eq!(pos, 4);
    assert!(msg.contains("`)`"), "{msg}");
    let (pos, msg) = parse_err("(x))");
    assert_eq!(pos, 3);
    assert!(msg.contains("`)`"), "{msg}");
    let (pos, msg) = parse_err("x = 1");
    assert_eq!(pos, 2);
    assert!(msg.contains("=="), "{msg}");
    let (pos, msg) = parse_err("a & b");
    assert_eq!(pos, 2);
    assert!(msg.contains("&&"), "{msg}");
    let (pos, msg) = parse_err("x and or y");
    assert_eq!(pos, 6);
    assert!(msg.contains("`or`"), "{msg}");
    let (pos, msg) = parse_err("abs(x y)");
    assert_eq!(pos, 6);
    assert!(msg.contains("`,` or `)`"), "{msg}");
    let (pos, msg) = parse_err("x + $");
    assert_eq!(pos, 4);
    assert!(msg.contains("`$`"), "{msg}");
    let (pos, msg) = parse_err("a < b < c");
    assert_eq!(pos, 6);
    assert!(msg.contains("chained"), "{msg}");
    let (pos, msg) = parse_err("col(x)");
    assert_eq!(pos, 4);
    assert!(msg.contains("quoted"), "{msg}");
    let (pos, msg) = parse_err("col + 1");
    assert_eq!(pos, 0);
    assert!(msg.contains("col(\""), "{msg}");
}

#[test]
fn positions_count_characters_not_bytes() {
    let (pos, msg) = parse_err("\"ééé\" + foo(1)");
    assert_eq!(pos, 8);
    assert!(msg.contains("`foo`"), "{msg}");
    let (pos, msg) = parse_err("prix_€ > 1");
    assert_eq!(pos, 5);
    assert!(msg.contains('€'), "{msg}");
    let (pos, msg) = parse_err("naïve > 1");
    assert_eq!(pos, 2);
    assert!(msg.contains("col(\""), "{msg}");
}

#[test]
fn bad_strings() {
    let (pos, msg) = parse_err("'abc");
    assert_eq!(pos, 0);
    assert!(msg.contains("unterminated"), "{msg}");
    let (pos, msg) = parse_err("x == \"abc");
    assert_eq!(pos, 5);
    assert!(msg.contains("unterminated"), "{msg}");
    let (_, msg) = parse_err(r#""abc\"#);
    assert!(msg.contains("unterminated"), "{msg}");
    let (_, msg) = parse_err(r#""abc\""#);
    assert!(msg.contains("unterminated"), "{msg}");
    let (pos, msg) = parse_err(r#""a\qb""#);
    assert_eq!(pos, 2);
    assert!(msg.contains("\\q"), "{msg}");
    let (pos, msg) = parse_err(r#""\u{110000}""#);
    assert_eq!(pos, 1);
    assert!(msg.contains("unicode"), "{msg}");
    let (_, msg) = parse_err(r#""\u12""#);
    assert!(msg.contains("unicode"), "{msg}");
}

#[test]
fn bad_numbers() {
    let (pos, msg) = parse_err("1e");
    assert_eq!(pos, 1);
    assert!(msg.contains("exponent"), "{msg}");
    let (_, msg) = parse_err("1e+ 2");
    assert!(msg.contains("exponent"), "{msg}");
    let (pos, msg) = parse_err("2x");
    assert_eq!(pos, 1);
    assert!(msg.contains("`2x`"), "{msg}");
    let (pos, _) = parse_err("1.2.3");
    assert_eq!(pos, 3);
    let (pos, _) = parse_err(".");
    assert_eq!(pos, 0);
}

#[test]
fn unknown_cast_type() {
    let (pos, msg) = parse_err("cast(x, f16)");
    assert_eq!(pos, 8);
    assert!(msg.contains("`f16`") && msg.contains("f32"), "{msg}");
    let (pos, msg) = parse_err("cast(x, 1)");
    assert_eq!(pos, 8);
    assert!(msg.contains("type"), "{msg}");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // Deep but reasonable nesting parses, on a test thread's default stack.
    let depth = 400;
    let text = format!("{}x{}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(parse(&text), col("x"));
    let text = format!("{}x", "-".repeat(depth));
    assert!(parse_expr(&text).is_ok());
    let text = format!("{}x{}", "clip(0, 1, ".repeat(200), ")".repeat(200));
    assert!(parse_expr(&text).is_ok());
    // Absurd nesting is refused.
    for text in [
        format!("{}x{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}x", "not ".repeat(100_000)),
        format!("{}x{}", "abs(".repeat(100_000), ")".repeat(100_000)),
    ] {
        let (_, msg) = parse_err(&text);
        assert!(msg.contains("nested too deeply"), "{msg}");
    }
}

#[test]
fn never_panics_on_junk() {
    let pieces = [
        "(", ")", ",", "x", "1", "1.5", "'s'", "\"", "'", "\\", "+", "-", "*", "**", "/", "==",
        "=", "!", "!=", "<", "<=", ">", ">=", "&&", "||", "&", "|", "and", "or", "not", "col",
        "cast", "clip", "abs", "f32", "e", ".", "é", "😀", " ", "inf", "true",
    ];
    // Every string of up to three pieces, plus a few longer ones.
    let mut count = 0;
    for a in pieces {
        for b in pieces {
            for c in pieces {
                let _ = parse_expr(&format!("{a}{b}{c}"));
                let _ = parse_expr(&format!("{a} {b} {c}"));
                count += 2;
            }
        }
    }
    assert!(count > 0);
    for text in [
        "col(",
        "col(\"",
        "cast(x,",
        "cast(x, f32",
        "\"\\u{",
        "1e-",
        "-",
    ] {
        assert!(parse_expr(text).is_err(), "{text}");
    }
}

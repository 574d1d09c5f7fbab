//! Tokens to expressions: a Pratt parser with binding powers, depth-limited.

use super::lex::{Tok, Token};
use super::{Failure, KNOWN_FUNCTIONS, MAX_DEPTH, NEG_BP, NOT_BP, PResult, fail};
use crate::ir::dtype::{DType, Scalar};
use crate::ir::expr::Expr;
use crate::ir::ops::{BinaryOp, UnaryOp};

pub(super) struct Parser {
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
}

/// An infix operator's meaning and binding powers (left, right).
fn infix(tok: &Tok) -> Option<(BinaryOp, u8, u8)> {
    Some(match tok {
        Tok::OrOr => (BinaryOp::Or, 1, 2),
        Tok::Ident(s) if s == "or" => (BinaryOp::Or, 1, 2),
        Tok::AndAnd => (BinaryOp::And, 3, 4),
        Tok::Ident(s) if s == "and" => (BinaryOp::And, 3, 4),
        Tok::EqEq => (BinaryOp::Eq, 7, 8),
        Tok::NotEq => (BinaryOp::NotEq, 7, 8),
        Tok::Lt => (BinaryOp::Lt, 7, 8),
        Tok::LtEq => (BinaryOp::LtEq, 7, 8),
        Tok::Gt => (BinaryOp::Gt, 7, 8),
        Tok::GtEq => (BinaryOp::GtEq, 7, 8),
        Tok::Plus => (BinaryOp::Add, 9, 10),
        Tok::Minus => (BinaryOp::Sub, 9, 10),
        Tok::Star => (BinaryOp::Mul, 11, 12),
        Tok::Slash => (BinaryOp::Div, 11, 12),
        // Right-associative, and its right operand may start with a prefix minus.
        Tok::StarStar => (BinaryOp::Pow, 15, 14),
        _ => return None,
    })
}

fn is_comparison(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq
    )
}

fn unary(op: UnaryOp, input: Expr) -> Expr {
    Expr::Unary {
        op,
        input: Box::new(input),
    }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

/// The value of a number token, negated when `negative`.
fn number(text: &str, negative: bool, pos: usize) -> PResult<Scalar> {
    let sign = if negative { "-" } else { "" };
    let is_float = text.contains(['.', 'e', 'E']);
    if !is_float && let Ok(i) = format!("{sign}{text}").parse::<i64>() {
        return Ok(Scalar::Int(i));
    }
    match format!("{sign}{text}").parse::<f64>() {
        Ok(x) => Ok(Scalar::Float(x)),
        Err(_) => fail(pos, format!("invalid number `{text}`")),
    }
}

/// The float named by `inf` / `nan` (as `Display` prints them), if `name` is one.
fn named_float(name: &str) -> Option<f64> {
    match name {
        "inf" => Some(f64::INFINITY),
        "nan" | "NaN" => Some(f64::NAN),
        _ => None,
    }
}

// The functions on the recursion path (`expression`, `prefix`, `negation`, `not`,
// `parenthesized`, `name`, `call`, `arguments`, `cast_call`) stay small and leave
// message formatting and tree building to helpers: in unoptimized builds every
// temporary of a function gets its own stack slot, and these frames are live once
// per nesting level.
impl Parser {
    /// A parser at the first of `tokens` (which end in [`Tok::Eof`]).
    pub(super) fn new(tokens: Vec<Token>) -> Self {
        Parser {
            tokens,
            next: 0,
            depth: 0,
        }
    }

    pub(super) fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1; // the lexer always ends with Eof
        &self.tokens[(self.next + ahead).min(last)]
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.next += 1;
        }
        t
    }

    /// Whether the next token is `tok`; consumes it if so.
    fn eat(&mut self, tok: &Tok) -> bool {
        let found = self.peek().tok == *tok;
        if found {
            self.next += 1;
        }
        found
    }

    /// "expected {what}, found {next token}" at the next token.
    #[cold]
    #[inline(never)]
    fn unexpected(&self, what: &str) -> Failure {
        let t = self.peek();
        Failure {
            position: t.pos,
            message: format!("expected {what}, found {}", t.tok.describe()),
        }
    }

    /// Parse an expression whose operators all bind tighter than `min_bp`.
    pub(super) fn expression(&mut self, min_bp: u8) -> PResult<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep(self.peek().pos));
        }
        let mut lhs = self.prefix()?;
        let mut after_comparison = false;
        while let Some((op, lbp, rbp)) = infix(&self.peek().tok) {
            if lbp < min_bp {
                break;
            }
            if is_comparison(op) && after_comparison {
                return Err(chained_comparison(self.peek()));
            }
            self.next += 1;
            let rhs = self.expression(rbp)?;
            lhs = binary(op, lhs, rhs);
            after_comparison = is_comparison(op);
        }
        self.depth -= 1;
        Ok(lhs)
    }

    /// Parse a primary expression or a prefix operator and its operand.
    fn prefix(&mut self) -> PResult<Expr> {
        let Token { tok, pos } = self.advance();
        match tok {
            Tok::LParen => self.parenthesized(pos),
            Tok::Minus => self.negation(),
            Tok::Bang => self.not(),
            Tok::Ident(name) => self.name(name, pos),
            other => self.atom(other, pos),
        }
    }

    /// The rest of `( expr )` after the opening parenthesis at `open`.
    fn parenthesized(&mut self, open: usize) -> PResult<Expr> {
        let inner = self.expression(0)?;
        if !self.eat(&Tok::RParen) {
            return Err(self.unclosed(open));
        }
        Ok(inner)
    }

    #[cold]
    #[inline(never)]
    fn unclosed(&self, open: usize) -> Failure {
        self.unexpected(&format!("`)` to close the `(` at character {open}"))
    }

    /// The operand of a prefix `-`.
    fn negation(&mut self) -> PResult<Expr> {
        if let Some(literal) = self.negative_literal()? {
            return Ok(literal);
        }
        let input = self.expression(NEG_BP)?;
        Ok(unary(UnaryOp::Neg, input))
    }

    /// The operand of a prefix `not` / `!`.
    fn not(&mut self) -> PResult<Expr> {
        let input = self.expression(NOT_BP)?;
        Ok(unary(UnaryOp::Not, input))
    }

    /// After a prefix `-`: the negative literal, when a number follows that is
    /// not the base of `**` (`-2 ** 2` is `-(2 ** 2)`).
    fn negative_literal(&mut self) -> PResult<Option<Expr>> {
        if self.peek_at(1).tok == Tok::StarStar {
            return Ok(None);
        }
        let t = self.peek();
        let value = match &t.tok {
            Tok::Num(text) => number(text, true, t.pos)?,
            Tok::Ident(name) => match named_float(name) {
                Some(x) => Scalar::Float(-x),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        self.next += 1;
        Ok(Some(Expr::Literal(value)))
    }

    /// A token that starts no sub-expression: a literal, or an error.
    fn atom(&self, tok: Tok, pos: usize) -> PResult<Expr> {
        match tok {
            Tok::Num(text) => Ok(Expr::Literal(number(&text, false, pos)?)),
            Tok::Str(s) => Ok(Expr::Literal(Scalar::Str(s))),
            Tok::Eof if self.next > 0 => fail(
                pos,
                format!(
                    "expected an expression after {}, found end of input",
                    self.tokens[self.next - 1].tok.describe()
                ),
            ),
            other => fail(
                pos,
                format!("expected an expression, found {}", other.describe()),
            ),
        }
    }

    /// An identifier in operand position: keyword, literal, call or column.
    fn name(&mut self, name: String, pos: usize) -> PResult<Expr> {
        if name == "not" {
            self.not()
        } else if is_keyword(&name) || self.peek().tok != Tok::LParen {
            word(name, pos)
        } else {
            self.call(name, pos)
        }
    }

    /// A function call; the next token is the opening parenthesis.
    fn call(&mut self, name: String, pos: usize) -> PResult<Expr> {
        // A call nests about twice the stack frames of a parenthesis, so it counts
        // twice towards `MAX_DEPTH`.
        self.depth += 1;
        let result = match name.as_str() {
            "col" => self.col_call(pos),
            "cast" => self.cast_call(pos),
            _ => {
                let Some(arity) = arity(&name) else {
                    return Err(unknown_function(&name, pos));
                };
                let args = self.arguments(&name)?;
                build_call(&name, arity, args, pos)
            }
        };
        self.depth -= 1;
        result
    }

    /// `( expr, expr, ... )` after a function name.
    fn arguments(&mut self, name: &str) -> PResult<Vec<Expr>> {
        self.next += 1; // `(`, checked by the caller
        let mut args = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(args);
        }
        loop {
            args.push(self.expression(0)?);
            if self.eat(&Tok::RParen) {
                return Ok(args);
            }
            if !self.eat(&Tok::Comma) {
                return Err(self.bad_separator(name));
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_separator(&self, name: &str) -> Failure {
        self.unexpected(&format!("`,` or `)` in the arguments of `{name}`"))
    }

    /// `col("any name")`; the next token is the opening parenthesis.
    fn col_call(&mut self, pos: usize) -> PResult<Expr> {
        self.next += 1;
        let t = self.advance();
        let Tok::Str(name) = t.tok else {
            return fail(
                t.pos,
                format!(
                    "col() takes the column name as a quoted string, e.g. col(\"unit price\"); \
                     found {}",
                    t.tok.describe()
                ),
            );
        };
        if self.peek().tok == Tok::Comma {
            return fail(pos, "`col` takes 1 argument (a quoted column name)");
        }
        if !self.eat(&Tok::RParen) {
            return Err(self.unexpected("`)` to close `col(`"));
        }
        Ok(Expr::Column(name))
    }

    /// `cast(expr, type)`; the next token is the opening parenthesis.
    fn cast_call(&mut self, pos: usize) -> PResult<Expr> {
        self.next += 1;
        if self.peek().tok == Tok::RParen {
            return Err(cast_arity(pos, "0"));
        }
        let input = self.expression(0)?;
        if self.peek().tok == Tok::RParen {
            return Err(cast_arity(pos, "1"));
        }
        if !self.eat(&Tok::Comma) {
            return Err(self.unexpected("`,` or `)` in the arguments of `cast`"));
        }
        let dtype = self.cast_type()?;
        if self.peek().tok == Tok::Comma {
            return Err(cast_arity(pos, "more than 2"));
        }
        if !self.eat(&Tok::RParen) {
            return Err(self.unexpected("`)` to close `cast(`"));
        }
        Ok(Expr::Cast {
            input: Box::new(input),
            dtype,
        })
    }

    /// The type name in `cast(x, type)`, bare or quoted.
    fn cast_type(&mut self) -> PResult<DType> {
        let t = self.advance();
        let type_name = match t.tok {
            Tok::Ident(s) | Tok::Str(s) => s,
            other => {
                return fail(
                    t.pos,
                    format!(
                        "expected a type name as the second argument of `cast` \
                         (bool, i32, i64, f32, f64, utf8), found {}",
                        other.describe()
                    ),
                );
            }
        };
        match DType::parse(&type_name) {
            Some(dtype) => Ok(dtype),
            None => fail(
                t.pos,
                format!(
                    "unknown type `{type_name}` in cast; the types are bool, i32, i64, f32, \
                     f64, utf8 (also boolean, int32, int64, int, float32, float64, float, \
                     str, string)"
                ),
            ),
        }
    }
}

/// Names that are never columns or functions when written bare.
fn is_keyword(name: &str) -> bool {
    matches!(name, "true" | "false" | "and" | "or" | "not") || named_float(name).is_some()
}

/// An identifier not followed by `(` (or a keyword): a literal or a column.
fn word(name: String, pos: usize) -> PResult<Expr> {
    if let Some(x) = named_float(&name) {
        return Ok(Expr::Literal(Scalar::Float(x)));
    }
    match name.as_str() {
        "true" => Ok(Expr::Literal(Scalar::Bool(true))),
        "false" => Ok(Expr::Literal(Scalar::Bool(false))),
        "and" | "or" => fail(
            pos,
            format!("expected an expression, found `{name}` (a logical operator)"),
        ),
        "col" => fail(
            pos,
            "`col` needs the column name in parentheses, e.g. col(\"unit price\")",
        ),
        _ => Ok(Expr::Column(name)),
    }
}

/// The number of arguments and their names, for the functions parsed generically.
fn arity(name: &str) -> Option<(usize, &'static str)> {
    Some(match name {
        "abs" | "sqrt" | "exp" | "log" | "log1p" | "sigmoid" | "is_null" => (1, "(x)"),
        "pow" => (2, "(base, exponent)"),
        "minimum" | "maximum" => (2, "(a, b)"),
        "fill_null" => (2, "(x, value)"),
        "clip" => (3, "(x, min, max)"),
        "if_else" => (3, "(condition, then, otherwise)"),
        _ => return None,
    })
}

/// The tree for a call of a function [`arity`] knows, checking the argument count.
fn build_call(
    name: &str,
    (arity, params): (usize, &str),
    args: Vec<Expr>,
    pos: usize,
) -> PResult<Expr> {
    if args.len() != arity {
        let plural = if arity == 1 { "argument" } else { "arguments" };
        return fail(
            pos,
            format!(
                "`{name}` takes {arity} {plural} {name}{params}, got {}",
                args.len()
            ),
        );
    }
    let mut args = args.into_iter().map(Box::new);
    // The count was checked above, so `next` never runs out.
    let mut arg = || {
        args.next()
            .unwrap_or_else(|| Box::new(Expr::Literal(Scalar::Bool(false))))
    };
    Ok(match name {
        "abs" => unary(UnaryOp::Abs, *arg()),
        "sqrt" => unary(UnaryOp::Sqrt, *arg()),
        "exp" => unary(UnaryOp::Exp, *arg()),
        "log" => unary(UnaryOp::Log, *arg()),
        "log1p" => unary(UnaryOp::Log1p, *arg()),
        "sigmoid" => unary(UnaryOp::Sigmoid, *arg()),
        "is_null" => Expr::IsNull(arg()),
        "pow" => binary(BinaryOp::Pow, *arg(), *arg()),
        "minimum" => binary(BinaryOp::Min, *arg(), *arg()),
        "maximum" => binary(BinaryOp::Max, *arg(), *arg()),
        "fill_null" => Expr::FillNull {
            input: arg(),
            value: arg(),
        },
        "clip" => Expr::Clip {
            input: arg(),
            min: arg(),
            max: arg(),
        },
        _ => Expr::IfElse {
            condition: arg(),
            then: arg(),
            otherwise: arg(),
        },
    })
}

#[cold]
#[inline(never)]
fn unknown_function(name: &str, pos: usize) -> Failure {
    Failure {
        position: pos,
        message: format!("unknown function `{name}`; the functions are {KNOWN_FUNCTIONS}"),
    }
}

#[cold]
#[inline(never)]
fn cast_arity(pos: usize, got: &str) -> Failure {
    Failure {
        position: pos,
        message: format!("`cast` takes 2 arguments cast(x, type), got {got}"),
    }
}

#[cold]
#[inline(never)]
fn too_deep(pos: usize) -> Failure {
    Failure {
        position: pos,
        message: format!(
            "expression nested too deeply: at most {MAX_DEPTH} levels of parentheses and \
             operators, or {} of function calls; split it into simpler expressions",
            MAX_DEPTH / 2
        ),
    }
}

#[cold]
#[inline(never)]
fn chained_comparison(op: &Token) -> Failure {
    Failure {
        position: op.pos,
        message: format!(
            "comparisons cannot be chained: add parentheses around one side of {}, \
             or combine two comparisons with `and`",
            op.tok.describe()
        ),
    }
}

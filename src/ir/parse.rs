//! Parsing expression text into an [`Expr`].
//!
//! The syntax is the one [`Expr`]'s `Display` prints, so printing a tree and
//! parsing the text gives back the same tree. From lowest to highest precedence:
//!
//! ```text
//! expr    := expr ("or" | "||") expr                  left-associative
//!          | expr ("and" | "&&") expr                 left-associative
//!          | ("not" | "!") expr
//!          | expr ("==" | "!=" | "<" | "<=" | ">" | ">=") expr   not chainable
//!          | expr ("+" | "-") expr                    left-associative
//!          | expr ("*" | "/") expr                    left-associative
//!          | "-" expr
//!          | expr "**" expr                           right-associative; -x**2 is -(x**2)
//!          | primary
//! primary := number | "inf" | "nan" | "true" | "false" | string
//!          | identifier                               a column: [A-Za-z_][A-Za-z0-9_]*
//!          | "col" "(" string ")"                     a column with any name
//!          | name "(" expr ("," expr)* ")"            a function call
//!          | "cast" "(" expr "," type ")"             type: bool, i32, i64, f32, f64, utf8, ...
//!          | "(" expr ")"
//! ```
//!
//! Functions: `abs sqrt exp log log1p sigmoid` (one argument), `pow minimum
//! maximum` (two), `clip(x, lo, hi)`, `is_null(x)`, `fill_null(x, value)`,
//! `if_else(condition, then, otherwise)` and `cast(x, type)`.
//!
//! Numbers without `.` or an exponent are integer literals ([`Scalar::Int`]; ones
//! too large for i64 become floats), all others ([`Scalar::Float`]) are floats:
//! `2.5`, `1e-3`, `.5`, `inf`, `nan`. A minus sign directly before a number is
//! part of the literal (`-5.0` is the literal -5.0, not a negation), except before
//! `**`: `-2 ** 2` is `-(2 ** 2)`. Strings take double or single quotes, with the
//! escapes `\\ \" \' \n \r \t \0 \u{XXXX}`.
//!
//! `inf`, `nan`, `true`, `false`, `and`, `or` and `not` are keywords, and `col`
//! is only a function; columns with those names are written `col("inf")`. Nesting
//! is limited to a few hundred levels, so deep input fails cleanly instead of
//! overflowing the stack.
//!
//! Errors are [`Error::Parse`] with the 0-based character offset of the problem.

use super::dtype::{DType, Scalar};
use super::expr::Expr;
use super::ops::{BinaryOp, UnaryOp};
use crate::error::{Error, Result};

/// How deeply expressions may nest (parentheses, prefix operators, right operands;
/// a function call counts twice) before parsing stops with an error instead of
/// risking a stack overflow. At the limit an unoptimized build uses about 1 MiB of
/// stack, half of what a spawned thread gets by default.
const MAX_DEPTH: usize = 500;

/// Every function name the parser knows, for error messages.
const KNOWN_FUNCTIONS: &str = "abs, sqrt, exp, log, log1p, sigmoid, pow, minimum, maximum, \
     clip, is_null, fill_null, if_else, cast, col";

/// Binding power of prefix `not` / `!`: above `and`, below comparisons.
const NOT_BP: u8 = 5;
/// Binding power of prefix `-`: above `*`, below `**`.
const NEG_BP: u8 = 13;

/// Parse expression text (see the [module docs](self) for the syntax).
///
/// ```
/// use fuseflow::ir::{col, parse_expr};
/// let e = parse_expr("clip(fill_null(x, 0.0), -5.0, 5.0)").unwrap();
/// assert_eq!(e, col("x").fill_null(0.0).clip(-5.0, 5.0));
/// ```
pub fn parse_expr(text: &str) -> Result<Expr> {
    let chars: Vec<char> = text.chars().collect();
    parse_chars(&chars).map_err(|e| Error::Parse {
        text: text.to_string(),
        position: e.position,
        message: e.message,
    })
}

/// A parse failure before the full text is attached.
struct Failure {
    position: usize,
    message: String,
}

type PResult<T> = std::result::Result<T, Failure>;

fn fail<T>(position: usize, message: impl Into<String>) -> PResult<T> {
    Err(Failure {
        position,
        message: message.into(),
    })
}

fn parse_chars(chars: &[char]) -> PResult<Expr> {
    let tokens = lex(chars)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
    };
    let expr = parser.expression(0)?;
    let end = parser.peek();
    if end.tok != Tok::Eof {
        return fail(
            end.pos,
            format!(
                "expected an operator or end of input, found {}",
                end.tok.describe()
            ),
        );
    }
    Ok(expr)
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A number as written (digits, optional fraction and exponent), without sign.
    Num(String),
    /// A string literal, escapes resolved.
    Str(String),
    /// A name or keyword.
    Ident(String),
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    StarStar,
    EqEq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Bang,
    AndAnd,
    OrOr,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        let sym = match self {
            Tok::Num(s) => return format!("number `{s}`"),
            Tok::Str(s) => return format!("string {s:?}"),
            Tok::Ident(s) => return format!("`{s}`"),
            Tok::Eof => return "end of input".to_string(),
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::StarStar => "**",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::LtEq => "<=",
            Tok::Gt => ">",
            Tok::GtEq => ">=",
            Tok::Bang => "!",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
        };
        format!("`{sym}`")
    }
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// 0-based character offset of the token's first character.
    pos: usize,
}

fn lex(chars: &[char]) -> PResult<Vec<Token>> {
    let at = |i: usize| chars.get(i).copied();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let next = at(i + 1);
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '/' => (Tok::Slash, 1),
            '*' if next == Some('*') => (Tok::StarStar, 2),
            '*' => (Tok::Star, 1),
            '=' if next == Some('=') => (Tok::EqEq, 2),
            '=' => return fail(start, "unexpected `=`; use `==` to compare values"),
            '!' if next == Some('=') => (Tok::NotEq, 2),
            '!' => (Tok::Bang, 1),
            '<' if next == Some('=') => (Tok::LtEq, 2),
            '<' => (Tok::Lt, 1),
            '>' if next == Some('=') => (Tok::GtEq, 2),
            '>' => (Tok::Gt, 1),
            '&' if next == Some('&') => (Tok::AndAnd, 2),
            '&' => return fail(start, "unexpected `&`; write `and` or `&&`"),
            '|' if next == Some('|') => (Tok::OrOr, 2),
            '|' => return fail(start, "unexpected `|`; write `or` or `||`"),
            '"' | '\'' => {
                let (s, end) = lex_string(chars, start)?;
                (Tok::Str(s), end - start)
            }
            '0'..='9' => lex_number(chars, start)?,
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => lex_number(chars, start)?,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = start;
                while at(end).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                (Tok::Ident(name), end - start)
            }
            c if c.is_alphanumeric() => {
                return fail(
                    start,
                    format!(
                        "unexpected character `{c}`: bare column names may only use \
                         A-Z, a-z, 0-9 and _; write other names as col(\"...\")"
                    ),
                );
            }
            c => return fail(start, format!("unexpected character `{c}`")),
        };
        tokens.push(Token { tok, pos: start });
        i = start + len;
    }
    tokens.push(Token {
        tok: Tok::Eof,
        pos: chars.len(),
    });
    Ok(tokens)
}

/// Lex a number starting at `start`; returns the token and its length in characters.
fn lex_number(chars: &[char], start: usize) -> PResult<(Tok, usize)> {
    let is_digit = |i: usize| chars.get(i).is_some_and(|c| c.is_ascii_digit());
    let mut i = start;
    while is_digit(i) {
        i += 1;
    }
    if chars.get(i) == Some(&'.') {
        i += 1;
        while is_digit(i) {
            i += 1;
        }
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        if !is_digit(j) {
            let written: String = chars[start..j.min(chars.len())].iter().collect();
            return fail(
                i,
                format!("invalid number `{written}`: expected digits after the exponent"),
            );
        }
        i = j;
        while is_digit(i) {
            i += 1;
        }
    }
    if let Some(&c) = chars.get(i) {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            let written: String = chars[start..=i].iter().collect();
            return fail(
                i,
                format!("invalid number `{written}`: unexpected `{c}` after the digits"),
            );
        }
    }
    let text: String = chars[start..i].iter().collect();
    Ok((Tok::Num(text), i - start))
}

/// Lex a quoted string whose opening quote is at `start`; returns the value and
/// the offset just past the closing quote.
fn lex_string(chars: &[char], start: usize) -> PResult<(String, usize)> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return fail(
                start,
                format!("unterminated string: no closing {quote} for the quote opened here"),
            );
        };
        if c == quote {
            return Ok((out, i + 1));
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let escaped = match chars.get(i + 1) {
            None => {
                return fail(
                    start,
                    format!("unterminated string: no closing {quote} for the quote opened here"),
                );
            }
            Some('\\') => '\\',
            Some('"') => '"',
            Some('\'') => '\'',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('0') => '\0',
            Some('u') => {
                let (c, end) = lex_unicode_escape(chars, i)?;
                out.push(c);
                i = end;
                continue;
            }
            Some(other) => {
                return fail(
                    i,
                    format!(
                        "unknown escape `\\{other}` in string; the escapes are \
                         \\\\ \\\" \\' \\n \\r \\t \\0 \\u{{XXXX}}"
                    ),
                );
            }
        };
        out.push(escaped);
        i += 2;
    }
}

/// Lex `\u{XXXX}` with the backslash at `start`; returns the character and the
/// offset just past the closing brace.
fn lex_unicode_escape(chars: &[char], start: usize) -> PResult<(char, usize)> {
    let bad = || {
        fail(
            start,
            "invalid unicode escape: write \\u{XXXX} with 1 to 6 hex digits of a valid code point",
        )
    };
    if chars.get(start + 2) != Some(&'{') {
        return bad();
    }
    let digits_start = start + 3;
    let mut i = digits_start;
    while chars.get(i).is_some_and(|c| c.is_ascii_hexdigit()) {
        i += 1;
    }
    if chars.get(i) != Some(&'}') || i == digits_start || i - digits_start > 6 {
        return bad();
    }
    let hex: String = chars[digits_start..i].iter().collect();
    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
        Some(c) => Ok((c, i + 1)),
        None => bad(),
    }
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

struct Parser {
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
    if !is_float {
        if let Ok(i) = format!("{sign}{text}").parse::<i64>() {
            return Ok(Scalar::Int(i));
        }
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
    fn peek(&self) -> &Token {
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
    fn expression(&mut self, min_bp: u8) -> PResult<Expr> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_character_offsets() {
        let chars: Vec<char> = "é".chars().collect();
        assert!(lex(&chars).is_err());
        let chars: Vec<char> = "'é' + x".chars().collect();
        let toks = lex(&chars).ok().unwrap_or_default();
        let positions: Vec<usize> = toks.iter().map(|t| t.pos).collect();
        assert_eq!(positions, vec![0, 4, 6, 7]);
    }
}

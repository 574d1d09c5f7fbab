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
//! Numbers without `.` or an exponent are integer literals ([`Scalar::Int`](crate::ir::Scalar::Int); ones
//! too large for i64 become floats), all others ([`Scalar::Float`](crate::ir::Scalar::Float)) are floats:
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

mod grammar;
mod lex;

use super::expr::Expr;
use crate::error::{Error, Result};
use grammar::Parser;
use lex::{Tok, lex};

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
    let mut parser = Parser::new(tokens);
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

//! Characters to tokens, each with its character offset.

use super::{PResult, fail};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
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
    pub(super) fn describe(&self) -> String {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    /// 0-based character offset of the token's first character.
    pub(super) pos: usize,
}

pub(super) fn lex(chars: &[char]) -> PResult<Vec<Token>> {
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
    if let Some(&c) = chars.get(i)
        && (c.is_alphanumeric() || c == '_' || c == '.')
    {
        let written: String = chars[start..=i].iter().collect();
        return fail(
            i,
            format!("invalid number `{written}`: unexpected `{c}` after the digits"),
        );
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

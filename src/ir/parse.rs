//! placeholder until the parser lands
use super::expr::Expr;
use crate::error::Result;
/// Parse expression text.
pub fn parse_expr(_text: &str) -> Result<Expr> {
    Err(crate::error::Error::Internal(
        "parser not yet written".into(),
    ))
}

//! Column lineage: how each column was computed from the source columns.
//!
//! Row-local preparation steps record, in each output field's metadata, the
//! expression that computes the column from the pipeline's source columns
//! (composed through every earlier step) and the sources it reads with their
//! types. A model trained on prepared columns keeps these expressions, so
//! scoring applies exactly the training-time preparation to raw data, fused
//! with the model into one kernel.

use std::collections::HashMap;

use arrow_schema::{Field, Schema};

use crate::error::{Error, Result};
use crate::ir::{DType, Expr, col, parse_expr};

/// Field metadata key holding the column's expression over source columns.
pub const EXPR_KEY: &str = "fuseflow.expr";
/// Field metadata key holding the source columns the expression reads, as `name:dtype` separated by `;`.
pub const SOURCES_KEY: &str = "fuseflow.sources";

/// A column's expression over source columns, and those sources with their dtypes.
#[derive(Clone, Debug, PartialEq)]
pub struct Lineage {
    /// The expression.
    pub expr: Expr,
    /// Source columns it reads, in first-use order.
    pub sources: Vec<(String, DType)>,
}

/// The lineage of a field: recorded, or the field itself when it is a source column.
///
/// # Errors
/// [`Error::Schema`] when recorded lineage does not parse (metadata edited by hand).
pub fn of_field(field: &Field) -> Result<Lineage> {
    let meta = field.metadata();
    match (meta.get(EXPR_KEY), meta.get(SOURCES_KEY)) {
        (Some(expr), Some(sources)) => {
            let bad = |what: &str| Error::Schema {
                step: "<lineage>".into(),
                column: field.name().clone(),
                message: format!("unreadable lineage metadata: {what}"),
            };
            let expr = parse_expr(expr).map_err(|e| bad(&e.to_string()))?;
            let sources = sources
                .split(';')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let (name, dtype) = s.rsplit_once(':').ok_or_else(|| bad(s))?;
                    Ok((name.to_string(), DType::parse(dtype).ok_or_else(|| bad(s))?))
                })
                .collect::<Result<_>>()?;
            Ok(Lineage { expr, sources })
        }
        _ => Ok(Lineage {
            expr: col(field.name().as_str()),
            sources: DType::from_arrow(field.data_type())
                .map(|d| vec![(field.name().clone(), d)])
                .unwrap_or_default(),
        }),
    }
}

/// Lineage of `expr` evaluated over `input`: every column reference replaced by that column's lineage.
pub fn compose(expr: &Expr, input: &Schema) -> Result<Lineage> {
    let mut by_name: HashMap<String, Lineage> = HashMap::new();
    for name in expr.columns() {
        if let Ok(field) = input.field_with_name(&name) {
            by_name.insert(name.clone(), of_field(field)?);
        }
    }
    let mut sources: Vec<(String, DType)> = Vec::new();
    for name in expr.columns() {
        for source in by_name
            .get(&name)
            .map(|l| l.sources.as_slice())
            .unwrap_or_default()
        {
            if !sources.iter().any(|(n, _)| *n == source.0) {
                sources.push(source.clone());
            }
        }
    }
    let expr = expr.map_columns(&|name| {
        by_name
            .get(name)
            .map_or_else(|| col(name), |l| l.expr.clone())
    });
    Ok(Lineage { expr, sources })
}

/// `field` with `lineage` recorded in its metadata.
pub fn annotate(field: Field, lineage: &Lineage) -> Field {
    let mut meta = field.metadata().clone();
    meta.insert(EXPR_KEY.into(), lineage.expr.to_string());
    let sources: Vec<String> = lineage
        .sources
        .iter()
        .map(|(n, d)| format!("{n}:{d}"))
        .collect();
    meta.insert(SOURCES_KEY.into(), sources.join(";"));
    field.with_metadata(meta)
}

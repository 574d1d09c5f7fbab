//! Pipeline parameters: a spec file's `[params]` table declares typed
//! parameters, step keys refer to them as `${name}`, and each run gives
//! them values (`fuseflow run --param name=value`, a params file, or the
//! declared defaults).
//!
//! ```toml
//! [params.l2]
//! type = "float"
//! default = 1.0
//! description = "the L2 penalty"
//! range = [0.0, 100.0]
//!
//! [[steps]]
//! name = "model"
//! kind = "train_logistic"
//! l2 = "${l2}"                      # the whole value: a float
//! ```
//!
//! References are replaced before a step is built, so a step's parameters,
//! and so its cache key, hold the values of the parameters it reads and of
//! no other: changing a parameter runs again only the steps that read it
//! and what follows them. A string that is one reference takes the
//! parameter's typed value; a reference inside a longer string
//! (`predicate = "age >= ${min_age}"`) is replaced by the value's text.
//! `$${` writes a literal `${`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use toml::{Spanned, Table, Value};

use crate::error::{Error, Result};

/// The type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A 64-bit integer.
    Int,
    /// A 64-bit float (an integer is accepted).
    Float,
    /// `true` or `false`.
    Bool,
    /// Text.
    String,
}

impl ParamType {
    /// "an int", "a float", as messages say it.
    fn with_article(self) -> String {
        match self {
            ParamType::Int => format!("an {self}"),
            _ => format!("a {self}"),
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::String => "string",
        })
    }
}

/// One `[params.NAME]` table.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamDecl {
    #[serde(rename = "type")]
    kind: ParamType,
    /// The value when a run gives none; without one the parameter is required.
    default: Option<Value>,
    /// What the parameter means; errors about it quote it.
    description: Option<String>,
    /// The only values accepted.
    allowed: Option<Vec<Value>>,
    /// Inclusive bounds, for numbers.
    range: Option<[f64; 2]>,
}

/// Values a run gives a spec's parameters: `name=value` texts (from the
/// command line, parsed by the declared type) or typed TOML values (from a
/// params file). A name given twice takes the later value.
#[derive(Clone, Debug, Default)]
pub struct ParamValues {
    given: Vec<(String, Given)>,
}

#[derive(Clone, Debug)]
enum Given {
    Text(String),
    Typed(Value),
}

impl ParamValues {
    /// No values: every parameter takes its default.
    pub fn new() -> ParamValues {
        ParamValues::default()
    }

    /// `name=value` as written on the command line.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `--param` when there is no `=`.
    pub fn assignment(mut self, text: &str) -> Result<ParamValues> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| Error::InvalidParameter {
                step: "--param".into(),
                message: format!("'{text}' is not NAME=VALUE"),
            })?;
        self.given
            .push((name.trim().to_string(), Given::Text(value.to_string())));
        Ok(self)
    }

    /// The names given values, in order (a name given twice, twice).
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.given.iter().map(|(name, _)| name.as_str())
    }

    /// `name` set to a typed value.
    pub fn value(mut self, name: &str, value: impl Into<Value>) -> ParamValues {
        self.given
            .push((name.to_string(), Given::Typed(value.into())));
        self
    }

    /// Every `name = value` of a params file (TOML), in order.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Spec`] naming
    /// its line when it is not TOML.
    pub fn file(mut self, path: &Path) -> Result<ParamValues> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::io(path, format!("cannot read the params file: {e}")).caused_by(e)
        })?;
        let table: Table = super::spec::read_toml(&text, path)?;
        self.given
            .extend(table.into_iter().map(|(k, v)| (k, Given::Typed(v))));
        Ok(self)
    }
}

/// The parameters a spec declares, with the line of each declaration.
pub(crate) struct Declared<'a> {
    pub(crate) params: BTreeMap<String, Spanned<ParamDecl>>,
    pub(crate) text: &'a str,
    pub(crate) file: &'a Path,
}

/// Resolved parameter values, by name.
pub(crate) type Resolved = BTreeMap<String, Value>;

impl Declared<'_> {
    /// Every declared parameter's value for this run: the given one, else
    /// the default.
    ///
    /// # Errors
    /// [`Error::Spec`] naming the parameter (and the line of its
    /// declaration) for an unknown name, a value of the wrong type or
    /// outside its allowed values or range, or a required one not given.
    pub(crate) fn resolve(&self, values: &ParamValues) -> Result<Resolved> {
        for (name, decl) in &self.params {
            let bare = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !bare {
                return Err(self.error(
                    Some(decl),
                    format!("parameter '{name}': a name is letters, digits and '_', not starting with a digit"),
                ));
            }
        }
        let mut resolved = Resolved::new();
        for (name, given) in &values.given {
            let Some(decl) = self.params.get(name) else {
                return Err(self.error(
                    None,
                    format!("unknown parameter '{name}'; {}", self.known()),
                ));
            };
            let value = match given {
                Given::Text(text) => parse_text(decl.get_ref().kind, text),
                Given::Typed(value) => typed(decl.get_ref().kind, value.clone()),
            }
            .ok_or_else(|| {
                self.error(
                    Some(decl),
                    format!(
                        "parameter '{name}' takes {}; '{}' is not one",
                        decl.get_ref().kind.with_article(),
                        given_text(given)
                    ),
                )
            })?;
            resolved.insert(name.clone(), value);
        }
        for (name, decl) in &self.params {
            if resolved.contains_key(name) {
                continue;
            }
            let default = decl.get_ref().default.clone().ok_or_else(|| {
                self.error(
                    Some(decl),
                    format!(
                        "{} has no default; give it with --param {name}=VALUE",
                        described(name, decl.get_ref())
                    ),
                )
            })?;
            let value = typed(decl.get_ref().kind, default).ok_or_else(|| {
                self.error(
                    Some(decl),
                    format!(
                        "parameter '{name}': its default is not {}",
                        decl.get_ref().kind.with_article()
                    ),
                )
            })?;
            resolved.insert(name.clone(), value);
        }
        for (name, value) in &resolved {
            self.check_bounds(name, &self.params[name], value)?;
        }
        Ok(resolved)
    }

    /// Whether every parameter has a default, so that the spec builds
    /// without any value given.
    pub(crate) fn all_have_defaults(&self) -> bool {
        self.params.values().all(|d| d.get_ref().default.is_some())
    }

    fn check_bounds(&self, name: &str, decl: &Spanned<ParamDecl>, value: &Value) -> Result<()> {
        let d = decl.get_ref();
        if let Some(allowed) = &d.allowed
            && !allowed
                .iter()
                .any(|a| typed(d.kind, a.clone()).as_ref() == Some(value))
        {
            let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            return Err(self.error(
                Some(decl),
                format!(
                    "parameter '{name}' is {value}; allowed: {}",
                    list.join(", ")
                ),
            ));
        }
        if let (Some([low, high]), Some(v)) = (d.range, as_number(value))
            && !(low..=high).contains(&v)
        {
            return Err(self.error(
                Some(decl),
                format!("parameter '{name}' is {value}, outside its range [{low}, {high}]"),
            ));
        }
        Ok(())
    }

    fn known(&self) -> String {
        if self.params.is_empty() {
            return "the spec declares no parameters (a [params] table)".into();
        }
        let names: Vec<&str> = self.params.keys().map(String::as_str).collect();
        format!("the spec declares: {}", names.join(", "))
    }

    fn error(&self, at: Option<&Spanned<ParamDecl>>, message: String) -> Error {
        Error::Spec {
            file: self.file.to_path_buf(),
            line: at.map(|d| super::spec::line_of(self.text, d.span().start)),
            message,
        }
    }
}

/// "parameter 'l2' (the L2 penalty)", as errors name a parameter.
fn described(name: &str, decl: &ParamDecl) -> String {
    match &decl.description {
        Some(what) => format!("parameter '{name}' ({what})"),
        None => format!("parameter '{name}'"),
    }
}

/// A step's table with every `${name}` replaced by its value, and the
/// parameters it read, `(name, value)` in name order.
///
/// # Errors
/// The name of a reference to an undeclared parameter, or of one left open.
pub(crate) fn substitute(
    table: Table,
    params: &Resolved,
) -> std::result::Result<(Table, Vec<(String, String)>), String> {
    let mut read = Resolved::new();
    let table = substitute_table(table, params, &mut read)?;
    Ok((table, record(&read)))
}

fn substitute_table(
    table: Table,
    params: &Resolved,
    read: &mut Resolved,
) -> std::result::Result<Table, String> {
    table
        .into_iter()
        .map(|(key, value)| Ok((key, substitute_value(value, params, read)?)))
        .collect()
}

fn substitute_value(
    value: Value,
    params: &Resolved,
    read: &mut Resolved,
) -> std::result::Result<Value, String> {
    Ok(match value {
        Value::String(text) => substitute_text(&text, params, read)?,
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| substitute_value(v, params, read))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Value::Table(table) => Value::Table(substitute_table(table, params, read)?),
        other => other,
    })
}

fn substitute_text(
    text: &str,
    params: &Resolved,
    read: &mut Resolved,
) -> std::result::Result<Value, String> {
    let mut lookup = |name: &str| {
        let value = lookup(name, params)?;
        read.insert(name.trim().to_string(), value.clone());
        Ok::<_, String>(value.clone())
    };
    if let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
        && !name.contains('}')
    {
        return lookup(name);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(reference) = after.strip_prefix("${") {
            let end = reference
                .find('}')
                .ok_or_else(|| format!("'${{' without a closing '}}' in \"{text}\""))?;
            out.push_str(&value_text(&lookup(&reference[..end])?));
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn lookup<'p>(name: &str, params: &'p Resolved) -> std::result::Result<&'p Value, String> {
    params.get(name.trim()).ok_or_else(|| {
        let names: Vec<&str> = params.keys().map(String::as_str).collect();
        match names.is_empty() {
            true => format!("'${{{name}}}' refers to a parameter, and the spec declares none"),
            false => format!(
                "'${{{name}}}' refers to no declared parameter; the spec declares: {}",
                names.join(", ")
            ),
        }
    })
}

/// A value as it reads inside an expression or a path.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn given_text(given: &Given) -> String {
    match given {
        Given::Text(text) => text.clone(),
        Given::Typed(value) => value.to_string(),
    }
}

fn parse_text(kind: ParamType, text: &str) -> Option<Value> {
    let text = text.trim();
    match kind {
        ParamType::Int => text.parse::<i64>().ok().map(Value::Integer),
        ParamType::Float => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Value::Float),
        ParamType::Bool => text.parse::<bool>().ok().map(Value::Boolean),
        ParamType::String => Some(Value::String(text.to_string())),
    }
}

/// `value` as a `kind`, when it is one (an integer is a float too).
fn typed(kind: ParamType, value: Value) -> Option<Value> {
    match (kind, value) {
        (ParamType::Int, v @ Value::Integer(_)) => Some(v),
        (ParamType::Float, Value::Integer(i)) => Some(Value::Float(i as f64)),
        (ParamType::Float, v @ Value::Float(_)) => Some(v),
        (ParamType::Bool, v @ Value::Boolean(_)) => Some(v),
        (ParamType::String, v @ Value::String(_)) => Some(v),
        _ => None,
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// The resolved values as the run store records them: one `name = value`
/// line each, in name order.
pub(crate) fn record(params: &Resolved) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(name, value)| (name.clone(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(pairs: &[(&str, Value)]) -> Resolved {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn whole_references_keep_their_type_and_inner_ones_become_text() {
        let params = resolved(&[
            ("l2", Value::Float(0.5)),
            ("col", Value::String("age".into())),
        ]);
        let text = |t: &str| substitute_text(t, &params, &mut Resolved::new());
        assert_eq!(text("${l2}"), Ok(Value::Float(0.5)));
        assert_eq!(
            text("${col} > ${l2} and $$x $${keep}"),
            Ok(Value::String("age > 0.5 and $$x ${keep}".into()))
        );
        let err = text("x > ${nope}").unwrap_err();
        assert!(
            err.contains("'${nope}'") && err.contains("col, l2"),
            "{err}"
        );
        assert!(text("${l2").unwrap_err().contains("closing"));
        let table: Table = "a = \"${l2}\"\nb = [\"${col}\", 1]\nc = \"plain\""
            .parse()
            .unwrap();
        let (_, read) = substitute(table, &params).unwrap();
        assert_eq!(
            read,
            [
                ("col".into(), "\"age\"".into()),
                ("l2".into(), "0.5".into())
            ]
        );
    }

    #[test]
    fn text_values_are_parsed_by_the_declared_type() {
        assert_eq!(parse_text(ParamType::Int, "7"), Some(Value::Integer(7)));
        assert_eq!(parse_text(ParamType::Int, "7.5"), None);
        assert_eq!(parse_text(ParamType::Float, "7"), Some(Value::Float(7.0)));
        assert_eq!(parse_text(ParamType::Float, "nan"), None);
        assert_eq!(parse_text(ParamType::Bool, "yes"), None);
        assert_eq!(
            typed(ParamType::Float, Value::Integer(2)),
            Some(Value::Float(2.0))
        );
        assert_eq!(typed(ParamType::Int, Value::Float(2.0)), None);
    }
}

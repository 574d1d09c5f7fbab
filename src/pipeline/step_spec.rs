//! [`StepSpec`]: one `[[steps]]` table of a spec file as it is read, and
//! [`FromSpec`], the spec form each built-in step implements beside it.
//!
//! Every key a step reads is removed from its table, so that the loader can
//! report the ones left over; every error names the file, the step's line and
//! the key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::{Table, Value};

use super::step::Step;
use crate::data::files::FileFormat;
use crate::error::{Error, Result};
use crate::ir::{Expr, parse_expr};

/// A step's input bindings: (port, `step.output` reference) pairs.
pub(crate) type Bindings = Vec<(String, String)>;

/// A step kind that spec files can use: how its step is built from its table.
pub(crate) trait FromSpec: Step + Sized + 'static {
    /// The step `spec` describes, reading (and so removing) its keys.
    ///
    /// # Errors
    /// [`Error::Spec`] naming the key that is missing or has a wrong value.
    fn from_spec(spec: &mut StepSpec) -> Result<Self>;
}

/// Build a `T` from its table, as the spec loader's registry holds it.
pub(crate) fn build<T: FromSpec>(spec: &mut StepSpec) -> Result<Arc<dyn Step>> {
    Ok(Arc::new(T::from_spec(spec)?))
}

/// One `[[steps]]` table being read; every read key is removed so leftovers can be reported.
pub(crate) struct StepSpec<'a> {
    table: Table,
    file: &'a Path,
    line: usize,
    base: &'a Path,
}

impl<'a> StepSpec<'a> {
    /// The table of the step at `line` of `file`, its relative paths under `base`.
    pub(crate) fn new(table: Table, file: &'a Path, line: usize, base: &'a Path) -> Self {
        StepSpec {
            table,
            file,
            line,
            base,
        }
    }

    /// A key no read took, if any is left.
    pub(crate) fn unread_key(&self) -> Option<&str> {
        self.table.keys().next().map(String::as_str)
    }

    /// An error at this step's line.
    pub(crate) fn error(&self, message: String) -> Error {
        Error::Spec {
            file: self.file.to_path_buf(),
            line: Some(self.line),
            message,
        }
    }

    /// The raw value of `key`, if given.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    /// The raw value of `key`, which must be given.
    pub(crate) fn required(&mut self, key: &str) -> Result<Value> {
        self.take(key)
            .ok_or_else(|| self.error(format!("missing key '{key}'")))
    }

    /// The error for `key` holding `got` where `want` was expected.
    pub(crate) fn wrong(&self, key: &str, want: &str, got: &Value) -> Error {
        self.error(format!(
            "key '{key}' must be {want}, found {} `{got}`",
            got.type_str()
        ))
    }

    /// The string `key`, which must be given.
    pub(crate) fn string(&mut self, key: &str) -> Result<String> {
        match self.required(key)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong(key, "a string", &other)),
        }
    }

    /// The string `key`, if given.
    pub(crate) fn opt_string(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(key, "a string", &other)),
        }
    }

    /// The list of strings `key`, which must be given.
    pub(crate) fn strings(&mut self, key: &str) -> Result<Vec<String>> {
        match self.required(key)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(self.wrong(key, "a list of strings", &other)),
                })
                .collect(),
            other => Err(self.wrong(key, "a list of strings", &other)),
        }
    }

    /// The list of strings `key`; empty if not given.
    pub(crate) fn opt_strings(&mut self, key: &str) -> Result<Vec<String>> {
        if self.table.contains_key(key) {
            self.strings(key)
        } else {
            Ok(Vec::new())
        }
    }

    /// The non-negative integer `key`, `default` if not given.
    pub(crate) fn count(&mut self, key: &str, default: usize) -> Result<usize> {
        let value = self.integer(key, default as i64)?;
        usize::try_from(value).map_err(|_| {
            self.error(format!(
                "key '{key}' must be a non-negative integer, got {value}"
            ))
        })
    }

    /// The number `key` (an integer is taken as a float); `default` if not
    /// given, and without a default the key must be given.
    pub(crate) fn number(&mut self, key: &str, default: Option<f64>) -> Result<f64> {
        match (self.take(key), default) {
            (Some(Value::Float(x)), _) => Ok(x),
            (Some(Value::Integer(i)), _) => Ok(i as f64),
            (Some(other), _) => Err(self.wrong(key, "a number", &other)),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.error(format!("missing key '{key}'"))),
        }
    }

    /// The integer `key`, `default` if not given.
    pub(crate) fn integer(&mut self, key: &str, default: i64) -> Result<i64> {
        match self.take(key) {
            Some(Value::Integer(i)) => Ok(i),
            Some(other) => Err(self.wrong(key, "an integer", &other)),
            None => Ok(default),
        }
    }

    /// The boolean `key`, `default` if not given.
    pub(crate) fn boolean(&mut self, key: &str, default: bool) -> Result<bool> {
        match self.take(key) {
            Some(Value::Boolean(b)) => Ok(b),
            Some(other) => Err(self.wrong(key, "true or false", &other)),
            None => Ok(default),
        }
    }

    /// A table of `name = "string"` pairs, in file order.
    pub(crate) fn string_map(&mut self, key: &str) -> Result<Vec<(String, String)>> {
        match self.required(key)? {
            Value::Table(t) => t
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    other => Err(self.wrong(&format!("{key}.{k}"), "a string", &other)),
                })
                .collect(),
            other => Err(self.wrong(key, "a table of name = \"value\" pairs", &other)),
        }
    }

    /// `text`, the value of `key`, parsed as an expression.
    pub(crate) fn expr(&self, key: &str, text: &str) -> Result<Expr> {
        parse_expr(text).map_err(|e| self.error(format!("key '{key}': {e}")))
    }

    /// The path `key`, relative to the spec file's directory unless absolute.
    pub(crate) fn path(&mut self, key: &str) -> Result<PathBuf> {
        let p = PathBuf::from(self.string(key)?);
        Ok(if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        })
    }

    /// The file format named by `format`, if given.
    pub(crate) fn format(&mut self) -> Result<Option<FileFormat>> {
        match self.opt_string("format")? {
            None => Ok(None),
            Some(f) => FileFormat::parse(&f).map(Some).ok_or_else(|| {
                self.error(format!(
                    "unknown format '{f}'; use parquet, arrow, arrows or csv"
                ))
            }),
        }
    }

    /// The string `key` (or `default`) parsed by `parse`; `choices` lists the
    /// accepted values for the error.
    pub(crate) fn choice<T>(
        &mut self,
        key: &str,
        default: Option<&str>,
        parse: impl Fn(&str) -> Option<T>,
        choices: &str,
    ) -> Result<T> {
        let value = match (self.opt_string(key)?, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d.to_string(),
            (None, None) => return Err(self.error(format!("missing key '{key}' ({choices})"))),
        };
        parse(&value).ok_or_else(|| {
            self.error(format!(
                "key '{key}': unknown value '{value}'; use {choices}"
            ))
        })
    }

    /// Input bindings: `input = "ref"` for the step's first port, or `inputs = { port = "ref" }`.
    pub(crate) fn bindings(&mut self, step: &dyn Step) -> Result<Bindings> {
        let single = self.opt_string("input")?;
        let many = if self.table.contains_key("inputs") {
            self.string_map("inputs")?
        } else {
            Vec::new()
        };
        let mut out = many;
        if let Some(reference) = single {
            let Some(first) = step.inputs().first() else {
                return Err(self.error(format!(
                    "key 'input': a '{}' step takes no inputs",
                    step.kind()
                )));
            };
            out.insert(0, (first.to_string(), reference));
        }
        Ok(out)
    }
}

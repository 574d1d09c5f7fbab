//! Pipelines described in TOML spec files (see `docs/spec-format.md`).
//!
//! ```toml
//! name = "prep"
//!
//! [[steps]]
//! name = "raw"
//! kind = "read"
//! path = "data.csv"          # relative to the spec file
//!
//! [[steps]]
//! name = "stats"
//! kind = "fit_stats"
//! input = "raw"              # the step's only input
//! columns = ["x", "y"]
//!
//! [[steps]]
//! name = "scaled"
//! kind = "scale"
//! inputs = { data = "raw", stats = "stats" }
//! method = "zscore"
//! ```
//!
//! Every error names the file, the line of the step and the key at fault.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::{Spanned, Table, Value};

use super::graph::Pipeline;
use super::io::{Read, Write};
use super::metrics::Evaluate;
use super::models::{Score, Task, TrainLinear, TrainLogistic, TrainMlp};
use super::prep::{
    Derive, Encode, EncodeMethod, FillNull, FillValue, Filter, FitCategories, FitStats, Rename,
    Scale, ScaleMethod, Select, Split, UnknownCategory,
};
use super::step::Step;
use crate::backend::DeviceChoice;
use crate::data::files::{DEFAULT_BATCH_ROWS, FileFormat};
use crate::error::{Error, Result};
use crate::ir::{Expr, Scalar, parse_expr};
use crate::ml::logistic::LogisticConfig;
use crate::ml::mlp::{Activation, MlpConfig};

/// A step's input bindings: (port, `step.output` reference) pairs.
type Bindings = Vec<(String, String)>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    #[serde(default)]
    steps: Vec<Spanned<Table>>,
}

/// The step kinds a spec file may use.
pub const STEP_KINDS: [&str; 17] = [
    "read",
    "write",
    "select",
    "rename",
    "filter",
    "derive",
    "fit_stats",
    "scale",
    "fill_null",
    "fit_categories",
    "encode",
    "split",
    "train_linear",
    "train_logistic",
    "train_mlp",
    "score",
    "evaluate",
];

/// Load a pipeline from a spec file.
///
/// # Errors
/// [`Error::Spec`] with the file, line and key for malformed TOML, unknown
/// keys or kinds, wrong value types and unparsable expressions.
pub fn load(path: &Path) -> Result<Pipeline> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(path, format!("cannot read the spec file: {e}")))?;
    parse(&text, path)
}

/// Parse spec text; `path` names the file in errors and anchors relative paths.
///
/// # Errors
/// See [`load`].
pub fn parse(text: &str, path: &Path) -> Result<Pipeline> {
    let spec: SpecFile = toml::from_str(text).map_err(|e| Error::Spec {
        file: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_string(),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut pipeline = Pipeline::new(spec.name);
    for step in spec.steps {
        let line = line_of(text, step.span().start);
        let mut reader = StepTable {
            table: step.into_inner(),
            file: path,
            line,
            base: &base,
        };
        let name = reader.string("name")?;
        let kind = reader.string("kind")?;
        let reuse = reader.boolean("reuse", true)?;
        let device = reader
            .opt_string("device")?
            .map(|d| {
                d.parse::<DeviceChoice>()
                    .map_err(|e| reader.error(format!("key 'device': {e}")))
            })
            .transpose()?;
        let (step, bindings) = reader.build(&name, &kind)?;
        let mut handle = pipeline.add_shared(name, step).reuse(reuse);
        if let Some(device) = device {
            handle = handle.device(device);
        }
        for (port, reference) in bindings {
            handle = handle.input(&port, &reference);
        }
    }
    Ok(pipeline)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// One `[[steps]]` table being read; every read key is removed so leftovers can be reported.
struct StepTable<'a> {
    table: Table,
    file: &'a Path,
    line: usize,
    base: &'a Path,
}

impl StepTable<'_> {
    fn error(&self, message: String) -> Error {
        Error::Spec {
            file: self.file.to_path_buf(),
            line: Some(self.line),
            message,
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    fn required(&mut self, key: &str) -> Result<Value> {
        self.take(key)
            .ok_or_else(|| self.error(format!("missing key '{key}'")))
    }

    fn wrong(&self, key: &str, want: &str, got: &Value) -> Error {
        self.error(format!(
            "key '{key}' must be {want}, found {} `{got}`",
            got.type_str()
        ))
    }

    fn string(&mut self, key: &str) -> Result<String> {
        match self.required(key)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong(key, "a string", &other)),
        }
    }

    fn opt_string(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(key, "a string", &other)),
        }
    }

    fn strings(&mut self, key: &str) -> Result<Vec<String>> {
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

    fn opt_strings(&mut self, key: &str) -> Result<Vec<String>> {
        if self.table.contains_key(key) {
            self.strings(key)
        } else {
            Ok(Vec::new())
        }
    }

    fn count(&mut self, key: &str, default: usize) -> Result<usize> {
        let value = self.integer(key, default as i64)?;
        usize::try_from(value).map_err(|_| {
            self.error(format!(
                "key '{key}' must be a non-negative integer, got {value}"
            ))
        })
    }

    fn number(&mut self, key: &str, default: Option<f64>) -> Result<f64> {
        match (self.take(key), default) {
            (Some(Value::Float(x)), _) => Ok(x),
            (Some(Value::Integer(i)), _) => Ok(i as f64),
            (Some(other), _) => Err(self.wrong(key, "a number", &other)),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.error(format!("missing key '{key}'"))),
        }
    }

    fn integer(&mut self, key: &str, default: i64) -> Result<i64> {
        match self.take(key) {
            Some(Value::Integer(i)) => Ok(i),
            Some(other) => Err(self.wrong(key, "an integer", &other)),
            None => Ok(default),
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> Result<bool> {
        match self.take(key) {
            Some(Value::Boolean(b)) => Ok(b),
            Some(other) => Err(self.wrong(key, "true or false", &other)),
            None => Ok(default),
        }
    }

    /// A table of `name = "string"` pairs, in file order.
    fn string_map(&mut self, key: &str) -> Result<Vec<(String, String)>> {
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

    fn expr(&self, key: &str, text: &str) -> Result<Expr> {
        parse_expr(text).map_err(|e| self.error(format!("key '{key}': {e}")))
    }

    fn path(&mut self, key: &str) -> Result<PathBuf> {
        let p = PathBuf::from(self.string(key)?);
        Ok(if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        })
    }

    fn format(&mut self) -> Result<Option<FileFormat>> {
        match self.opt_string("format")? {
            None => Ok(None),
            Some(f) => FileFormat::parse(&f).map(Some).ok_or_else(|| {
                self.error(format!(
                    "unknown format '{f}'; use parquet, arrow, arrows or csv"
                ))
            }),
        }
    }

    fn choice<T>(
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
    fn bindings(&mut self, step: &dyn Step) -> Result<Bindings> {
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

    /// The step a table describes, with its input bindings (port, reference).
    fn build(&mut self, name: &str, kind: &str) -> Result<(Arc<dyn Step>, Bindings)> {
        let step: Arc<dyn Step> = match kind {
            "read" => {
                let mut r = Read::new(self.path("path")?);
                if let Some(f) = self.format()? {
                    r = r.format(f);
                }
                if let Some(label) = self.opt_string("version")? {
                    r = r.version(label);
                }
                let rows = self.integer("batch_rows", DEFAULT_BATCH_ROWS as i64)?;
                Arc::new(
                    r.batch_rows(
                        usize::try_from(rows)
                            .map_err(|_| self.error("key 'batch_rows' must be positive".into()))?,
                    ),
                )
            }
            "write" => {
                let mut w = Write::new(self.path("path")?);
                if let Some(f) = self.format()? {
                    w = w.format(f);
                }
                Arc::new(w)
            }
            "select" => Arc::new(Select::new(self.strings("columns")?)),
            "rename" => Arc::new(Rename::new(self.string_map("columns")?)),
            "filter" => {
                let text = self.string("predicate")?;
                Arc::new(Filter::new(self.expr("predicate", &text)?))
            }
            "derive" => {
                let columns = self.string_map("columns")?;
                let exprs = columns
                    .into_iter()
                    .map(|(n, text)| Ok((n.clone(), self.expr(&format!("columns.{n}"), &text)?)))
                    .collect::<Result<Vec<_>>>()?;
                Arc::new(Derive::new(exprs))
            }
            "fit_stats" => {
                let s = FitStats::new(self.strings("columns")?);
                Arc::new(if self.boolean("quantiles", false)? {
                    s.with_quantiles()
                } else {
                    s
                })
            }
            "scale" => Arc::new(Scale::new(self.choice(
                "method",
                Some("zscore"),
                ScaleMethod::parse,
                "zscore, minmax or robust",
            )?)),
            "fill_null" => {
                let columns = self.strings("columns")?;
                let value = match self.take("value") {
                    Some(Value::String(s)) if s == "mean" => FillValue::Mean,
                    Some(Value::String(s)) => FillValue::Constant(Scalar::Str(s)),
                    Some(Value::Float(x)) => FillValue::Constant(Scalar::Float(x)),
                    Some(Value::Integer(i)) => FillValue::Constant(Scalar::Int(i)),
                    Some(Value::Boolean(b)) => FillValue::Constant(Scalar::Bool(b)),
                    Some(other) => {
                        return Err(self.wrong(
                            "value",
                            "a number, string, boolean or \"mean\"",
                            &other,
                        ));
                    }
                    None => {
                        return Err(self.error(
                            "missing key 'value' (a constant, or \"mean\" with a stats input)"
                                .into(),
                        ));
                    }
                };
                Arc::new(FillNull::new(columns, value))
            }
            "fit_categories" => Arc::new(FitCategories::new(self.strings("columns")?)),
            "encode" => {
                let method = self.choice(
                    "method",
                    Some("onehot"),
                    |m| match m {
                        "onehot" | "one_hot" => Some(EncodeMethod::OneHot),
                        "index" => Some(EncodeMethod::Index),
                        _ => None,
                    },
                    "onehot or index",
                )?;
                let unknown = self.choice(
                    "unknown",
                    Some("ignore"),
                    |m| match m {
                        "ignore" => Some(UnknownCategory::Ignore),
                        "error" => Some(UnknownCategory::Error),
                        _ => None,
                    },
                    "ignore or error",
                )?;
                Arc::new(Encode::new(method, unknown))
            }
            "split" => {
                let fraction = self.number("test_fraction", Some(0.2))?;
                let seed = self.integer("seed", 0)?;
                Arc::new(Split::new(fraction, seed as u64))
            }
            "train_linear" => {
                let label = self.string("label")?;
                let features = self.opt_strings("features")?;
                Arc::new(TrainLinear::new(
                    features,
                    label,
                    self.number("l2", Some(0.0))?,
                ))
            }
            "train_logistic" => {
                let label = self.string("label")?;
                let features = self.opt_strings("features")?;
                let defaults = LogisticConfig::default();
                let config = LogisticConfig {
                    l2: self.number("l2", Some(defaults.l2))?,
                    tolerance: self.number("tolerance", Some(defaults.tolerance))?,
                    max_iterations: self.count("max_iterations", defaults.max_iterations)?,
                };
                Arc::new(TrainLogistic::new(features, label, config))
            }
            "train_mlp" => {
                let label = self.string("label")?;
                let features = self.opt_strings("features")?;
                let task = self.choice(
                    "task",
                    Some("classification"),
                    |t| match t {
                        "classification" => Some(Task::Classification),
                        "regression" => Some(Task::Regression),
                        _ => None,
                    },
                    "classification or regression",
                )?;
                let d = MlpConfig::default();
                let hidden = match self.take("hidden") {
                    None => d.hidden.clone(),
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .map(|v| match v {
                            Value::Integer(i) if i > 0 => Ok(i as usize),
                            other => {
                                Err(self.wrong("hidden", "a list of positive integers", &other))
                            }
                        })
                        .collect::<Result<_>>()?,
                    Some(other) => {
                        return Err(self.wrong("hidden", "a list of positive integers", &other));
                    }
                };
                let activation = self.choice(
                    "activation",
                    Some("relu"),
                    |a| match a {
                        "relu" => Some(Activation::Relu),
                        "tanh" => Some(Activation::Tanh),
                        _ => None,
                    },
                    "relu or tanh",
                )?;
                let config = MlpConfig {
                    hidden,
                    activation,
                    epochs: self.count("epochs", d.epochs)?,
                    batch_size: self.count("batch_size", d.batch_size)?,
                    learning_rate: self.number("learning_rate", Some(d.learning_rate))?,
                    l2: self.number("l2", Some(d.l2))?,
                    seed: self.integer("seed", d.seed as i64)? as u64,
                };
                Arc::new(TrainMlp::new(features, label, task, config))
            }
            "score" => Arc::new(Score::new(self.opt_strings("keep")?)),
            "evaluate" => {
                let e = Evaluate::new();
                Arc::new(match self.opt_string("label")? {
                    Some(l) => e.label(l),
                    None => e,
                })
            }
            other => {
                return Err(self.error(format!(
                    "step '{name}': unknown kind '{other}'; known kinds: {}",
                    STEP_KINDS.join(", ")
                )));
            }
        };
        let bindings = self.bindings(step.as_ref())?;
        if let Some(key) = self.table.keys().next() {
            return Err(self.error(format!(
                "step '{name}': unknown key '{key}' for a '{kind}' step"
            )));
        }
        Ok((step, bindings))
    }
}

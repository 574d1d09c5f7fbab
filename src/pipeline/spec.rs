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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use toml::{Spanned, Table};

use super::clone::Origin;
use super::graph::Pipeline;
use super::params::{Declared, ParamDecl, ParamValues, Resolved, substitute};
use super::step::Step;
use super::step_spec::{Bindings, StepSpec, build};
use super::steps::{
    Derive, Encode, Evaluate, FillNull, Filter, FitCategories, FitStats, Read, Rename, Scale,
    Score, Select, Split, TrainLinear, TrainLogistic, TrainMlp, Write,
};
use super::sweep::{self, StepTable, SweepDecl};
use crate::backend::DeviceChoice;
use crate::error::{Error, Result};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    #[serde(default)]
    params: BTreeMap<String, Spanned<ParamDecl>>,
    #[serde(default)]
    steps: Vec<Spanned<Table>>,
    /// Alternatives to run side by side (see [`super::sweep`]).
    sweep: Option<Spanned<SweepDecl>>,
    /// Where a clone came from (`fuseflow clone`): checked here, read by
    /// [`origin_of`].
    #[serde(default, rename = "origin")]
    _origin: Option<Origin>,
}

/// The `[origin]` of spec `text`, when it is a clone.
pub fn origin_of(text: &str) -> Option<Origin> {
    let spec: toml::Table = toml::from_str(text).ok()?;
    spec.get("origin")?.clone().try_into().ok()
}

/// How a step kind is built from its `[[steps]]` table.
type BuildStep = fn(&mut StepSpec) -> Result<Arc<dyn Step>>;

/// The step kinds a spec file may use, each with the function that builds
/// its step (the step's [`FromSpec`](super::step_spec::FromSpec) form); the
/// one list the loader reads, checked against `docs/spec-format.md` and each
/// step's [`Step::kind`] by this module's tests.
const STEP_KINDS: &[(&str, BuildStep)] = &[
    ("read", build::<Read>),
    ("write", build::<Write>),
    ("select", build::<Select>),
    ("rename", build::<Rename>),
    ("filter", build::<Filter>),
    ("derive", build::<Derive>),
    ("fit_stats", build::<FitStats>),
    ("scale", build::<Scale>),
    ("fill_null", build::<FillNull>),
    ("fit_categories", build::<FitCategories>),
    ("encode", build::<Encode>),
    ("split", build::<Split>),
    ("train_linear", build::<TrainLinear>),
    ("train_logistic", build::<TrainLogistic>),
    ("train_mlp", build::<TrainMlp>),
    ("score", build::<Score>),
    ("evaluate", build::<Evaluate>),
];

/// The step kinds a spec file may use, in the order the docs list them.
pub fn step_kinds() -> impl Iterator<Item = &'static str> {
    STEP_KINDS.iter().map(|(kind, _)| *kind)
}

/// Load a pipeline from a spec file.
///
/// # Errors
/// [`Error::Spec`] with the file, line and key for malformed TOML, unknown
/// keys or kinds, wrong value types and unparsable expressions.
pub fn load(path: &Path) -> Result<Pipeline> {
    Ok(load_with(path, &ParamValues::new())?.0)
}

/// Load a pipeline from a spec file, its parameters given `values` (the
/// others take their defaults); also returns every parameter's value as
/// `(name, value)` pairs, the value as TOML writes it, for the run record.
///
/// # Errors
/// As [`load`], and [`Error::Spec`] naming the parameter for an unknown
/// name, a wrong type, a value out of bounds or a required one not given.
pub fn load_with(path: &Path, values: &ParamValues) -> Result<(Pipeline, Vec<(String, String)>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(path, format!("cannot read the spec file: {e}")).caused_by(e))?;
    parse_with(&text, path, values)
}

/// Parse spec text; `path` names the file in errors and anchors relative paths.
///
/// # Errors
/// See [`load`].
pub fn parse(text: &str, path: &Path) -> Result<Pipeline> {
    Ok(parse_with(text, path, &ParamValues::new())?.0)
}

/// Parse spec text with parameter `values`, as [`load_with`] does. A spec
/// with a `[sweep]` compiles into one pipeline of all its variants (see
/// [`Pipeline::variants`]); the parameters returned are then those every
/// variant shares (the swept ones left out).
///
/// # Errors
/// See [`load_with`], and [`Error::Spec`] naming the sweep's line for a bad
/// sweep, or the variant whose steps do not build.
pub fn parse_with(
    text: &str,
    path: &Path,
    values: &ParamValues,
) -> Result<(Pipeline, Vec<(String, String)>)> {
    let spec: SpecFile = read_toml(text, path)?;
    let declared = Declared {
        params: spec.params,
        text,
        file: path,
    };
    let steps: Vec<(usize, Table)> = spec
        .steps
        .into_iter()
        .map(|s| (line_of(text, s.span().start), s.into_inner()))
        .collect();
    let Some(sweep) = spec.sweep else {
        let params = declared.resolve(values)?;
        let pipeline = build_pipeline(spec.name, substituted(&steps, &params, path)?, path)?;
        return Ok((pipeline, super::params::record(&params)));
    };
    let (sweep_line, sweep) = (line_of(text, sweep.span().start), sweep.into_inner());
    let invalid = |message: String| Error::Spec {
        file: path.to_path_buf(),
        line: Some(sweep_line),
        message,
    };
    if let Some(name) = values.names().find(|n| sweep.varies_param(n)) {
        return Err(invalid(format!(
            "parameter '{name}' is swept (sweep.params.{name}); drop --param {name} or its sweep entry"
        )));
    }
    let shared = std::cell::RefCell::new(None);
    let build = |swept: &[(String, toml::Value)], tables: &[(usize, Table)]| {
        let given = swept.iter().fold(values.clone(), |given, (name, value)| {
            given.value(name, value.clone())
        });
        let params = declared.resolve(&given)?;
        shared.borrow_mut().get_or_insert_with(|| {
            let mut params = params.clone();
            params.retain(|name, _| !sweep.varies_param(name));
            super::params::record(&params)
        });
        build_pipeline(spec.name.clone(), substituted(tables, &params, path)?, path)
    };
    let pipeline = sweep::compile(&spec.name, &sweep, &steps, &build, &invalid)?;
    Ok((pipeline, shared.into_inner().unwrap_or_default()))
}

/// Check spec `text` (read from `path`) as [`parse`] would, except that a
/// template whose parameters are not all given defaults is checked as far
/// as it can be without their values: its TOML and its declarations.
///
/// # Errors
/// As [`parse_with`].
pub fn check(text: &str, path: &Path) -> Result<()> {
    let spec: SpecFile = read_toml(text, path)?;
    let declared = Declared {
        params: spec.params,
        text,
        file: path,
    };
    if declared.all_have_defaults() {
        parse_with(text, path, &ParamValues::new())?;
    }
    Ok(())
}

/// Each of `steps` (line, table) with its parameter references replaced.
fn substituted(steps: &[(usize, Table)], params: &Resolved, path: &Path) -> Result<Vec<StepTable>> {
    steps
        .iter()
        .map(|(line, table)| {
            let (table, read) =
                substitute(table.clone(), params).map_err(|message| Error::Spec {
                    file: path.to_path_buf(),
                    line: Some(*line),
                    message,
                })?;
            Ok(StepTable {
                line: *line,
                table,
                read,
            })
        })
        .collect()
}

/// The pipeline of `steps`, built one by one.
fn build_pipeline(name: String, steps: Vec<StepTable>, path: &Path) -> Result<Pipeline> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut pipeline = Pipeline::new(name);
    for StepTable { line, table, read } in steps {
        let mut reader = StepSpec::new(table, path, line, &base);
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
        let (step, bindings) = build_step(&mut reader, &name, &kind)?;
        let mut handle = pipeline
            .add_shared(name, step)
            .reuse(reuse)
            .reading_params(read);
        if let Some(device) = device {
            handle = handle.device(device);
        }
        for (port, reference) in bindings {
            handle = handle.input(&port, &reference);
        }
    }
    Ok(pipeline)
}

/// TOML `text` read from `path` as a `T`.
///
/// # Errors
/// [`Error::Spec`] naming the file and the line at fault.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::Spec {
        file: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_string(),
    })
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The step `spec` describes as a `kind` step named `name`, with its input
/// bindings (port, reference); a key no step reads is an error.
fn build_step(spec: &mut StepSpec, name: &str, kind: &str) -> Result<(Arc<dyn Step>, Bindings)> {
    let Some((_, build)) = STEP_KINDS.iter().find(|(known, _)| *known == kind) else {
        return Err(spec.error(format!(
            "step '{name}': unknown kind '{kind}'; known kinds: {}",
            step_kinds().collect::<Vec<_>>().join(", ")
        )));
    };
    let step = build(spec)?;
    let bindings = spec.bindings(step.as_ref())?;
    if let Some(key) = spec.unread_key() {
        return Err(spec.error(format!(
            "step '{name}': unknown key '{key}' for a '{kind}' step"
        )));
    }
    Ok((step, bindings))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::{STEP_KINDS, StepSpec};

    /// The kinds `docs/spec-format.md` documents: the first cell, in
    /// backticks, of each table row in its "Step kinds" section.
    fn documented_kinds() -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/spec-format.md");
        let text = std::fs::read_to_string(&path).expect("docs/spec-format.md is readable");
        let section = text
            .split("\n## ")
            .find(|s| s.starts_with("Step kinds\n"))
            .expect("docs/spec-format.md has a '## Step kinds' section");
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| `")?.split_once('`'))
            .map(|(kind, _)| kind.to_string())
            .collect()
    }

    /// The keys a step of `kind` cannot do without, as a spec file gives them.
    fn required_keys(kind: &str) -> &'static str {
        match kind {
            "read" | "write" => r#"path = "data.csv""#,
            "select" | "fit_stats" | "fit_categories" => r#"columns = ["x"]"#,
            "rename" | "derive" => r#"columns = { x = "y" }"#,
            "filter" => r#"predicate = "x > 0""#,
            "fill_null" => "columns = [\"x\"]\nvalue = 0",
            "train_linear" | "train_logistic" | "train_mlp" => r#"label = "y""#,
            _ => "",
        }
    }

    #[test]
    fn the_docs_list_every_registered_kind_and_no_other() {
        let registered: Vec<&str> = STEP_KINDS.iter().map(|(kind, _)| *kind).collect();
        let unique: BTreeSet<&str> = registered.iter().copied().collect();
        assert_eq!(unique.len(), registered.len(), "a kind is registered twice");
        let documented = documented_kinds();
        let documented: BTreeSet<&str> = documented.iter().map(String::as_str).collect();
        assert_eq!(
            documented, unique,
            "docs/spec-format.md (left) and the registry in spec.rs (right) disagree"
        );
    }

    #[test]
    fn every_registered_kind_builds_a_step_of_that_kind() {
        let file = Path::new("kinds.toml");
        for (kind, build) in STEP_KINDS {
            let table = required_keys(kind)
                .parse()
                .expect("the required keys are TOML");
            let mut spec = StepSpec::new(table, file, 1, Path::new(""));
            let step = build(&mut spec).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(step.kind(), *kind, "the step registered as '{kind}'");
            assert_eq!(spec.unread_key(), None, "'{kind}' left a key unread");
        }
    }
}

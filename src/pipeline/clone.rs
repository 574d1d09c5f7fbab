//! Clones of spec files: a spec with some step keys or parameter defaults
//! changed, written as a new spec that records where it came from.
//!
//! `fuseflow clone prep.toml -o robust.toml --set scaled.method=robust
//! --set params.l2=10` reads `prep.toml`, sets key `method` of step
//! `scaled` and the default of parameter `l2`, names the pipeline after the
//! new file (`robust`, unless a name is given), and adds an `[origin]`
//! table: the source file, its pipeline, the hash of its text and the
//! changes. Comments and layout are kept (the file is edited, not
//! rewritten). Run the clone as any spec: it shares the cached outputs of
//! every step the changes leave alone.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Value, value};

use crate::error::{Error, Result};

/// Where a cloned spec came from: its `[origin]` table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The source spec file, as given to `clone`.
    pub spec: String,
    /// The source pipeline's name.
    pub pipeline: String,
    /// BLAKE3 of the source spec's text.
    pub spec_hash: String,
    /// The changes, as given (`step.key=value`, `params.name=value`).
    pub set: Vec<String>,
}

impl Origin {
    /// One line for people: "cloned from 'prep' (prep.toml, spec 1a2b3c4d5e6f) with scaled.method=robust".
    pub fn describe(&self) -> String {
        let short = &self.spec_hash[..self.spec_hash.len().min(12)];
        let with = match self.set.is_empty() {
            true => String::new(),
            false => format!(" with {}", self.set.join(", ")),
        };
        format!(
            "cloned from '{}' ({}, spec {short}){with}",
            self.pipeline, self.spec
        )
    }
}

/// The spec `text` (read from `source`) with each `step.key=value` or
/// `params.name=value` of `sets` applied, the pipeline named `name`, and an
/// `[origin]` table recording the source. A value is read as TOML (`10`,
/// `1.5`, `true`, `"text"`, `[1, 2]`), else taken as text (`robust`).
///
/// # Errors
/// [`Error::Spec`] naming `source` when it is not TOML or has no pipeline
/// name; [`Error::InvalidParameter`] naming `--set` for a change that is not
/// `PATH=VALUE`, or names a step or parameter the spec does not have.
pub fn clone_spec(text: &str, source: &Path, sets: &[String], name: &str) -> Result<String> {
    let not_a_spec = |message: String| Error::Spec {
        file: source.to_path_buf(),
        line: None,
        message,
    };
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| not_a_spec(format!("not TOML: {e}")))?;
    let pipeline = doc
        .get("name")
        .and_then(Item::as_str)
        .ok_or_else(|| not_a_spec("no pipeline `name`".into()))?
        .to_string();
    for set in sets {
        apply(&mut doc, set)?;
    }
    doc["name"] = value(name);
    let mut origin = toml_edit::Table::new();
    origin["spec"] = value(source.display().to_string());
    origin["pipeline"] = value(pipeline);
    origin["spec_hash"] = value(blake3::hash(text.as_bytes()).to_hex().to_string());
    origin["set"] = value(
        sets.iter()
            .map(String::as_str)
            .collect::<toml_edit::Array>(),
    );
    doc["origin"] = Item::Table(origin);
    Ok(doc.to_string())
}

/// Apply one `PATH=VALUE` change.
fn apply(doc: &mut DocumentMut, set: &str) -> Result<()> {
    let invalid = |message: String| Error::InvalidParameter {
        step: "--set".into(),
        message,
    };
    let (path, text) = set.split_once('=').ok_or_else(|| {
        invalid(format!(
            "'{set}' is not STEP.KEY=VALUE or params.NAME=VALUE"
        ))
    })?;
    let parsed: Value = text
        .trim()
        .parse()
        .unwrap_or_else(|_| Value::from(text.trim()));
    let mut parts = path.trim().split('.');
    let (Some(head), Some(key)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("'{path}' is not STEP.KEY or params.NAME")));
    };
    let rest: Vec<&str> = parts.collect();
    if head == "params" {
        if !rest.is_empty() {
            return Err(invalid(format!(
                "'{path}': set a parameter's default as params.{key}=VALUE"
            )));
        }
        let param = doc
            .get_mut("params")
            .and_then(Item::as_table_like_mut)
            .and_then(|params| params.get_mut(key))
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| invalid(format!("the spec has no parameter '{key}'")))?;
        param.insert("default", value(parsed));
        return Ok(());
    }
    let names = step_names(doc);
    let mut target = step_table(doc, head)
        .ok_or_else(|| invalid(format!("the spec has no step '{head}'; steps: {names}")))?;
    let mut key = key;
    for &next in &rest {
        target = target
            .get_mut(key)
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| invalid(format!("'{path}': '{key}' is not a table")))?;
        key = next;
    }
    target.insert(key, value(parsed));
    Ok(())
}

/// The `[[steps]]` table of the step named `name`.
fn step_table<'d>(
    doc: &'d mut DocumentMut,
    name: &str,
) -> Option<&'d mut dyn toml_edit::TableLike> {
    doc.get_mut("steps")?
        .as_array_of_tables_mut()?
        .iter_mut()
        .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
        .map(|t| t as &mut dyn toml_edit::TableLike)
}

fn step_names(doc: &DocumentMut) -> String {
    let names: Vec<&str> = doc
        .get("steps")
        .and_then(Item::as_array_of_tables)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|t| t.get("name")?.as_str())
                .collect()
        })
        .unwrap_or_default();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"# the source
name = "prep"

[params.l2]
type = "float"
default = 1.0

[[steps]]
name = "scaled"          # keep this comment
kind = "scale"
method = "zscore"
inputs = { data = "raw", stats = "stats" }
"#;

    #[test]
    fn a_clone_changes_what_it_is_told_keeps_the_rest_and_records_its_origin() {
        let sets = [
            "scaled.method=robust".to_string(),
            "params.l2=10".to_string(),
            "scaled.inputs.stats=other".to_string(),
        ];
        let text = clone_spec(SPEC, Path::new("prep.toml"), &sets, "robust").unwrap();
        assert!(text.contains("# keep this comment"), "{text}");
        assert!(text.contains("method = \"robust\""), "{text}");
        assert!(text.contains("default = 10"), "{text}");
        assert!(text.contains("stats = \"other\""), "{text}");
        assert!(text.contains("name = \"robust\""), "{text}");
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let origin: Origin = parsed["origin"].clone().try_into().unwrap();
        assert_eq!(origin.pipeline, "prep");
        assert_eq!(origin.set, sets);
        assert_eq!(
            origin.spec_hash,
            blake3::hash(SPEC.as_bytes()).to_hex().to_string()
        );
        assert!(
            origin
                .describe()
                .starts_with("cloned from 'prep' (prep.toml, spec ")
        );
    }

    #[test]
    fn unknown_steps_and_parameters_are_named() {
        let err = |set: &str| {
            clone_spec(SPEC, Path::new("prep.toml"), &[set.to_string()], "x")
                .unwrap_err()
                .to_string()
        };
        assert!(err("nope.method=x").contains("no step 'nope'; steps: scaled"));
        assert!(err("params.l3=1").contains("no parameter 'l3'"));
        assert!(err("scaled.method").contains("is not STEP.KEY=VALUE"));
        assert!(err("scaled=1").contains("is not STEP.KEY"));
        assert!(err("scaled.method.deep=1").contains("'method' is not a table"));
    }
}

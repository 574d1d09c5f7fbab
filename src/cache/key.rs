//! Cache keys: the one definition of what makes two step runs interchangeable.
//!
//! A [`CacheKey`] is BLAKE3 over a canonical encoding of [`KeyFields`]: every
//! string is written as its length (u64, little-endian) and its bytes, and the
//! input list as its count and then (port, content hash) pairs, so no two
//! different field values can encode to the same bytes. Change the encoding
//! only together with [`FORMAT_VERSION`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::data::{ContentHash, Encoder, digest_type};
use crate::error::{Error, Result};

/// Version of the cache format: the key encoding and the object encoding.
/// Bumping it gives every step a new key, so nothing cached by an older
/// fuseflow is ever reused.
pub const FORMAT_VERSION: u32 = 1;

/// Domain tag so a cache key can never equal a content hash of the same bytes.
const KEY_TAG: &[u8] = b"fuseflow.cache-key";

digest_type!(
    /// The cache key of a step run: BLAKE3 of its [`KeyFields`]. Displays as
    /// 64 lowercase hex digits.
    CacheKey,
    "cache key"
);

/// Everything a step's output depends on. Two runs with equal fields produce
/// equal outputs, so the second can reuse the first's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFields {
    /// [`FORMAT_VERSION`] when the key was made.
    pub format_version: u32,
    /// The step kind (`"read"`, `"standardize"`, ...).
    pub step_kind: String,
    /// The step's parameters in their canonical text form.
    pub params: String,
    /// Version of the step's code; bumped when its results change.
    pub code_version: String,
    /// Backend class and precision the step ran with (`"cpu/f64"`, `"cuda/f32"`).
    pub numeric_mode: String,
    /// Each input port's name and the content hash of the data it received,
    /// in the step's port order.
    pub inputs: Vec<(String, ContentHash)>,
    /// The spec parameters the step's keys refer to, `(name, value)` in name
    /// order. Their values are in `params` already; naming them lets `why`
    /// say which parameter changed. Empty for most steps, and then not part
    /// of the key's encoding, so keys made before parameters existed hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spec_params: Vec<(String, String)>,
}

/// One field that differs between two [`KeyFields`], as reported by
/// [`KeyFields::diff`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    /// The field: `params`, `code_version`, ... or `input 'port'` for one input,
    /// `input order` when the same inputs arrive in another order.
    pub field: String,
    /// The earlier value (`(none)` for an input that was added).
    pub before: String,
    /// The current value (`(none)` for an input that was removed).
    pub after: String,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.field, self.before, self.after)
    }
}

/// Shown in a [`FieldChange`] for an input present on one side only.
const ABSENT: &str = "(none)";

/// Each name of `before` and `after` (named pairs: inputs, parameters), in
/// the order first seen, with its value on each side (`(none)` where absent).
fn compared<'a, T: fmt::Display>(
    before: &'a [(String, T)],
    after: &'a [(String, T)],
) -> Vec<(&'a str, String, String)> {
    let value = |pairs: &[(String, T)], name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(|| ABSENT.to_string(), |(_, v)| v.to_string())
    };
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in before.iter().chain(after) {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|name| (name, value(before, name), value(after, name)))
        .collect()
}

/// Version tag of the identity of an output read again from its source.
const SOURCE_OUTPUT_TAG: &[u8] = b"fuseflow.source-output.v1";

impl CacheKey {
    /// The identity of the output of a step keyed `self` that is not stored
    /// but read again from its source file when needed: derived from the
    /// key, which covers the file's content hash, so downstream keys change
    /// exactly when the file (or how it is read) does.
    pub fn source_output(&self) -> ContentHash {
        let mut hasher = blake3::Hasher::new();
        let mut enc = Encoder(&mut hasher);
        enc.bytes(SOURCE_OUTPUT_TAG);
        enc.0.update(self.as_bytes());
        hasher.finalize().into()
    }
}

impl KeyFields {
    /// The cache key: BLAKE3 over the canonical encoding of the fields.
    pub fn key(&self) -> CacheKey {
        let mut hasher = blake3::Hasher::new();
        let mut enc = Encoder(&mut hasher);
        enc.bytes(KEY_TAG);
        enc.u32(self.format_version);
        enc.str(&self.step_kind);
        enc.str(&self.params);
        enc.str(&self.code_version);
        enc.str(&self.numeric_mode);
        enc.len(self.inputs.len());
        for (port, hash) in &self.inputs {
            enc.str(port);
            enc.0.update(hash.as_bytes());
        }
        if !self.spec_params.is_empty() {
            enc.len(self.spec_params.len());
            for (name, value) in &self.spec_params {
                enc.str(name);
                enc.str(value);
            }
        }
        hasher.finalize().into()
    }

    /// The fields that differ from `earlier`, in field order: why this step's
    /// key is not the earlier one. Inputs are compared by port name; when
    /// every port has the same hash but the order differs, one `input order`
    /// change is reported. Empty exactly when the keys are equal.
    pub fn diff(&self, earlier: &KeyFields) -> Vec<FieldChange> {
        let mut changes = Vec::new();
        let mut field = |name: &str, before: String, after: String| {
            if before != after {
                changes.push(FieldChange {
                    field: name.to_string(),
                    before,
                    after,
                });
            }
        };
        field(
            "format_version",
            earlier.format_version.to_string(),
            self.format_version.to_string(),
        );
        field(
            "step_kind",
            earlier.step_kind.clone(),
            self.step_kind.clone(),
        );
        field("params", earlier.params.clone(), self.params.clone());
        field(
            "code_version",
            earlier.code_version.clone(),
            self.code_version.clone(),
        );
        field(
            "numeric_mode",
            earlier.numeric_mode.clone(),
            self.numeric_mode.clone(),
        );
        for (name, before, after) in compared(&earlier.spec_params, &self.spec_params) {
            field(&format!("parameter '{name}'"), before, after);
        }
        let mut any_input = false;
        for (port, before, after) in compared(&earlier.inputs, &self.inputs) {
            if before != after {
                any_input = true;
                field(&format!("input '{port}'"), before, after);
            }
        }
        if !any_input && earlier.inputs != self.inputs {
            let order = |fields: &KeyFields| {
                let ports: Vec<&str> = fields.inputs.iter().map(|(p, _)| p.as_str()).collect();
                ports.join(", ")
            };
            field("input order", order(earlier), order(self));
        }
        changes
    }

    /// The fields as TOML text, to store beside a cache entry and re-read
    /// with [`KeyFields::from_text`].
    ///
    /// # Errors
    /// [`Error::Internal`] if serialisation fails, which these fields never do.
    pub fn to_text(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| Error::Internal(format!("cannot serialise cache key fields: {e}")))
    }

    /// Read fields written by [`KeyFields::to_text`].
    ///
    /// # Errors
    /// [`Error::CacheParse`] when the text is not a key-fields record.
    pub fn from_text(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::CacheParse {
            what: "stored cache key fields".to_string(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> ContentHash {
        ContentHash::from(blake3::hash(&[n]))
    }

    fn fields() -> KeyFields {
        KeyFields {
            format_version: FORMAT_VERSION,
            step_kind: "standardize".to_string(),
            params: "columns=[\"age\", \"income\"]".to_string(),
            code_version: "1".to_string(),
            numeric_mode: "cpu/f64".to_string(),
            inputs: vec![
                ("data".to_string(), hash(1)),
                ("stats".to_string(), hash(2)),
            ],
            spec_params: Vec::new(),
        }
    }

    /// A change to one field.
    type Edit = fn(&mut KeyFields);

    /// One edit per field, named as `diff` names it.
    fn edits() -> Vec<(&'static str, Edit)> {
        vec![
            ("format_version", |f| f.format_version += 1),
            ("step_kind", |f| f.step_kind.push('x')),
            ("params", |f| f.params.push(' ')),
            ("code_version", |f| f.code_version = "2".to_string()),
            ("numeric_mode", |f| f.numeric_mode = "cuda/f32".to_string()),
            ("input 'data'", |f| f.inputs[0].1 = hash(3)),
        ]
    }

    #[test]
    fn every_field_changes_the_key() {
        let base = fields();
        for (name, edit) in edits() {
            let mut changed = base.clone();
            edit(&mut changed);
            assert_ne!(changed.key(), base.key(), "{name}");
        }
        assert_eq!(fields().key(), base.key(), "keys are deterministic");
    }

    #[test]
    fn field_boundaries_cannot_collide() {
        let mut a = fields();
        let mut b = fields();
        (a.step_kind, a.params) = ("ab".to_string(), "c".to_string());
        (b.step_kind, b.params) = ("a".to_string(), "bc".to_string());
        assert_ne!(a.key(), b.key());
        (a.code_version, a.numeric_mode) = ("1cpu".to_string(), "".to_string());
        (b.code_version, b.numeric_mode) = ("1".to_string(), "cpu".to_string());
        (b.step_kind, b.params) = ("ab".to_string(), "c".to_string());
        assert_ne!(a.key(), b.key());
        // A port name cannot absorb the previous field either.
        let mut c = fields();
        let mut d = fields();
        c.inputs = vec![("ab".to_string(), hash(1))];
        d.inputs = vec![("a".to_string(), hash(1))];
        d.numeric_mode.push('b');
        assert_ne!(c.key(), d.key());
    }

    #[test]
    fn input_order_matters() {
        let mut swapped = fields();
        swapped.inputs.reverse();
        assert_ne!(swapped.key(), fields().key());
        let changes = swapped.diff(&fields());
        assert_eq!(
            changes,
            vec![FieldChange {
                field: "input order".to_string(),
                before: "data, stats".to_string(),
                after: "stats, data".to_string(),
            }]
        );
    }

    #[test]
    fn diff_reports_exactly_the_changed_fields() {
        let base = fields();
        assert!(base.diff(&base).is_empty());
        for (name, edit) in edits() {
            let mut changed = base.clone();
            edit(&mut changed);
            let fields: Vec<String> = changed.diff(&base).into_iter().map(|c| c.field).collect();
            assert_eq!(fields, vec![name.to_string()]);
        }
        let mut changed = base.clone();
        changed.params = "columns=[\"age\"]".to_string();
        changed.inputs.remove(1);
        changed.inputs.push(("weights".to_string(), hash(4)));
        let report: Vec<String> = changed
            .diff(&base)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            report,
            vec![
                "params: columns=[\"age\", \"income\"] -> columns=[\"age\"]".to_string(),
                format!("input 'stats': {} -> (none)", hash(2)),
                format!("input 'weights': (none) -> {}", hash(4)),
            ]
        );
    }

    #[test]
    fn text_form_round_trips() {
        let mut f = fields();
        f.params = "multi\nline \"quoted\" = 'params'".to_string();
        let text = f.to_text().unwrap();
        assert!(text.contains(&hash(1).to_string()), "{text}");
        let back = KeyFields::from_text(&text).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.key(), f.key());
        let no_inputs = KeyFields {
            inputs: vec![],
            ..fields()
        };
        assert_eq!(
            KeyFields::from_text(&no_inputs.to_text().unwrap()).unwrap(),
            no_inputs
        );
        let err = KeyFields::from_text("format_version = \"one\"").unwrap_err();
        assert!(matches!(err, Error::CacheParse { .. }), "{err}");
        let bad_hash = text.replace(&hash(1).to_string(), "abc");
        let err = KeyFields::from_text(&bad_hash).unwrap_err().to_string();
        assert!(err.contains("expected 64 hex digits"), "{err}");
    }

    #[test]
    fn spec_parameters_are_named_in_the_diff_and_absent_ones_leave_the_key_as_it_was() {
        // The key of fields without parameters, pinned: the parameters are
        // encoded only when present, so this is the key the encoding gave
        // before they existed, and stored caches stay valid.
        assert_eq!(
            fields().key().to_string(),
            "7804f1cfdd9d02dd594638b6b0422b67d6f63490afdd8899f1f16cce83d5fedc",
        );
        let with = |value: &str| KeyFields {
            spec_params: vec![("factor".into(), value.into())],
            ..fields()
        };
        assert_ne!(with("2").key(), fields().key());
        let report: Vec<String> = with("3")
            .diff(&with("2"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(report, ["parameter 'factor': 2 -> 3"]);
        let text = with("2").to_text().unwrap();
        assert_eq!(KeyFields::from_text(&text).unwrap(), with("2"));
        assert!(!fields().to_text().unwrap().contains("spec_params"));
    }

    #[test]
    fn cache_key_parses_its_display() {
        let key = fields().key();
        assert_eq!(key.to_string().parse::<CacheKey>().unwrap(), key);
        assert!(format!("{key:?}").starts_with("CacheKey("));
        let err = "xyz".parse::<CacheKey>().unwrap_err().to_string();
        assert!(err.contains("cache key `xyz`"), "{err}");
    }
}

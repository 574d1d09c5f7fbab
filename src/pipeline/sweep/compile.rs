//! A sweep's variants compiled into one set of step instances.

use toml::{Table, Value};

use super::decl::{Choice, Dimension, SweepDecl, assignment_text};
use super::merge::Merge;
use crate::error::{Error, Result};
use crate::pipeline::graph::Pipeline;

/// One step of a spec, its parameter references replaced: what the spec
/// loader builds a step from.
#[derive(Clone, Debug)]
pub(crate) struct StepTable {
    /// The line of its `[[steps]]` table.
    pub(crate) line: usize,
    /// Its keys, `name` included.
    pub(crate) table: Table,
    /// The parameters it read, `(name, value)` in name order.
    pub(crate) read: Vec<(String, String)>,
}

/// Keys of a step that an alternative setting `kind` keeps: who it is and
/// where its inputs come from.
const KEPT_KEYS: &[&str] = &["name", "input", "inputs", "device", "reuse"];

/// How [`compile`] builds one variant: its swept parameters' values and
/// its steps (alternatives applied) in, the variant's pipeline out (or the
/// error).
pub(crate) type BuildVariant<'a> =
    dyn Fn(&[(String, Value)], &[(usize, Table)]) -> Result<Pipeline> + 'a;

/// Compile the sweep `decl` over the spec's `steps` (line, table) into one
/// pipeline named `name`: the distinct step instances of all its variants
/// (in the order they first appear, so every variant's steps in spec
/// order, variant by variant; see [`Merge`]), with the variants. `build`
/// builds one variant's pipeline; `invalid` makes the error for a bad
/// declaration.
///
/// # Errors
/// A bad declaration (through `invalid`), an alternative for a step the
/// spec lacks, or the first variant whose steps do not build, named.
pub(crate) fn compile(
    name: &str,
    decl: &SweepDecl,
    steps: &[(usize, Table)],
    build: &BuildVariant<'_>,
    invalid: &dyn Fn(String) -> Error,
) -> Result<Pipeline> {
    let dims = decl.dimensions().map_err(invalid)?;
    let assignments = decl.assignments(&dims).map_err(invalid)?;
    let names: Vec<String> = steps
        .iter()
        .map(|(_, t)| {
            t.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for dim in &dims {
        let is_step = matches!(dim.choices.first(), Some(Choice::Step { .. }));
        if is_step && !names.contains(&dim.name) {
            return Err(invalid(format!(
                "sweep.steps.{0}: the spec has no step named '{0}'; its steps: {1}",
                dim.name,
                names.join(", ")
            )));
        }
    }
    let mut merge = Merge::default();
    for choice in &assignments {
        let assignment: Vec<(String, String)> = dims
            .iter()
            .zip(choice)
            .map(|(d, &c)| (d.name.clone(), d.choices[c].label()))
            .collect();
        let variant = decl.variant_name(&assignment).map_err(invalid)?;
        if let Some(twin) = merge.variant_named(&variant) {
            return Err(invalid(format!(
                "sweep.name gives variants {} and {} the same name '{variant}'; name every dimension that varies",
                assignment_text(twin),
                assignment_text(&assignment)
            )));
        }
        let (params, tables) = variant_inputs(&dims, choice, steps);
        let pipeline = build(&params, &tables).map_err(|e| e.in_variant(&variant))?;
        merge.add_variant(variant, assignment, pipeline);
    }
    Ok(merge.finish(name))
}

/// One variant's swept parameter values, `(name, value)`, and its steps,
/// `(line, table)`.
type VariantInputs = (Vec<(String, Value)>, Vec<(usize, Table)>);

/// One variant's swept parameter values and its steps with the chosen
/// alternatives applied.
fn variant_inputs(dims: &[Dimension], choice: &[usize], steps: &[(usize, Table)]) -> VariantInputs {
    let mut params = Vec::new();
    let mut tables: Vec<(usize, Table)> = steps.to_vec();
    for (dim, &c) in dims.iter().zip(choice) {
        match &dim.choices[c] {
            Choice::Param(value) => params.push((dim.name.clone(), value.clone())),
            Choice::Step { keys, .. } => {
                for (_, table) in &mut tables {
                    if table.get("name").and_then(Value::as_str) == Some(dim.name.as_str()) {
                        *table = with_alternative(table, keys);
                    }
                }
            }
        }
    }
    (params, tables)
}

/// `base` with an alternative's `keys` applied: merged over it, or, when
/// the alternative sets `kind`, over only the keys in [`KEPT_KEYS`].
fn with_alternative(base: &Table, keys: &Table) -> Table {
    let mut table: Table = match keys.contains_key("kind") {
        true => base
            .iter()
            .filter(|(k, _)| KEPT_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        false => base.clone(),
    };
    for (k, v) in keys {
        table.insert(k.clone(), v.clone());
    }
    table
}

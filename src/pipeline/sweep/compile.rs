//! A sweep's variants compiled into one set of step instances.

use std::collections::HashMap;

use toml::{Table, Value};

use super::Variant;
use super::decl::{Choice, Dimension, SweepDecl, assignment_text};
use crate::error::{Error, Result};

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

/// How [`compile`] builds one variant's steps: its swept parameters'
/// values in, the variant's substituted steps out (or the error).
pub(crate) type BuildVariant<'a> =
    dyn Fn(&[(String, Value)], &[(usize, Table)]) -> Result<Vec<StepTable>> + 'a;

/// Compile the sweep `decl` over the spec's `steps` (line, table) into the
/// distinct step instances of all its variants (in the order they first
/// appear, so every variant's steps in spec order, variant by variant) and
/// the variants. `build` substitutes one variant's parameters; `invalid`
/// makes the error for a bad declaration.
///
/// # Errors
/// A bad declaration (through `invalid`), an alternative for a step the
/// spec lacks, or the first variant whose steps do not build, named.
pub(crate) fn compile(
    decl: &SweepDecl,
    steps: &[(usize, Table)],
    build: &BuildVariant<'_>,
    invalid: &dyn Fn(String) -> Error,
) -> Result<(Vec<StepTable>, Vec<Variant>)> {
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
    let mut instances = Instances::default();
    let mut variants = Vec::with_capacity(assignments.len());
    let mut instances_of = Vec::with_capacity(assignments.len());
    for (v, choice) in assignments.iter().enumerate() {
        let assignment: Vec<(String, String)> = dims
            .iter()
            .zip(choice)
            .map(|(d, &c)| (d.name.clone(), d.choices[c].label()))
            .collect();
        let name = decl.variant_name(&assignment).map_err(invalid)?;
        if let Some(twin) = variants.iter().find(|t: &&Variant| t.name == name) {
            return Err(invalid(format!(
                "sweep.name gives variants {} and {} the same name '{name}'; name every dimension that varies",
                assignment_text(&twin.assignment),
                assignment_text(&assignment)
            )));
        }
        let (params, tables) = variant_inputs(&dims, choice, steps);
        let built = build(&params, &tables).map_err(|e| e.in_variant(&name))?;
        instances_of.push(instances.add_variant(v, built, &names));
        // Its steps are filled in once the instances are named.
        variants.push(Variant {
            name,
            assignment,
            steps: Vec::new(),
        });
    }
    let (tables, instance_names) = instances.name(&variants);
    for (variant, of_step) in variants.iter_mut().zip(instances_of) {
        variant.steps = names
            .iter()
            .cloned()
            .zip(of_step.into_iter().map(|i| instance_names[i].clone()))
            .collect();
    }
    Ok((tables, variants))
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

/// Where a step's input reference sits in its table.
#[derive(Clone, Debug)]
enum Slot {
    /// `input = "ref"`.
    Input,
    /// `inputs = { port = "ref" }`.
    Port(String),
}

impl Slot {
    /// Put `reference` in this slot of a step's `table`.
    fn set(&self, table: &mut Table, reference: Value) {
        match self {
            Slot::Input => {
                table.insert("input".into(), reference);
            }
            Slot::Port(port) => {
                if let Some(Value::Table(inputs)) = table.get_mut("inputs") {
                    inputs.insert(port.clone(), reference);
                }
            }
        }
    }
}

/// A reference to another step instance's output: the instance, and what
/// follows the step's name (`.output`, or nothing).
#[derive(Clone, Debug)]
struct InstanceRef {
    slot: Slot,
    instance: usize,
    suffix: String,
}

#[derive(Debug)]
struct Instance {
    /// The spec step it is an instance of.
    step: String,
    built: StepTable,
    refs: Vec<InstanceRef>,
    /// The variants it computes, in order.
    variants: Vec<usize>,
}

/// The distinct step instances found so far, by identity.
#[derive(Debug, Default)]
struct Instances {
    list: Vec<Instance>,
    by_identity: HashMap<String, usize>,
}

impl Instances {
    /// Add variant `v`'s steps; returns the instance of each spec step.
    fn add_variant(&mut self, v: usize, built: Vec<StepTable>, names: &[String]) -> Vec<usize> {
        let mut of_step: Vec<Option<usize>> = vec![None; built.len()];
        // Producers before consumers: a step is added once every step it
        // refers to has its instance. Steps left over (a cycle) are added
        // with their references as written, and the pipeline's validation
        // reports the cycle.
        let mut pending: Vec<usize> = (0..built.len()).collect();
        while !pending.is_empty() {
            let ready: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|&s| {
                    references(&built[s].table)
                        .iter()
                        .all(|(_, r)| producer(r, names).is_none_or(|(p, _)| of_step[p].is_some()))
                })
                .collect();
            let stuck = ready.is_empty();
            let batch = if stuck { pending.clone() } else { ready };
            for s in batch {
                of_step[s] = Some(self.add(v, &built[s], &names[s], names, &of_step, stuck));
                pending.retain(|&p| p != s);
            }
        }
        of_step.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// The instance of one built step of variant `v`, added when new.
    fn add(
        &mut self,
        v: usize,
        step: &StepTable,
        name: &str,
        names: &[String],
        of_step: &[Option<usize>],
        stuck: bool,
    ) -> usize {
        let mut identity = step.table.clone();
        identity.remove("name");
        let mut refs = Vec::new();
        for (slot, reference) in references(&step.table) {
            let Some((p, suffix)) = producer(&reference, names) else {
                continue;
            };
            let Some(instance) = of_step[p] else {
                continue;
            };
            let placeholder = Value::String(format!("#{instance}{suffix}"));
            slot.set(&mut identity, placeholder);
            refs.push(InstanceRef {
                slot,
                instance,
                suffix: suffix.to_string(),
            });
        }
        let mut key = format!("{name}\n{}", canonical(&Value::Table(identity)));
        if stuck {
            // Not shared: its references could not be resolved.
            key.push_str(&format!("\nvariant {v}"));
        }
        if let Some(&i) = self.by_identity.get(&key) {
            self.list[i].variants.push(v);
            return i;
        }
        self.by_identity.insert(key, self.list.len());
        self.list.push(Instance {
            step: name.to_string(),
            built: step.clone(),
            refs,
            variants: vec![v],
        });
        self.list.len() - 1
    }

    /// The instances with their names (see the module docs) and their
    /// references rewritten to those names, and the names.
    fn name(self, variants: &[Variant]) -> (Vec<StepTable>, Vec<String>) {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for instance in &self.list {
            *count.entry(instance.step.as_str()).or_default() += 1;
        }
        let mut taken: HashMap<String, usize> = HashMap::new();
        let names: Vec<String> = self
            .list
            .iter()
            .map(|instance| {
                // A '.' separates a step from its output in references.
                let name = match count[instance.step.as_str()] {
                    1 => instance.step.clone(),
                    _ => format!(
                        "{}[{}]",
                        instance.step,
                        shared_assignment(instance, variants).replace('.', "_")
                    ),
                };
                let seen = taken.entry(name.clone()).or_default();
                *seen += 1;
                match *seen {
                    1 => name,
                    n => format!("{name}#{n}"),
                }
            })
            .collect();
        let tables = self
            .list
            .into_iter()
            .zip(&names)
            .map(|(instance, name)| {
                let mut built = instance.built;
                built
                    .table
                    .insert("name".into(), Value::String(name.clone()));
                for r in instance.refs {
                    let target = Value::String(format!("{}{}", names[r.instance], r.suffix));
                    r.slot.set(&mut built.table, target);
                }
                built
            })
            .collect();
        (tables, names)
    }
}

/// The part of the assignment that every variant an instance computes
/// shares and that the sweep varies, written `dim=value,...` (the whole
/// assignment of its first variant when none is shared).
fn shared_assignment(instance: &Instance, variants: &[Variant]) -> String {
    let first = &variants[instance.variants[0]];
    let shared: Vec<String> = first
        .assignment
        .iter()
        .enumerate()
        .filter(|(d, (_, value))| {
            let constant_here = instance
                .variants
                .iter()
                .all(|&v| &variants[v].assignment[*d].1 == value);
            let varies = variants.iter().any(|v| &v.assignment[*d].1 != value);
            constant_here && varies
        })
        .map(|(_, (dim, value))| format!("{dim}={value}"))
        .collect();
    match shared.is_empty() {
        true => assignment_text(&first.assignment),
        false => shared.join(","),
    }
}

/// A step table's input references: `input`, then each of `inputs`.
fn references(table: &Table) -> Vec<(Slot, String)> {
    let mut out = Vec::new();
    if let Some(Value::String(r)) = table.get("input") {
        out.push((Slot::Input, r.clone()));
    }
    if let Some(Value::Table(inputs)) = table.get("inputs") {
        for (port, r) in inputs {
            if let Value::String(r) = r {
                out.push((Slot::Port(port.clone()), r.clone()));
            }
        }
    }
    out
}

/// The spec step a reference names (`step` or `step.output`) and what
/// follows its name; `None` for a name no step has.
fn producer<'r>(reference: &'r str, names: &[String]) -> Option<(usize, &'r str)> {
    if let Some(p) = names.iter().position(|n| n == reference) {
        return Some((p, ""));
    }
    let (head, _) = reference.split_once('.')?;
    let p = names.iter().position(|n| n == head)?;
    Some((p, &reference[head.len()..]))
}

/// A value written with its tables' keys sorted: equal for equal content
/// whatever order the keys were merged in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Table(table) => {
            let mut keys: Vec<&String> = table.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k:?}={}", canonical(&table[k])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

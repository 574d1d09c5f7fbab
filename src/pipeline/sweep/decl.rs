//! The `[sweep]` table: its dimensions and the assignments it selects.

use toml::{Table, Value};

/// A spec's `[sweep]` table, as written.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SweepDecl {
    /// Parameter name -> a list of values or a range table.
    #[serde(default)]
    params: Table,
    /// Step name -> alternative name -> the alternative's keys.
    #[serde(default)]
    steps: Table,
    /// Groups of dimensions that vary together, value by value.
    #[serde(default)]
    zip: Vec<Vec<String>>,
    /// Partial assignments (dimension -> value) whose variants are left out.
    #[serde(default)]
    exclude: Vec<Table>,
    /// How variants are named: text with `{dimension}` placeholders
    /// (default: the assignment, `dim=value,...`).
    name: Option<String>,
}

/// One value of a dimension.
#[derive(Clone, Debug)]
pub(super) enum Choice {
    /// A value of a swept parameter.
    Param(Value),
    /// A named alternative definition of a step (its keys).
    Step { name: String, keys: Table },
}

impl Choice {
    /// How variant names and results write the choice: a parameter's value
    /// as TOML writes it (strings bare), an alternative's name.
    pub(super) fn label(&self) -> String {
        match self {
            Choice::Param(Value::String(s)) => s.clone(),
            Choice::Param(value) => value.to_string(),
            Choice::Step { name, .. } => name.clone(),
        }
    }
}

/// An assignment written `dim=value,...`.
pub(super) fn assignment_text(assignment: &[(String, String)]) -> String {
    let pairs: Vec<String> = assignment.iter().map(|(d, v)| format!("{d}={v}")).collect();
    pairs.join(",")
}

/// A swept parameter or a step with alternatives.
#[derive(Clone, Debug)]
pub(super) struct Dimension {
    pub(super) name: String,
    pub(super) choices: Vec<Choice>,
}

impl SweepDecl {
    /// Whether the sweep varies parameter `name`.
    pub(crate) fn varies_param(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }

    /// The dimensions, parameters first, each in declaration order.
    ///
    /// # Errors
    /// What is wrong, naming the dimension: an empty list, a bad range, an
    /// alternative that is not a table or renames its step.
    pub(super) fn dimensions(&self) -> Result<Vec<Dimension>, String> {
        let mut dims = Vec::new();
        for (name, values) in &self.params {
            let choices = param_values(values)
                .map_err(|e| format!("sweep parameter '{name}': {e}"))?
                .into_iter()
                .map(Choice::Param)
                .collect();
            dims.push(Dimension {
                name: name.clone(),
                choices,
            });
        }
        for (step, alternatives) in &self.steps {
            let at = |e: String| format!("sweep.steps.{step}: {e}");
            if self.params.contains_key(step) {
                return Err(at(
                    "a parameter is swept under the same name; rename one".into()
                ));
            }
            let Value::Table(alternatives) = alternatives else {
                return Err(at(
                    "a table of named alternatives, e.g. zscore = { method = \"zscore\" }".into(),
                ));
            };
            let mut choices = Vec::new();
            for (name, keys) in alternatives {
                let Value::Table(keys) = keys else {
                    return Err(at(format!(
                        "alternative '{name}' is not a table of step keys"
                    )));
                };
                if keys.contains_key("name") {
                    return Err(at(format!(
                        "alternative '{name}' sets 'name'; an alternative keeps its step's name"
                    )));
                }
                choices.push(Choice::Step {
                    name: name.clone(),
                    keys: keys.clone(),
                });
            }
            if choices.is_empty() {
                return Err(at("no alternatives".into()));
            }
            dims.push(Dimension {
                name: step.clone(),
                choices,
            });
        }
        Ok(dims)
    }

    /// Every selected variant, as the index of its choice in each
    /// dimension: the cartesian product of the dimensions (those zipped
    /// together advancing as one), the first dimension varying slowest,
    /// without the excluded ones.
    ///
    /// # Errors
    /// A zip group naming an unknown dimension, one twice, or dimensions of
    /// different lengths; an exclusion naming an unknown dimension or value;
    /// no variant left.
    pub(super) fn assignments(&self, dims: &[Dimension]) -> Result<Vec<Vec<usize>>, String> {
        let excluded = self.exclusions(dims)?;
        let groups: Vec<(Vec<usize>, usize)> = (self.groups(dims)?.into_iter())
            .map(|group| {
                let len = dims[group[0]].choices.len();
                (group, len)
            })
            .collect();
        let mut variants = product(dims.len(), &groups);
        variants.retain(|v| {
            !excluded
                .iter()
                .any(|entry| entry.iter().all(|&(d, c)| v[d] == c))
        });
        if variants.is_empty() {
            return Err("sweep.exclude leaves out every variant".into());
        }
        Ok(variants)
    }

    /// The groups of dimensions that advance as one, in dimension order: a
    /// zip group at the place of its first member, every other dimension
    /// alone.
    fn groups(&self, dims: &[Dimension]) -> Result<Vec<Vec<usize>>, String> {
        let mut group_of: Vec<Option<usize>> = vec![None; dims.len()];
        let mut zipped: Vec<Vec<usize>> = Vec::new();
        for names in &self.zip {
            let members = names
                .iter()
                .map(|name| position(dims, name, "sweep.zip"))
                .collect::<Result<Vec<_>, _>>()?;
            for &m in &members {
                if group_of[m].replace(zipped.len()).is_some() {
                    return Err(format!(
                        "sweep.zip names '{}' twice; a dimension is zipped into one group",
                        dims[m].name
                    ));
                }
            }
            let len = |m: &usize| dims[*m].choices.len();
            if members.iter().any(|m| len(m) != len(&members[0])) {
                let described: Vec<String> = members
                    .iter()
                    .map(|m| format!("'{}' has {}", dims[*m].name, len(m)))
                    .collect();
                return Err(format!(
                    "sweep.zip pairs values one by one, so its dimensions need as many values each: {}",
                    described.join(", ")
                ));
            }
            zipped.push(members);
        }
        Ok(group_of
            .iter()
            .enumerate()
            .filter_map(|(d, group)| match group {
                None => Some(vec![d]),
                Some(g) => (zipped[*g][0] == d).then(|| zipped[*g].clone()),
            })
            .collect())
    }

    /// The name of the variant with `assignment` (`(dimension, label)`
    /// pairs, in dimension order): the `name` template with each
    /// `{dimension}` replaced by its label, else `dim=value,...`.
    ///
    /// # Errors
    /// A placeholder naming no dimension, or a brace left open.
    pub(super) fn variant_name(&self, assignment: &[(String, String)]) -> Result<String, String> {
        let Some(template) = &self.name else {
            return Ok(assignment_text(assignment));
        };
        let mut name = String::new();
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            name.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                return Err(format!(
                    "sweep.name \"{template}\": a '{{' is not closed; write {{dimension}}"
                ));
            };
            let dim = rest[open + 1..open + close].trim();
            let Some((_, label)) = assignment.iter().find(|(d, _)| d == dim) else {
                let dims: Vec<&str> = assignment.iter().map(|(d, _)| d.as_str()).collect();
                return Err(format!(
                    "sweep.name \"{template}\" names '{dim}', which the sweep does not vary; its dimensions: {}",
                    dims.join(", ")
                ));
            };
            name.push_str(label);
            rest = &rest[open + close + 1..];
        }
        name.push_str(rest);
        Ok(name)
    }

    /// Each exclusion as `(dimension, choice)` pairs.
    fn exclusions(&self, dims: &[Dimension]) -> Result<Vec<Vec<(usize, usize)>>, String> {
        let pair = |name: &String, value: &Value| {
            let d = position(dims, name, "sweep.exclude")?;
            let choices = &dims[d].choices;
            let c = choices.iter().position(|c| same_value(c, value)).ok_or_else(|| {
                let labels: Vec<String> = choices.iter().map(Choice::label).collect();
                format!(
                    "sweep.exclude gives '{name}' the value {value}, which is not one of its values: {}",
                    labels.join(", ")
                )
            })?;
            Ok((d, c))
        };
        self.exclude
            .iter()
            .map(|entry| {
                entry
                    .iter()
                    .map(|(name, value)| pair(name, value))
                    .collect()
            })
            .collect()
    }
}

/// Every combination of one choice per group of `dims` dimensions, each
/// group `(members, choices)` advancing its members as one, the first
/// group varying slowest: for each combination, the choice of each
/// dimension.
pub(super) fn product(dims: usize, groups: &[(Vec<usize>, usize)]) -> Vec<Vec<usize>> {
    let mut all = vec![vec![0; dims]];
    for (members, choices) in groups {
        let extend = |v: Vec<usize>| {
            (0..*choices).map(move |k| {
                let mut v = v.clone();
                members.iter().for_each(|&d| v[d] = k);
                v
            })
        };
        all = all.into_iter().flat_map(extend).collect();
    }
    all
}

/// The position of dimension `name`, which `what` names.
fn position(dims: &[Dimension], name: &str, what: &str) -> Result<usize, String> {
    dims.iter().position(|d| d.name == name).ok_or_else(|| {
        let names: Vec<&str> = dims.iter().map(|d| d.name.as_str()).collect();
        format!(
            "{what} names '{name}', which the sweep does not vary; it varies: {}",
            names.join(", ")
        )
    })
}

/// Whether `value`, as an exclusion writes it, is `choice`: the same
/// label, or the same number.
fn same_value(choice: &Choice, value: &Value) -> bool {
    let label = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if choice.label() == label {
        return true;
    }
    match (
        choice,
        value.as_float().or(value.as_integer().map(|i| i as f64)),
    ) {
        (Choice::Param(p), Some(v)) => p.as_float().or(p.as_integer().map(|i| i as f64)) == Some(v),
        _ => false,
    }
}

/// A swept parameter's values: a list, or a range table
/// (`{ from, to, step }`, both ends included, integers when all three are;
/// or `{ from, to, count, log = false }`, evenly or log-evenly spaced).
fn param_values(values: &Value) -> Result<Vec<Value>, String> {
    match values {
        Value::Array(items) if items.is_empty() => Err("an empty list of values".into()),
        Value::Array(items) => Ok(items.clone()),
        Value::Table(table) => range_values(table),
        other => Err(format!(
            "{other} is neither a list of values nor a range table {{ from, to, step }}"
        )),
    }
}

/// The values of a range table (see [`param_values`]).
fn range_values(table: &Table) -> Result<Vec<Value>, String> {
    for key in table.keys() {
        if !["from", "to", "step", "count", "log"].contains(&key.as_str()) {
            return Err(format!(
                "unknown range key '{key}'; a range has from, to, and step or count (and log)"
            ));
        }
    }
    let number = |key: &str| -> Result<f64, String> {
        match table.get(key) {
            Some(Value::Integer(i)) => Ok(*i as f64),
            Some(Value::Float(f)) if f.is_finite() => Ok(*f),
            Some(other) => Err(format!("range key '{key}' is {other}, not a number")),
            None => Err(format!("a range needs '{key}'")),
        }
    };
    let (from, to) = (number("from")?, number("to")?);
    let log = match table.get("log") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(other) => return Err(format!("range key 'log' is {other}, not true or false")),
    };
    match (table.get("step"), table.get("count")) {
        (Some(_), Some(_)) => Err("a range has 'step' or 'count', not both".into()),
        (Some(_), None) if log => Err("a log range is given by 'count', not 'step'".into()),
        (Some(_), None) => {
            let step = number("step")?;
            if step <= 0.0 || to < from {
                return Err(format!(
                    "a range from {from} to {to} by {step} needs to >= from and step > 0"
                ));
            }
            let steps = ((to - from) / step + 1e-9).floor() as usize;
            if steps >= 10_000 {
                return Err(format!("{} values; a sweep takes fewer", steps + 1));
            }
            let integers = ["from", "to", "step"]
                .iter()
                .all(|k| matches!(table.get(*k), Some(Value::Integer(_))));
            Ok((0..=steps)
                .map(|k| match integers {
                    true => Value::Integer((from + k as f64 * step) as i64),
                    false => Value::Float(tidy(from + k as f64 * step)),
                })
                .collect())
        }
        (None, Some(Value::Integer(count))) if (1..10_000).contains(count) => {
            let count = *count as usize;
            if log && (from <= 0.0 || to <= 0.0) {
                return Err(format!(
                    "a log range needs positive ends, not {from} and {to}"
                ));
            }
            let (a, b) = match log {
                true => (from.ln(), to.ln()),
                false => (from, to),
            };
            Ok((0..count)
                .map(|k| {
                    let t = if count == 1 {
                        0.0
                    } else {
                        k as f64 / (count - 1) as f64
                    };
                    let x = a + t * (b - a);
                    Value::Float(tidy(if log { x.exp() } else { x }))
                })
                .collect())
        }
        (None, Some(other)) => Err(format!(
            "range key 'count' is {other}, not a whole number from 1 to 9999"
        )),
        (None, None) => Err("a range needs 'step' or 'count'".into()),
    }
}

/// `x` without the binary noise of repeated addition (`0.30000000000000004`
/// is 0.3): rounded to 12 significant digits.
fn tidy(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(text: &str) -> SweepDecl {
        toml::from_str(text).expect("a sweep table")
    }

    fn labels(text: &str) -> Vec<String> {
        let decl = decl(text);
        let dims = decl.dimensions().unwrap();
        decl.assignments(&dims)
            .unwrap()
            .iter()
            .map(|v| {
                let pairs: Vec<(String, String)> = (v.iter().enumerate())
                    .map(|(d, &c)| (dims[d].name.clone(), dims[d].choices[c].label()))
                    .collect();
                assignment_text(&pairs)
            })
            .collect()
    }

    #[test]
    fn the_product_varies_the_first_dimension_slowest_and_leaves_out_exclusions() {
        let text = "params = { a = [1, 2], b = [\"x\", \"y\"] }\nexclude = [{ a = 2, b = \"x\" }]";
        assert_eq!(labels(text), ["a=1,b=x", "a=1,b=y", "a=2,b=y"]);
    }

    #[test]
    fn zipped_dimensions_advance_together() {
        let text = "params = { a = [1, 2], b = [3, 4], c = [5, 6] }\nzip = [[\"a\", \"c\"]]";
        assert_eq!(
            labels(text),
            ["a=1,b=3,c=5", "a=1,b=4,c=5", "a=2,b=3,c=6", "a=2,b=4,c=6"]
        );
        let unequal = decl("params = { a = [1, 2], b = [3] }\nzip = [[\"a\", \"b\"]]");
        let err = unequal
            .assignments(&unequal.dimensions().unwrap())
            .unwrap_err();
        assert!(err.contains("'a' has 2, 'b' has 1"), "{err}");
    }

    #[test]
    fn ranges_expand_to_tidy_values() {
        let values = |t: &str| {
            let v: Value = toml::from_str::<Table>(&format!("r = {t}")).unwrap()["r"].clone();
            param_values(&v).map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(
            values("{ from = 0.1, to = 0.5, step = 0.2 }").unwrap(),
            ["0.1", "0.3", "0.5"]
        );
        assert_eq!(
            values("{ from = 1, to = 7, step = 3 }").unwrap(),
            ["1", "4", "7"]
        );
        assert_eq!(
            values("{ from = 0.01, to = 100, count = 3, log = true }").unwrap(),
            ["0.01", "1.0", "100.0"]
        );
        assert!(
            values("{ from = 1, to = 0, step = 1 }")
                .unwrap_err()
                .contains("to >= from")
        );
        assert!(values("[]").unwrap_err().contains("empty"));
        assert!(
            values("{ from = 1, to = 2, steps = 1 }")
                .unwrap_err()
                .contains("'steps'")
        );
    }

    #[test]
    fn bad_declarations_name_the_culprit() {
        let err = |text: &str| {
            let d = decl(text);
            d.dimensions()
                .and_then(|dims| d.assignments(&dims).map(|_| ()))
                .unwrap_err()
        };
        assert!(err("params = { a = [1] }\nzip = [[\"a\", \"b\"]]").contains("'b'"));
        assert!(err("params = { a = [1] }\nexclude = [{ a = 3 }]").contains("value 3"));
        assert!(err("params = { a = [1] }\nexclude = [{ a = 1 }]").contains("every variant"));
        assert!(err("[steps.s]\nx = 1").contains("alternative 'x'"));
        assert!(err("[steps.s.alt]\nname = \"t\"").contains("keeps its step's name"));
    }

    #[test]
    fn a_name_template_names_variants_by_their_dimensions() {
        let assignment = [
            ("l2".to_string(), "0.1".to_string()),
            ("scaled".into(), "robust".into()),
        ];
        let named = |template: &str| {
            decl(&format!("params = {{ l2 = [0.1] }}\nname = {template:?}"))
                .variant_name(&assignment)
        };
        assert_eq!(
            decl("").variant_name(&assignment).unwrap(),
            "l2=0.1,scaled=robust"
        );
        assert_eq!(named("{scaled}-l2_{ l2 }").unwrap(), "robust-l2_0.1");
        assert_eq!(named("fixed").unwrap(), "fixed");
        let unknown = named("{depth}").unwrap_err();
        assert!(
            unknown.contains("names 'depth'") && unknown.contains("l2, scaled"),
            "{unknown}"
        );
        assert!(named("{l2").unwrap_err().contains("not closed"));
    }
}

//! Variant pipelines merged into one, each distinct step instance once.
//!
//! A step instance is identified by its step's name, kind and parameters
//! (as [`Step::params`](crate::pipeline::Step::params) writes them: what its
//! cache key holds), its device and reuse settings, the spec parameters it
//! read, and the instances its inputs come from. Two variants whose steps
//! agree on all of that share the instance.

use std::collections::HashMap;

use super::Variant;
use super::decl::assignment_text;
use crate::pipeline::graph::{Pipeline, StepNode};

/// A binding of an instance to another instance's output: the binding's
/// index, the producing instance and what follows the step's name in the
/// reference (`.output`, or nothing).
#[derive(Debug)]
struct InstanceRef {
    binding: usize,
    instance: usize,
    suffix: String,
}

#[derive(Debug)]
struct Instance {
    /// The variant step it is an instance of.
    step: String,
    node: StepNode,
    refs: Vec<InstanceRef>,
    /// The variants it computes, in order.
    variants: Vec<usize>,
}

/// The distinct step instances of the variants added so far.
#[derive(Debug, Default)]
pub(super) struct Merge {
    list: Vec<Instance>,
    by_identity: HashMap<String, usize>,
    /// The variants, their steps filled in by [`Merge::finish`].
    variants: Vec<Variant>,
    /// For each variant, `(step, instance)` per step of its pipeline.
    of_variant: Vec<Vec<(String, usize)>>,
}

impl Merge {
    /// The assignment of the variant added as `name`, if any.
    pub(super) fn variant_named(&self, name: &str) -> Option<&[(String, String)]> {
        let found = self.variants.iter().find(|v| v.name == name);
        found.map(|v| v.assignment.as_slice())
    }

    /// Add the next variant, `name` with `assignment` (`(dimension,
    /// value)` in dimension order), and its pipeline.
    pub(super) fn add_variant(
        &mut self,
        name: String,
        assignment: Vec<(String, String)>,
        pipeline: Pipeline,
    ) {
        let v = self.of_variant.len();
        let nodes = pipeline.nodes;
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let mut of_step: Vec<Option<usize>> = vec![None; nodes.len()];
        let mut nodes: Vec<Option<StepNode>> = nodes.into_iter().map(Some).collect();
        // Producers before consumers: a step is added once every step it
        // refers to has its instance. Steps left over (a cycle, or a
        // reference to no step) are added with their references as written,
        // and the pipeline's validation reports them.
        let mut pending: Vec<usize> = (0..nodes.len()).collect();
        while !pending.is_empty() {
            let ready: Vec<usize> = (pending.iter().copied())
                .filter(|&s| {
                    let node = nodes[s].as_ref().expect("pending steps are not added yet");
                    (node.bindings.iter())
                        .all(|(_, r)| producer(r, &names).is_none_or(|(p, _)| of_step[p].is_some()))
                })
                .collect();
            let stuck = ready.is_empty();
            let batch = if stuck { pending.clone() } else { ready };
            for s in batch {
                let node = nodes[s].take().expect("each step is added once");
                of_step[s] = Some(self.add(v, node, &names, &of_step, stuck));
                pending.retain(|&p| p != s);
            }
        }
        let steps = names
            .into_iter()
            .zip(of_step.into_iter().map(Option::unwrap_or_default));
        self.of_variant.push(steps.collect());
        self.variants.push(Variant {
            name,
            assignment,
            steps: Vec::new(),
        });
    }

    /// The instance of `node`, a step of variant `v`, added when new.
    fn add(
        &mut self,
        v: usize,
        node: StepNode,
        names: &[String],
        of_step: &[Option<usize>],
        stuck: bool,
    ) -> usize {
        let mut refs = Vec::new();
        let mut inputs = Vec::new();
        for (b, (port, reference)) in node.bindings.iter().enumerate() {
            let resolved = producer(reference, names)
                .and_then(|(p, suffix)| of_step[p].map(|instance| (instance, suffix.to_string())));
            match resolved {
                Some((instance, suffix)) => {
                    inputs.push(format!("{port}=#{instance}{suffix}"));
                    refs.push(InstanceRef {
                        binding: b,
                        instance,
                        suffix,
                    });
                }
                None => inputs.push(format!("{port}={reference}")),
            }
        }
        let mut key = format!(
            "{}\n{}\n{}\n{:?}\n{}\n{:?}\n{}",
            node.name,
            node.step.kind(),
            node.step.params(),
            node.device,
            node.reuse,
            node.spec_params,
            inputs.join("\n")
        );
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
            step: node.name.clone(),
            node,
            refs,
            variants: vec![v],
        });
        self.list.len() - 1
    }

    /// The merged pipeline, named `name`, with its variants. A step with one
    /// instance keeps its name; the instances of one that varies are named
    /// by the part of the assignment their variants share
    /// (`model[l2=10_0,scaled=minmax]`, a `.` written `_`, since it
    /// separates a step from its output in references).
    pub(super) fn finish(self, name: &str) -> Pipeline {
        let mut variants = self.variants;
        let mut count: HashMap<&str, usize> = HashMap::new();
        for instance in &self.list {
            *count.entry(instance.step.as_str()).or_default() += 1;
        }
        let mut taken: HashMap<String, usize> = HashMap::new();
        let names: Vec<String> = (self.list.iter())
            .map(|instance| {
                let name = match count[instance.step.as_str()] {
                    1 => instance.step.clone(),
                    _ => format!(
                        "{}[{}]",
                        instance.step,
                        shared_assignment(instance, &variants).replace('.', "_")
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
        for (variant, steps) in variants.iter_mut().zip(&self.of_variant) {
            let named = steps
                .iter()
                .map(|(step, i)| (step.clone(), names[*i].clone()));
            variant.steps = named.collect();
        }
        let mut pipeline = Pipeline::new(name);
        for (instance, name) in self.list.into_iter().zip(&names) {
            let mut node = instance.node;
            node.name = name.clone();
            for r in instance.refs {
                node.bindings[r.binding].1 = format!("{}{}", names[r.instance], r.suffix);
            }
            pipeline.nodes.push(node);
        }
        pipeline.with_variants(variants)
    }
}

/// The part of the assignment that every variant an instance computes
/// shares and that the sweep varies, written `dim=value,...` (the whole
/// assignment of its first variant when none is shared).
fn shared_assignment(instance: &Instance, variants: &[Variant]) -> String {
    let first = &variants[instance.variants[0]];
    let shared: Vec<(String, String)> = (first.assignment.iter().enumerate())
        .filter(|(d, (_, value))| {
            let constant_here = (instance.variants.iter())
                .all(|&v| variants[v].assignment.get(*d).map(|(_, x)| x) == Some(value));
            let varies =
                (variants.iter()).any(|v| v.assignment.get(*d).map(|(_, x)| x) != Some(value));
            constant_here && varies
        })
        .map(|(_, pair)| pair.clone())
        .collect();
    match shared.is_empty() {
        true => assignment_text(&first.assignment),
        false => assignment_text(&shared),
    }
}

/// The step a reference names (`step` or `step.output`) among `names`, and
/// what follows its name; `None` for a name no step has.
fn producer<'r>(reference: &'r str, names: &[String]) -> Option<(usize, &'r str)> {
    if let Some(p) = names.iter().position(|n| n == reference) {
        return Some((p, ""));
    }
    let (head, _) = reference.split_once('.')?;
    let p = names.iter().position(|n| n == head)?;
    Some((p, &reference[head.len()..]))
}

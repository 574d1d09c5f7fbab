//! [`Pipeline`]: the builder users write, and its validation into a [`Graph`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow_schema::SchemaRef;

use super::step::{Step, StepContext};
use super::sweep::Variant;
use crate::backend::DeviceChoice;
use crate::error::{Error, Result, bail, ensure};

/// A DAG of named steps joined by named data dependencies.
///
/// ```
/// use fuseflow::pipeline::{Pipeline, prep::{FitStats, Scale, ScaleMethod}, io::MemorySource};
/// # use fuseflow::pipeline::Table;
/// # use arrow_array::{RecordBatch, Float64Array};
/// # use std::sync::Arc;
/// # let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as _)]).unwrap();
/// let mut p = Pipeline::new("demo");
/// p.add("raw", MemorySource::new(Table::from_batch(batch)));
/// p.add("stats", FitStats::new(["x"])).input("data", "raw");
/// p.add("scaled", Scale::new(ScaleMethod::ZScore)).input("data", "raw").input("stats", "stats");
/// let run = p.run()?;
/// assert_eq!(run.output("scaled")?.num_rows(), 3);
/// # Ok::<(), fuseflow::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Pipeline {
    name: String,
    pub(crate) nodes: Vec<StepNode>,
    /// The variants of the sweep the pipeline was compiled from, if any.
    variants: Vec<Variant>,
}

/// A step in a pipeline with its input bindings.
#[derive(Debug)]
pub(crate) struct StepNode {
    pub(crate) name: String,
    pub(crate) step: Arc<dyn Step>,
    /// `(input port, reference)` pairs, reference = `step` or `step.output`.
    pub(crate) bindings: Vec<(String, String)>,
    /// Whether a workspace may reuse the step's cached outputs.
    pub(crate) reuse: bool,
    /// The device the step is pinned to, if any (else the run's).
    pub(crate) device: Option<DeviceChoice>,
    /// The spec parameters its keys refer to, `(name, value)`, for its
    /// cache key's record (`why` names a changed one).
    pub(crate) spec_params: Vec<(String, String)>,
}

impl StepNode {
    /// The step's output schemas for these input schemas, errors attributed to the step.
    pub(crate) fn planned_schemas(&self, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        let plan = || {
            self.step
                .output_schemas(StepContext::new(&self.name), inputs)
        };
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(plan))
            .unwrap_or_else(|panic| {
                Err(Error::execution(
                    self.name.clone(),
                    format!(
                        "panicked while planning: {}",
                        crate::error::panic_message(&panic)
                    ),
                ))
            })
            .map_err(|e| e.in_step(&self.name))?;
        ensure!(
            out.len() == self.step.outputs().len(),
            Error::Internal(format!(
                "step '{}' declared {} outputs but planned {}",
                self.name,
                self.step.outputs().len(),
                out.len()
            ))
        );
        Ok(out)
    }
}

/// Handle returned by [`Pipeline::add`] to connect the new step's inputs.
pub struct StepRef<'p> {
    node: &'p mut StepNode,
}

impl StepRef<'_> {
    /// Whether a run with a workspace may reuse this step's cached outputs
    /// (default `true`). With `false` the step runs every time, and its
    /// outputs are still stored so that they can be fetched later.
    pub fn reuse(self, reuse: bool) -> Self {
        self.node.reuse = reuse;
        self
    }

    /// Pin the step to a device (`Cpu`, `Cuda`, `Wgpu`, or `Auto` to let the
    /// planner choose) instead of the run's device. Only steps that compute
    /// ([`Step::uses_device`]) are placed; the others run on the CPU.
    pub fn device(self, device: DeviceChoice) -> Self {
        self.node.device = Some(device);
        self
    }

    /// Record that the step's keys refer to these spec parameters.
    pub(crate) fn reading_params(self, params: Vec<(String, String)>) -> Self {
        self.node.spec_params = params;
        self
    }

    /// Connect input `port` to `reference` (`"step"` or `"step.output"`).
    pub fn input(self, port: &str, reference: &str) -> Self {
        self.node
            .bindings
            .push((port.to_string(), reference.to_string()));
        self
    }

    /// Connect the step's input ports, in their declared order, to `references`.
    pub fn inputs<'r>(self, references: impl IntoIterator<Item = &'r str>) -> Self {
        let ports: Vec<String> = self
            .node
            .step
            .inputs()
            .iter()
            .map(|p| p.to_string())
            .collect();
        let mut refs = references.into_iter();
        for port in ports {
            match refs.next() {
                Some(r) => self.node.bindings.push((port, r.to_string())),
                None => break,
            }
        }
        for extra in refs {
            self.node
                .bindings
                .push((format!("#{}", self.node.bindings.len()), extra.to_string()));
        }
        self
    }
}

/// A validated pipeline: execution order, resolved edges and every output schema.
#[derive(Debug)]
pub struct Graph {
    /// Step indices in a topological order (ties broken by insertion order).
    pub(crate) order: Vec<usize>,
    /// For each step and input port (in port order): the producing step and its output index.
    pub(crate) edges: Vec<Vec<(usize, usize)>>,
    /// For each step, the schema of each output; `None` where it is only known
    /// after running (see [`Step::schema_depends_on_data`]).
    pub(crate) schemas: Vec<Vec<Option<SchemaRef>>>,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new(name: impl Into<String>) -> Self {
        Pipeline {
            name: name.into(),
            nodes: Vec::new(),
            variants: Vec::new(),
        }
    }

    /// The pipeline with the variants of the sweep it was compiled from.
    pub(crate) fn with_variants(mut self, variants: Vec<Variant>) -> Self {
        self.variants = variants;
        self
    }

    /// The variants of the sweep the pipeline was compiled from (a spec's
    /// `[sweep]`), each with the steps that compute it; empty for a
    /// pipeline that is not a sweep. A run of a sweep keeps going past a
    /// failed step: only the variants that read it fail.
    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Add a step; connect its inputs with the returned [`StepRef`].
    pub fn add(&mut self, name: impl Into<String>, step: impl Step + 'static) -> StepRef<'_> {
        self.add_shared(name, Arc::new(step))
    }

    /// Add a step held behind an `Arc` (for steps built dynamically, e.g. from a spec file).
    pub fn add_shared(&mut self, name: impl Into<String>, step: Arc<dyn Step>) -> StepRef<'_> {
        self.nodes.push(StepNode {
            name: name.into(),
            step,
            bindings: Vec::new(),
            reuse: true,
            device: None,
            spec_params: Vec::new(),
        });
        let node = self.nodes.last_mut().expect("just pushed");
        StepRef { node }
    }

    /// Names of the steps, in insertion order.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    /// Check names, references, acyclicity and schemas without running anything.
    ///
    /// # Errors
    /// [`Error::DuplicateStep`], [`Error::MissingInput`], [`Error::Cycle`] or
    /// [`Error::Schema`], each naming the step (and column) at fault.
    pub fn validate(&self) -> Result<Graph> {
        let index = self.index_names()?;
        let edges = self.resolve_edges(&index)?;
        let order = topological_order(&self.nodes, &edges)?;
        let mut schemas: Vec<Vec<Option<SchemaRef>>> = vec![Vec::new(); self.nodes.len()];
        for &i in &order {
            let node = &self.nodes[i];
            let inputs: Option<Vec<SchemaRef>> = edges[i]
                .iter()
                .map(|&(p, o)| schemas[p][o].clone())
                .collect();
            schemas[i] = match inputs {
                Some(inputs) => {
                    let out = node.planned_schemas(&inputs)?;
                    let known = !node.step.schema_depends_on_data();
                    out.into_iter().map(|s| known.then_some(s)).collect()
                }
                // Checked at run time, once the inputs exist.
                None => vec![None; node.step.outputs().len()],
            };
        }
        Ok(Graph {
            order,
            edges,
            schemas,
        })
    }

    /// For each step and input port: the producing step and its output
    /// index, without checking schemas (which may read files).
    pub(crate) fn edges(&self) -> Result<Vec<Vec<(usize, usize)>>> {
        self.resolve_edges(&self.index_names()?)
    }

    fn index_names(&self) -> Result<HashMap<&str, usize>> {
        let mut index = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            ensure!(
                !node.name.is_empty() && !node.name.contains('.'),
                Error::InvalidParameter {
                    step: node.name.clone(),
                    message: "step names must be non-empty and contain no '.', which separates a step from its output".into(),
                }
            );
            if index.insert(node.name.as_str(), i).is_some() {
                bail!(Error::DuplicateStep {
                    step: node.name.clone()
                });
            }
        }
        Ok(index)
    }

    fn resolve_edges(&self, index: &HashMap<&str, usize>) -> Result<Vec<Vec<(usize, usize)>>> {
        let mut edges = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let ports = node.step.inputs();
            for (port, reference) in &node.bindings {
                if !ports.contains(&port.as_str()) {
                    let reason = if ports.is_empty() {
                        format!("but a '{}' step takes no inputs", node.step.kind())
                    } else {
                        format!(
                            "but a '{}' step has no such input; its inputs are: {}",
                            node.step.kind(),
                            ports.join(", ")
                        )
                    };
                    bail!(missing_input(node, port, reference, reason));
                }
            }
            let resolved = ports
                .iter()
                .map(|port| self.resolve_input(node, port, index))
                .collect::<Result<Vec<_>>>()?;
            edges.push(resolved);
        }
        Ok(edges)
    }

    /// The `(producer, output index)` that input `port` of `node` is connected to.
    fn resolve_input(
        &self,
        node: &StepNode,
        port: &str,
        index: &HashMap<&str, usize>,
    ) -> Result<(usize, usize)> {
        let missing =
            |reference: &str, reason: String| missing_input(node, port, reference, reason);
        let bound: Vec<&String> = node
            .bindings
            .iter()
            .filter(|(p, _)| p == port)
            .map(|(_, r)| r)
            .collect();
        let reference = match bound.as_slice() {
            [r] => r.as_str(),
            [] => bail!(missing(
                "",
                "but nothing is connected to it; connect it to another step's output".into()
            )),
            [r, ..] => bail!(missing(
                r,
                "but the input is connected more than once".into()
            )),
        };
        let (step_name, output) = match reference.split_once('.') {
            Some((s, o)) => (s, Some(o)),
            None => (reference, None),
        };
        let Some(&producer) = index.get(step_name) else {
            let names: Vec<&str> = self.step_names().collect();
            bail!(missing(
                reference,
                format!(
                    "but there is no step named '{step_name}'; steps are: {}",
                    names.join(", ")
                )
            ));
        };
        let outputs = self.nodes[producer].step.outputs();
        let output_index = match output {
            Some(o) => outputs.iter().position(|x| *x == o).ok_or_else(|| {
                missing(
                    reference,
                    format!(
                        "but step '{step_name}' has no output '{o}'; its outputs are: {}",
                        outputs.join(", ")
                    ),
                )
            })?,
            None if outputs.len() == 1 => 0,
            None => bail!(missing(
                reference,
                format!(
                    "but step '{step_name}' has {} outputs; name one as {}",
                    outputs.len(),
                    outputs
                        .iter()
                        .map(|o| format!("'{step_name}.{o}'"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            )),
        };
        Ok((producer, output_index))
    }

    /// The steps in execution order with their inputs, outputs and output schemas.
    ///
    /// # Errors
    /// The errors of [`Pipeline::validate`].
    pub fn explain(&self) -> Result<String> {
        let graph = self.validate()?;
        let mut out = String::new();
        let _ = writeln!(out, "pipeline '{}': {} steps", self.name, self.nodes.len());
        for (position, &i) in graph.order.iter().enumerate() {
            let node = &self.nodes[i];
            let _ = writeln!(
                out,
                "{}. {} [{}] {}",
                position + 1,
                node.name,
                node.step.kind(),
                node.step.params()
            );
            for (port, &(p, o)) in node.step.inputs().iter().zip(&graph.edges[i]) {
                let _ = writeln!(
                    out,
                    "     in  {port} <- {}.{}",
                    self.nodes[p].name,
                    self.nodes[p].step.outputs()[o]
                );
            }
            for (output, schema) in node.step.outputs().iter().zip(&graph.schemas[i]) {
                match schema {
                    Some(schema) => {
                        let columns: Vec<String> = schema
                            .fields()
                            .iter()
                            .map(|f| format!("{}: {}", f.name(), short_type(f.data_type())))
                            .collect();
                        let _ = writeln!(out, "     out {output}: ({})", columns.join(", "));
                    }
                    None => {
                        let _ = writeln!(out, "     out {output}: (columns known after fitting)");
                    }
                }
            }
        }
        Ok(out)
    }
}

fn short_type(dt: &arrow_schema::DataType) -> String {
    crate::ir::DType::from_arrow(dt).map_or_else(|| dt.to_string(), |d| d.name().to_string())
}

/// Kahn's algorithm with insertion-order tie-breaking; reports a cycle path on failure.
fn topological_order(nodes: &[StepNode], edges: &[Vec<(usize, usize)>]) -> Result<Vec<usize>> {
    let n = nodes.len();
    let mut indegree = vec![0usize; n];
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, inputs) in edges.iter().enumerate() {
        for &(p, _) in inputs {
            indegree[i] += 1;
            consumers[p].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &c in &consumers[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.insert(c);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk producer edges from a step left on the cycle until a step repeats.
    let start = (0..n)
        .find(|&i| indegree[i] > 0)
        .expect("a step is left over");
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = edges[current]
            .iter()
            .map(|&(p, _)| p)
            .find(|&p| indegree[p] > 0)
            .expect("a step on a cycle has a producer on it");
        if let Some(pos) = path.iter().position(|&s| s == next) {
            let mut cycle: Vec<String> = path[pos..]
                .iter()
                .rev()
                .map(|&s| nodes[s].name.clone())
                .collect();
            // Data flows from `next` back round to `next`.
            cycle.insert(0, nodes[next].name.clone());
            bail!(Error::Cycle { path: cycle });
        }
        path.push(next);
        current = next;
    }
}

/// The error for input `input` of `node`, connected to `reference`, that cannot be resolved.
fn missing_input(node: &StepNode, input: &str, reference: &str, reason: String) -> Error {
    Error::MissingInput {
        step: node.name.clone(),
        input: input.to_string(),
        reference: reference.to_string(),
        reason,
    }
}

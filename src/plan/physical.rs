//! The physical plan: every step with its device, fused groups, transfers
//! and estimated costs; rendered as text (`fuseflow explain`) and as DOT.

use std::fmt::{self, Write as _};

use super::cost::{Calibration, format_seconds};
use super::fuse::{FusedGroup, MaterializePolicy, Materialized, fuse};
use super::logical::{LogicalOp, lower};
use super::place::{Placement, place};
use super::siblings::siblings;
use crate::backend::DeviceSet;
use crate::backend::{DeviceChoice, DeviceKind};
use crate::data::format_bytes;
use crate::pipeline::OpKind;
use crate::pipeline::graph::{Graph, Pipeline};

/// What the planner needs besides the pipeline.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// The run's device for steps that are not pinned.
    pub device: DeviceChoice,
    /// The cost model's constants.
    pub calibration: Calibration,
    /// The devices that opened.
    pub devices: DeviceSet,
    /// Which intermediate tables must exist after the run.
    pub policy: MaterializePolicy,
    /// Whether chains of row-local steps fuse at all, and sibling training
    /// steps train together: off, every step runs by itself.
    pub fuse: bool,
    /// Bytes of data the run may hold in memory
    /// ([`RunOptions::memory_budget`](crate::RunOptions::memory_budget)):
    /// a step that needs its whole input, estimated larger, gets a notice.
    pub memory_budget: u64,
}

/// One step in the physical plan.
#[derive(Clone, Debug)]
pub struct PlanNode {
    /// The step's index in the pipeline.
    pub step: usize,
    /// The step's name.
    pub name: String,
    /// The step's kind.
    pub kind: String,
    /// Its logical op.
    pub op: OpKind,
    /// Where it runs and why (for a fused group: the group's placement).
    pub placement: Placement,
    /// The index of its fused group in [`PhysicalPlan::groups`], if any.
    pub group: Option<usize>,
    /// Whether its outputs exist as tables after the run.
    pub materialized: Materialized,
    /// Its inputs as `step.output`.
    pub inputs: Vec<String>,
    /// Estimated bytes of its data input and of its outputs.
    pub bytes: (Option<u64>, Option<u64>),
}

/// The plan a run follows.
#[derive(Clone, Debug)]
pub struct PhysicalPlan {
    /// The pipeline's name.
    pub pipeline: String,
    /// The steps in execution order.
    pub nodes: Vec<PlanNode>,
    /// Chains of row-local steps that run as one kernel each.
    pub groups: Vec<FusedGroup>,
    /// Sets of training steps that train together, sharing their passes
    /// over the data (see [`TrainsTogether`](crate::pipeline::TrainsTogether)),
    /// each in pipeline order.
    pub siblings: Vec<Vec<usize>>,
    /// Things the user should know about the plan as a whole ("no GPU: CPU plan").
    pub notices: Vec<String>,
    /// Where the cost model's constants come from.
    pub calibration: String,
}

impl PhysicalPlan {
    /// Plan a validated pipeline: lower, fuse, place.
    pub fn build(pipeline: &Pipeline, graph: &Graph, options: &PlanOptions) -> PhysicalPlan {
        let ops = lower(pipeline, graph, options.device);
        let (mut groups, mut materialized) = fuse(&ops, &options.policy);
        if !options.fuse {
            groups.clear();
            for m in &mut materialized {
                if matches!(m, Materialized::Fused { .. }) {
                    *m = Materialized::Boundary;
                }
            }
        }
        let by_step = |s: usize| {
            ops.iter()
                .find(|o| o.step == s)
                .expect("every step lowered")
        };
        let mut placements: Vec<Option<Placement>> = vec![None; pipeline.nodes.len()];
        for group in &groups {
            let span = group_span(group, &by_step);
            let placement = place(&span, &options.devices, &options.calibration);
            for &m in &group.members {
                placements[m] = Some(placement.clone());
            }
        }
        let nodes: Vec<PlanNode> = ops
            .iter()
            .map(|op| PlanNode {
                step: op.step,
                name: op.name.clone(),
                kind: op.kind.clone(),
                op: op.op,
                placement: placements[op.step]
                    .clone()
                    .unwrap_or_else(|| place(op, &options.devices, &options.calibration))
                    .noted_for(op),
                group: groups.iter().position(|g| g.members.contains(&op.step)),
                materialized: materialized[op.step].clone(),
                inputs: op
                    .inputs
                    .iter()
                    .map(|&(p, o)| {
                        let producer = &pipeline.nodes[p];
                        format!("{}.{}", producer.name, producer.step.outputs()[o])
                    })
                    .collect(),
                bytes: (op.bytes_in, op.bytes_out),
            })
            .collect();
        let notices = plan_notices(&ops, &groups, options);
        let siblings = match options.fuse {
            true => siblings(pipeline, graph, &nodes),
            false => Vec::new(),
        };
        PhysicalPlan {
            pipeline: pipeline.name().to_string(),
            nodes,
            groups,
            siblings,
            notices,
            calibration: options.calibration.source.clone(),
        }
    }

    /// The node of pipeline step `step`.
    pub fn node(&self, step: usize) -> Option<&PlanNode> {
        self.nodes.iter().find(|n| n.step == step)
    }

    /// Bytes copied to devices and back: `(kind, to the device, to the host)`
    /// for each GPU the plan uses.
    pub fn transfers(&self) -> Vec<(DeviceKind, u64, u64)> {
        let mut out: Vec<(DeviceKind, u64, u64)> = Vec::new();
        for unit in self.units() {
            let device = unit[0].placement.device;
            if device == DeviceKind::Cpu {
                continue;
            }
            let up = unit[0].bytes.0.unwrap_or(0);
            let down = unit[unit.len() - 1].bytes.1.unwrap_or(0);
            match out.iter_mut().find(|(k, _, _)| *k == device) {
                Some(entry) => {
                    entry.1 += up;
                    entry.2 += down;
                }
                None => out.push((device, up, down)),
            }
        }
        out
    }

    /// What runs as one unit: a fused group's members, or one step.
    fn units(&self) -> Vec<Vec<&PlanNode>> {
        let mut units: Vec<Vec<&PlanNode>> = Vec::new();
        for node in &self.nodes {
            match node.group {
                Some(g) if node.step != self.groups[g].members[0] => {}
                Some(g) => units.push(
                    self.groups[g]
                        .members
                        .iter()
                        .filter_map(|&m| self.node(m))
                        .collect(),
                ),
                None => units.push(vec![node]),
            }
        }
        units
    }

    /// The plan as a Graphviz graph: a box per step (its kind, op and
    /// device), a dashed cluster per fused group, dotted edges for tables
    /// that are never materialized, and red edges where data crosses devices.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", quote(&self.pipeline));
        let _ = writeln!(out, "  rankdir=LR;");
        let _ = writeln!(out, "  node [shape=box, fontname=\"monospace\"];");
        for (g, group) in self.groups.iter().enumerate() {
            let device = self.node(group.tail()).map(|n| n.placement.device);
            let _ = writeln!(out, "  subgraph cluster_group{} {{", g + 1);
            let _ = writeln!(
                out,
                "    label=\"fused group {}: one kernel on {}\";",
                g + 1,
                device.map_or("?", DeviceKind::name)
            );
            let _ = writeln!(out, "    style=dashed;");
            for &m in &group.members {
                if let Some(node) = self.node(m) {
                    let _ = writeln!(out, "    {};", quote(&node.name));
                }
            }
            let _ = writeln!(out, "  }}");
        }
        for node in &self.nodes {
            let label = format!(
                "{}\\n[{}] {}\\n{}",
                escape(&node.name),
                escape(&node.kind),
                node.op,
                node.placement.device
            );
            let _ = writeln!(out, "  {} [label=\"{label}\"];", quote(&node.name));
        }
        for node in &self.nodes {
            for input in &node.inputs {
                let (producer, port) = input.split_once('.').unwrap_or((input, ""));
                let Some(from) = self.nodes.iter().find(|n| n.name == producer) else {
                    continue;
                };
                let mut attrs = vec![format!("label=\"{}\"", escape(port))];
                if matches!(from.materialized, Materialized::Fused { .. }) {
                    attrs.push("style=dotted".into());
                }
                if from.placement.device != node.placement.device {
                    attrs.push("color=red".into());
                }
                let _ = writeln!(
                    out,
                    "  {} -> {} [{}];",
                    quote(&from.name),
                    quote(&node.name),
                    attrs.join(", ")
                );
            }
        }
        out.push_str("}\n");
        out
    }
}

/// What the user should know about the plan as a whole: steps that will
/// hold more than the memory budget, no GPU for `auto` work, software
/// adapters `auto` leaves alone.
fn plan_notices(ops: &[LogicalOp], groups: &[FusedGroup], options: &PlanOptions) -> Vec<String> {
    let auto_work = ops
        .iter()
        .any(|o| o.uses_device && o.device == DeviceChoice::Auto);
    let mut notices = Vec::new();
    // Steps that hold their whole input: neither streaming it nor
    // fused (into a kernel that streams it).
    for op in ops {
        let in_group = groups.iter().any(|g| g.members.contains(&op.step));
        if op.streams || in_group || op.inputs.is_empty() {
            continue;
        }
        if let Some(bytes) = op.bytes_in.filter(|&b| b > options.memory_budget) {
            notices.push(format!(
                "'{}' ({}) holds its data whole in memory, ~{}, over the memory budget of {}; it runs with that much resident (fits without quantiles, writers and fused chains into them stream instead)",
                op.name,
                op.kind,
                format_bytes(bytes),
                format_bytes(options.memory_budget)
            ));
        }
    }
    if auto_work && options.devices.hardware_gpus().next().is_none() {
        notices.push("no GPU: CPU plan".to_string());
    }
    if auto_work {
        let software = options
            .devices
            .software_gpus()
            .map(|gpu| (gpu.info().kind, gpu.info().to_string()))
            .chain(
                options
                    .devices
                    .unopened_software()
                    .map(|(kind, name)| (*kind, format!("{kind}: {name} (software)"))),
            );
        for (kind, gpu) in software {
            notices.push(format!(
                "{gpu} is a software adapter, no faster than the CPU: auto leaves it alone; pin steps or pass --device {kind} to use it"
            ));
        }
    }
    notices
}

/// An op spanning a fused group: the head's input, the tail's output, every
/// member's arithmetic and types.
fn group_span<'a>(group: &FusedGroup, by_step: &dyn Fn(usize) -> &'a LogicalOp) -> LogicalOp {
    let head = by_step(group.members[0]);
    // Placed as its kernel: a sink at the end (a writer) only adds work.
    let kernel_tail = *group
        .row_local()
        .last()
        .expect("a group has a row-local member");
    let mut span = by_step(kernel_tail).clone();
    span.bytes_in = head.bytes_in;
    span.flops = group.members.iter().map(|&m| by_step(m).flops).sum();
    // A group that ends in a projection still computes on a device.
    span.uses_device = group.members.iter().any(|&m| by_step(m).uses_device);
    for &m in &group.members {
        for t in &by_step(m).dtypes {
            if !span.dtypes.contains(t) {
                span.dtypes.push(*t);
            }
        }
    }
    span
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quote(text: &str) -> String {
    format!("\"{}\"", escape(text))
}

fn size(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "size unknown".into(),
        |b| format!("~{}", format_bytes(b)),
    )
}

/// The text `fuseflow explain` prints.
impl fmt::Display for PhysicalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "physical plan for '{}': {} steps, fused groups: {} (costs: {})",
            self.pipeline,
            self.nodes.len(),
            self.groups.len(),
            self.calibration
        )?;
        for notice in &self.notices {
            writeln!(f, "notice: {notice}")?;
        }
        for (position, node) in self.nodes.iter().enumerate() {
            self.write_node(f, position, node)?;
        }
        let transfers = self.transfers();
        if transfers.is_empty() {
            writeln!(f, "transfers: none")?;
        }
        for (device, up, down) in transfers {
            writeln!(
                f,
                "transfers: {} host -> {device}, {} {device} -> host",
                format_bytes(up),
                format_bytes(down)
            )?;
        }
        let total: f64 = self
            .units()
            .iter()
            .filter_map(|u| u[0].placement.estimate.map(|e| e.seconds))
            .sum();
        writeln!(f, "estimated device work: {}", format_seconds(total))
    }
}

impl PhysicalPlan {
    /// One node of `explain`: the fused group it starts, if any, then its
    /// line, device, estimate, inputs and output.
    fn write_node(
        &self,
        f: &mut fmt::Formatter<'_>,
        position: usize,
        node: &PlanNode,
    ) -> fmt::Result {
        let group = node.group.map(|g| (g, &self.groups[g]));
        if let Some((g, group)) = group
            && group.members[0] == node.step
        {
            let names: Vec<&str> = group
                .members
                .iter()
                .filter_map(|&m| self.node(m).map(|n| n.name.as_str()))
                .collect();
            write!(
                f,
                "fused group {}: {} -> one kernel on {}",
                g + 1,
                names.join(" -> "),
                node.placement.device
            )?;
            match &node.placement.estimate {
                Some(e) => writeln!(f, ", est. {}", e.cost())?,
                None => writeln!(f)?,
            }
        }
        let siblings = (self.siblings.iter().enumerate()).find(|(_, set)| set.contains(&node.step));
        if let Some((k, set)) = siblings
            && set[0] == node.step
        {
            let names: Vec<&str> = (set.iter())
                .filter_map(|&m| self.node(m).map(|n| n.name.as_str()))
                .collect();
            writeln!(
                f,
                "sibling fits {}: {} -> trained together on {}, sharing each pass over the data",
                k + 1,
                names.join(", "),
                node.placement.device
            )?;
        }
        let member = match (node.group, siblings) {
            (Some(g), _) => format!(" (fused group {})", g + 1),
            (None, Some((k, _))) => format!(" (sibling fits {})", k + 1),
            (None, None) => String::new(),
        };
        writeln!(
            f,
            "{:>2}. {} [{}] {}{member}",
            position + 1,
            node.name,
            node.kind,
            node.op
        )?;
        let pad = "    ";
        writeln!(
            f,
            "{pad}device {} ({})",
            node.placement.device, node.placement.reason
        )?;
        if group.is_none()
            && !node.placement.reason.contains("est.")
            && let Some(e) = &node.placement.estimate
        {
            writeln!(f, "{pad}est.   {}", e.cost())?;
        }
        for input in &node.inputs {
            writeln!(f, "{pad}in     {input}")?;
        }
        writeln!(
            f,
            "{pad}out    {}, {}",
            size(node.bytes.1),
            node.materialized
        )?;
        Ok(())
    }
}

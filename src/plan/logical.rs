//! Lowering: each pipeline step becomes one logical op.

use arrow_schema::SchemaRef;

use super::cost::Work;
use crate::backend::DeviceChoice;
use crate::ir::DType;
use crate::pipeline::OpKind;
use crate::pipeline::graph::{Graph, Pipeline};

/// Bytes assumed for a small fitted table (statistics, a model, metrics).
const SMALL_TABLE_BYTES: u64 = 4 << 10;

/// One step as the planner sees it.
#[derive(Clone, Debug)]
pub struct LogicalOp {
    /// The step's index in the pipeline.
    pub step: usize,
    /// The step's name.
    pub name: String,
    /// The step's kind (`"scale"`).
    pub kind: String,
    /// What kind of work it is.
    pub op: OpKind,
    /// Whether it is row-local, so that it can fuse with its neighbours.
    pub row_local: bool,
    /// Whether it takes its data input as a stream (a fit, a writer), so
    /// that a chain of row-local steps before it can run into it batch by
    /// batch.
    pub streams: bool,
    /// Whether it computes on a device (others always run on the CPU).
    pub uses_device: bool,
    /// The device it asks for: its pin, else the run's device. Resolved here
    /// once; placement turns it into a device.
    pub device: DeviceChoice,
    /// Whether `device` is the step's own pin rather than the run's device.
    pub pinned: bool,
    /// For each input port: the producing step and its output index.
    pub inputs: Vec<(usize, usize)>,
    /// How many input ports, over all steps, read this step's outputs.
    pub consumers: usize,
    /// Estimated bytes of its first (data) input; `None` when unknown.
    pub bytes_in: Option<u64>,
    /// Estimated bytes of its outputs; `None` when unknown.
    pub bytes_out: Option<u64>,
    /// The types it computes on, for device support (no f64 on wgpu).
    pub dtypes: Vec<DType>,
    /// Estimated arithmetic operations, from the op's kind and its input's
    /// shape (0 when the input's size is unknown): `FLOPS_PER_VALUE` per
    /// input value for fits and maps, `2 d` per row for scoring a model on
    /// `d` columns, and `2 d²` per row and pass, over `TRAINING_PASSES`
    /// passes, for training (a Newton Hessian or a network's products).
    pub flops: f64,
}

impl LogicalOp {
    /// What the cost model counts for this op, moving `bytes_in` and `bytes_out`.
    pub fn work(&self, bytes_in: u64, bytes_out: u64) -> Work {
        Work {
            bytes_in,
            bytes_out,
            flops: self.flops,
            launches: if self.op == OpKind::Train {
                TRAINING_PASSES * LAUNCHES_PER_PASS
            } else {
                1.0
            },
        }
    }
}

/// Arithmetic per input value of statistics and row-local maps.
pub const FLOPS_PER_VALUE: f64 = 4.0;
/// Passes over the data assumed for training (Newton iterations, epochs).
pub const TRAINING_PASSES: f64 = 20.0;
/// Kernels a training pass launches and waits for (products, the head, the
/// update or solve).
pub const LAUNCHES_PER_PASS: f64 = 5.0;

/// Lower a validated pipeline: one op per step, in the graph's execution
/// order, with sizes propagated from the sources' size hints.
pub fn lower(pipeline: &Pipeline, graph: &Graph, default: DeviceChoice) -> Vec<LogicalOp> {
    let nodes = &pipeline.nodes;
    let mut consumers = vec![0usize; nodes.len()];
    for inputs in &graph.edges {
        for &(p, _) in inputs {
            consumers[p] += 1;
        }
    }
    let mut out_bytes: Vec<Option<u64>> = vec![None; nodes.len()];
    let mut ops = Vec::with_capacity(nodes.len());
    for &i in &graph.order {
        let node = &nodes[i];
        let step = &node.step;
        let op = step.op_kind();
        let data = graph.edges[i].first().copied();
        let bytes_in = data.and_then(|(p, _)| out_bytes[p]);
        let bytes_out = match (op, data) {
            (_, None) => step.size_hint(),
            // Fitting and training write small tables (statistics, a model).
            (OpKind::Fit | OpKind::Train | OpKind::Metric, _) => Some(SMALL_TABLE_BYTES),
            _ => bytes_in,
        };
        out_bytes[i] = bytes_out;
        let input_schema = data.and_then(|(p, o)| graph.schemas[p][o].clone());
        let row_local = step.row_local().is_some();
        let dtypes = computed_types(
            input_schema.as_ref(),
            graph.schemas[i].first().cloned().flatten().as_ref(),
            row_local,
        );
        let flops = match (bytes_in, input_schema.as_ref()) {
            (Some(bytes), Some(schema)) => flops(op, bytes, schema),
            _ => 0.0,
        };
        ops.push(LogicalOp {
            step: i,
            name: node.name.clone(),
            kind: step.kind().to_string(),
            op,
            row_local,
            streams: step.streams_input(),
            uses_device: step.uses_device(),
            device: node.device.unwrap_or(default),
            pinned: node.device.is_some(),
            inputs: graph.edges[i].clone(),
            consumers: consumers[i],
            bytes_in,
            bytes_out,
            dtypes,
            flops,
        });
    }
    ops
}

/// Estimated arithmetic of an op of kind `op` reading `bytes` of a table with `schema`.
fn flops(op: OpKind, bytes: u64, schema: &SchemaRef) -> f64 {
    let widths: Vec<usize> = schema
        .fields()
        .iter()
        .filter_map(|f| f.data_type().primitive_width())
        .collect();
    let row_bytes: usize = widths.iter().sum();
    if row_bytes == 0 {
        return 0.0;
    }
    let rows = bytes as f64 / row_bytes as f64;
    let d = widths.len() as f64;
    match op {
        OpKind::Fit | OpKind::Map => FLOPS_PER_VALUE * rows * d,
        OpKind::Train => TRAINING_PASSES * rows * 2.0 * d * d,
        OpKind::Model => rows * 2.0 * d,
        OpKind::Io | OpKind::Metric => 0.0,
    }
}

/// The types an op computes on: for a row-local op, those of the columns it
/// adds or changes; for another, those of its data input's columns.
fn computed_types(
    input: Option<&SchemaRef>,
    output: Option<&SchemaRef>,
    row_local: bool,
) -> Vec<DType> {
    let fields = match (input, output, row_local) {
        (Some(input), Some(output), true) => output
            .fields()
            .iter()
            .filter(|f| input.field_with_name(f.name()).ok() != Some(f.as_ref()))
            .cloned()
            .collect(),
        (Some(input), _, false) => input.fields().to_vec(),
        _ => Vec::new(),
    };
    let mut dtypes: Vec<DType> = Vec::new();
    for f in fields {
        // Strings an op only passes through do not keep it off a GPU.
        if let Some(d) = DType::from_arrow(f.data_type())
            && (row_local || d != DType::Utf8)
            && !dtypes.contains(&d)
        {
            dtypes.push(d);
        }
    }
    dtypes
}

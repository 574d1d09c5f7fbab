//! A set of named expressions over one input schema: the unit of fused evaluation.

use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};

use super::arena::{ExprArena, ExprId, Node};
use super::dtype::DType;
use super::expr::Expr;
use crate::error::{Error, Result, ensure};

/// Named, type-checked expressions over one input schema, sharing one arena.
///
/// A backend evaluates a whole projection as one fused kernel: one read of the
/// input columns it uses, one write of each output, and no intermediate array.
#[derive(Clone, Debug)]
pub struct Projection {
    input: SchemaRef,
    arena: ExprArena,
    outputs: Vec<(String, ExprId)>,
}

impl Projection {
    /// Type-check `exprs` against `input`.
    ///
    /// # Errors
    /// [`Error::Type`] for an expression that does not type-check, and
    /// [`Error::Type`] naming the output when two outputs share a name.
    pub fn try_new(input: SchemaRef, exprs: &[(String, Expr)]) -> Result<Self> {
        let mut arena = ExprArena::new();
        let mut outputs: Vec<(String, ExprId)> = Vec::with_capacity(exprs.len());
        for (name, expr) in exprs {
            ensure!(
                !outputs.iter().any(|(n, _)| n == name),
                Error::Type {
                    expr: expr.to_string(),
                    message: format!("output column '{name}' is defined twice")
                }
            );
            let id = arena.add_expr(expr, &input)?;
            outputs.push((name.clone(), id));
        }
        Ok(Projection {
            input,
            arena,
            outputs,
        })
    }

    /// The schema the expressions read.
    pub fn input_schema(&self) -> &SchemaRef {
        &self.input
    }

    /// The column of `batch` that input field `index` names.
    ///
    /// # Errors
    /// [`Error::Schema`] naming the column when the batch lacks it.
    pub fn input_column<'a>(
        &self,
        batch: &'a arrow_array::RecordBatch,
        index: usize,
    ) -> Result<&'a arrow_array::ArrayRef> {
        let name = self.input.field(index).name();
        batch.column_by_name(name).ok_or_else(|| Error::Schema {
            step: "<expression>".into(),
            column: name.clone(),
            message: "the column is missing from this batch".into(),
        })
    }

    /// The typed nodes.
    pub fn arena(&self) -> &ExprArena {
        &self.arena
    }

    /// The named roots, in output order.
    pub fn outputs(&self) -> &[(String, ExprId)] {
        &self.outputs
    }

    /// Which arena nodes the outputs depend on, by node index (type checking
    /// can leave nodes no output reads, e.g. a literal before its coercion).
    pub fn live_nodes(&self) -> Vec<bool> {
        let mut live = vec![false; self.arena.len()];
        for (_, root) in &self.outputs {
            live[root.index()] = true;
        }
        for id in self.arena.ids().collect::<Vec<_>>().into_iter().rev() {
            if live[id.index()] {
                for child in self.arena.node(id).children() {
                    live[child.index()] = true;
                }
            }
        }
        live
    }

    /// Which input columns (by index) the outputs read.
    pub fn columns_read(&self) -> Vec<bool> {
        let live = self.live_nodes();
        let mut reads = vec![false; self.input.fields().len()];
        for id in self.arena.ids().filter(|id| live[id.index()]) {
            if let Node::Column(c) = self.arena.node(id) {
                reads[*c] = true;
            }
        }
        reads
    }

    /// The schema of the evaluated result (every column nullable).
    pub fn output_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .outputs
            .iter()
            .map(|(name, id)| Field::new(name, self.arena.dtype(*id).to_arrow(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The same expressions computed in f32 wherever they compute in f64: f64
    /// input columns are read as f32, every f64 node becomes f32 and f64
    /// outputs come out as f32. For devices without f64 (WGSL), when the user
    /// accepts the lost precision. `None` when no output depends on an f64 value.
    pub fn with_f64_as_f32(&self) -> Option<Projection> {
        let narrow = |dtype: DType| match dtype {
            DType::Float64 => DType::Float32,
            other => other,
        };
        let live = self.live_nodes();
        let computes_f64 = self
            .arena
            .ids()
            .any(|id| live[id.index()] && self.arena.dtype(id) == DType::Float64);
        if !computes_f64 {
            return None;
        }
        let fields: Vec<Field> = self
            .input
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                arrow_schema::DataType::Float64 => f
                    .as_ref()
                    .clone()
                    .with_data_type(arrow_schema::DataType::Float32),
                _ => f.as_ref().clone(),
            })
            .collect();
        // Narrowing can make two nodes identical (an f32 literal and its f64
        // twin), which the arena then stores once: children are re-pointed
        // through `ids`, old id to new.
        let mut arena = ExprArena::new();
        let mut ids: Vec<ExprId> = Vec::with_capacity(self.arena.len());
        for id in self.arena.ids() {
            let node = self.arena.node(id).map_children(|c| ids[c.index()]);
            let dtype = narrow(self.arena.dtype(id));
            ids.push(match node {
                // A widening to f64 became a cast from f32 to f32: drop it.
                Node::Cast(a) if arena.dtype(a) == dtype => a,
                node => arena.push(node, dtype),
            });
        }
        Some(Projection {
            input: Arc::new(Schema::new_with_metadata(
                fields,
                self.input.metadata().clone(),
            )),
            arena,
            outputs: self
                .outputs
                .iter()
                .map(|(name, id)| (name.clone(), ids[id.index()]))
                .collect(),
        })
    }

    /// The projection split into single-operator projections, to be evaluated
    /// one after the other with every intermediate materialized: the unfused
    /// form that a fused kernel must agree with (bit for bit on the CPU).
    pub fn op_by_op(&self) -> OpByOp {
        let live = self.live_nodes();
        let is_root = |id: ExprId| self.outputs.iter().any(|(_, root)| *root == id);
        let mut fields: Vec<Field> = self
            .input
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let inputs = fields.len();
        // The step that computed each node; columns and literals are read in place.
        let mut step_of: Vec<Option<usize>> = vec![None; self.arena.len()];
        let mut steps = Vec::new();
        for id in self.arena.ids().filter(|id| live[id.index()]) {
            let leaf = matches!(self.arena.node(id), Node::Column(_) | Node::Literal(_));
            if leaf && !is_root(id) {
                continue;
            }
            let mut arena = ExprArena::new();
            let node = self.arena.node(id).map_children(|child| {
                let operand = match (step_of[child.index()], self.arena.node(child)) {
                    (Some(step), _) => Node::Column(inputs + step),
                    (None, leaf) => leaf.clone(),
                };
                arena.push(operand, self.arena.dtype(child))
            });
            let dtype = self.arena.dtype(id);
            let root = arena.push(node, dtype);
            let name = format!("#{}", steps.len());
            steps.push(Projection {
                input: Arc::new(Schema::new(fields.clone())),
                arena,
                outputs: vec![(name.clone(), root)],
            });
            fields.push(Field::new(name, dtype.to_arrow(), true));
            step_of[id.index()] = Some(steps.len() - 1);
        }
        let outputs = self
            .outputs
            .iter()
            .map(|(_, root)| step_of[root.index()].expect("every root is computed by a step"))
            .collect();
        OpByOp { steps, outputs }
    }
}

/// A [`Projection`] as single-operator projections ([`Projection::op_by_op`]).
#[derive(Clone, Debug)]
pub struct OpByOp {
    /// Step `k` reads the projection's input columns followed by the columns
    /// computed by steps `0..k` (named `#0`, `#1`, ...) and computes one column.
    pub steps: Vec<Projection>,
    /// For each output of the projection, in order, the step that computes it.
    pub outputs: Vec<usize>,
}

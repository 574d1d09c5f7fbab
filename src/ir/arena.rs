//! The typed expression arena: what the planner, hashing and backends work on.
//!
//! Nodes live in one `Vec` and refer to each other by [`ExprId`]; a child always
//! has a smaller id than its parent, so iterating in id order is a topological
//! order. Identical nodes are stored once (hash-consing), which gives
//! common-subexpression elimination for free: `fill_null(x, m)` used three times
//! is computed once per row.

use std::collections::HashMap;

use super::dtype::DType;
use super::ops::{BinaryOp, UnaryOp};

/// Index of a node in an [`ExprArena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub(crate) u32);

impl ExprId {
    /// The position of the node in the arena.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A constant, stored with its final dtype (literals are coerced while type checking).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Const {
    /// Boolean.
    Bool(bool),
    /// Any integer dtype.
    Int(i64),
    /// Any float dtype, as the bits of an f64 so that nodes can be hashed.
    Float(u64),
    /// String.
    Str(String),
}

impl Const {
    /// The numeric value as f64 (bools as 0/1); `None` for strings.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Const::Bool(b) => Some(f64::from(u8::from(*b))),
            Const::Int(i) => Some(*i as f64),
            Const::Float(bits) => Some(f64::from_bits(*bits)),
            Const::Str(_) => None,
        }
    }
}

/// One node of the arena. Every operand already has the dtype the operator
/// computes in: the type checker inserts explicit [`Node::Cast`]s.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// Column `index` of the input schema.
    Column(usize),
    /// A constant.
    Literal(Const),
    /// A one-operand operator.
    Unary(UnaryOp, ExprId),
    /// A two-operand operator; both operands share a dtype.
    Binary(BinaryOp, ExprId, ExprId),
    /// `clip(x, lo, hi)`, all three of one dtype.
    Clip(ExprId, ExprId, ExprId),
    /// `is_null(x)`.
    IsNull(ExprId),
    /// `fill_null(x, value)`, both of one dtype.
    FillNull(ExprId, ExprId),
    /// `if_else(condition, then, otherwise)`.
    IfElse(ExprId, ExprId, ExprId),
    /// Conversion of the operand to the node's dtype.
    Cast(ExprId),
}

impl Node {
    /// The operands, in order.
    pub fn children(&self) -> Vec<ExprId> {
        match *self {
            Node::Column(_) | Node::Literal(_) => vec![],
            Node::Unary(_, a) | Node::IsNull(a) | Node::Cast(a) => vec![a],
            Node::Binary(_, a, b) | Node::FillNull(a, b) => vec![a, b],
            Node::Clip(a, b, c) | Node::IfElse(a, b, c) => vec![a, b, c],
        }
    }

    /// The same node with each operand replaced by `f(operand)`.
    pub fn map_children(&self, mut f: impl FnMut(ExprId) -> ExprId) -> Node {
        match self.clone() {
            leaf @ (Node::Column(_) | Node::Literal(_)) => leaf,
            Node::Unary(op, a) => Node::Unary(op, f(a)),
            Node::IsNull(a) => Node::IsNull(f(a)),
            Node::Cast(a) => Node::Cast(f(a)),
            Node::Binary(op, a, b) => Node::Binary(op, f(a), f(b)),
            Node::FillNull(a, b) => Node::FillNull(f(a), f(b)),
            Node::Clip(a, b, c) => Node::Clip(f(a), f(b), f(c)),
            Node::IfElse(a, b, c) => Node::IfElse(f(a), f(b), f(c)),
        }
    }
}

/// A typed, deduplicated store of expression nodes.
#[derive(Clone, Debug, Default)]
pub struct ExprArena {
    nodes: Vec<Node>,
    dtypes: Vec<DType>,
    dedup: HashMap<(Node, DType), ExprId>,
}

impl ExprArena {
    /// An empty arena.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert a node of the given dtype, or return the id of an identical one.
    pub fn push(&mut self, node: Node, dtype: DType) -> ExprId {
        if let Some(&id) = self.dedup.get(&(node.clone(), dtype)) {
            return id;
        }
        let id = ExprId(self.nodes.len() as u32);
        self.nodes.push(node.clone());
        self.dtypes.push(dtype);
        self.dedup.insert((node, dtype), id);
        id
    }

    /// The node behind an id.
    pub fn node(&self, id: ExprId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The dtype of a node's values.
    pub fn dtype(&self, id: ExprId) -> DType {
        self.dtypes[id.index()]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the arena holds no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All ids, children before parents.
    pub fn ids(&self) -> impl Iterator<Item = ExprId> + use<> {
        (0..self.nodes.len() as u32).map(ExprId)
    }
}

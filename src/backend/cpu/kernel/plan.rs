//! Which arena nodes become which block instructions.
//!
//! Most nodes run as one instruction each. A few shapes that dominate
//! preparation and linear scoring run as one *superinstruction* instead, so the
//! block makes one pass through L1 where it would make up to five:
//!
//! - [`Affine`]: `clip((fill_null(x, f) ± a) (*|/) b, lo, hi)` (the fill and
//!   the clip optional), e.g. a z-score with mean filling and clipping;
//! - `MulAdd`: `acc + w * x` with a constant weight, the step of a dot product;
//! - `Dot`: `acc + w_1 * affine_1(x_1) + ... + w_k * affine_k(x_k)`, up to
//!   [`MAX_TERMS`] terms of one shape, e.g. a linear score over standardized
//!   features. The kernel walks the rows once for all `k` terms, keeping the
//!   partial sums in vector registers and streaming `k` columns side by side.
//!
//! A node is absorbed into a superinstruction only when nothing else reads it,
//! and only for float types. Every operation is still computed separately and
//! in the same order, so results are bit-identical to one instruction per node.

use crate::ir::{BinaryOp, Const, DType, ExprArena, ExprId, Node, Projection};

/// An affine transform of `x` by constants, optionally clipped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Affine {
    pub x: ExprId,
    /// `fill_null(x, fill)` first.
    pub fill: Option<f64>,
    /// `x - shift` rather than `x + shift`.
    pub subtract: bool,
    pub shift: f64,
    /// `/ scale` rather than `* scale`.
    pub divide: bool,
    pub scale: f64,
    pub clip: Option<(f64, f64)>,
}

/// Most terms one [`BlockOp::Dot`] sums: enough streams to keep the memory system
/// busy, few enough that the prefetchers track them all.
pub(super) const MAX_TERMS: usize = 8;

/// One term `weight * affine(x)` of a [`BlockOp::Dot`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Term {
    pub weight: f64,
    pub affine: Affine,
}

impl Affine {
    /// The parts of the shape the kernel specializes on; a dot product's terms
    /// share them. (Whether a fill applies is decided per block.)
    fn shape(&self) -> (bool, bool, bool) {
        (self.subtract, self.divide, self.clip.is_some())
    }
}

/// What one block instruction computes.
#[derive(Clone, Debug)]
pub(super) enum BlockOp {
    /// One arena node.
    Node(Node),
    /// See [`Affine`].
    Affine(Affine),
    /// `acc + weight * x`.
    MulAdd { acc: ExprId, weight: f64, x: ExprId },
    /// `acc + terms[0] + terms[1] + ...`, summed left to right; the terms
    /// share one [`Affine`] shape.
    Dot { acc: ExprId, terms: Vec<Term> },
}

impl BlockOp {
    /// The values the instruction reads.
    pub fn inputs(&self) -> Vec<ExprId> {
        match self {
            BlockOp::Node(node) => node.children(),
            BlockOp::Affine(a) => vec![a.x],
            BlockOp::MulAdd { acc, x, .. } => vec![*acc, *x],
            BlockOp::Dot { acc, terms } => std::iter::once(*acc)
                .chain(terms.iter().map(|t| t.affine.x))
                .collect(),
        }
    }
}

/// The block op of every node the projection needs (`None`: not needed, or
/// absorbed into another node's superinstruction). Columns and literals get
/// `BlockOp::Node` too; they become slots, not instructions.
pub(super) fn plan(projection: &Projection) -> Vec<Option<BlockOp>> {
    let arena = projection.arena();
    let n = arena.len();
    // How many needed nodes read each node (outputs count as readers).
    let mut reachable = vec![false; n];
    let mut uses = vec![0usize; n];
    for (_, root) in projection.outputs() {
        reachable[root.index()] = true;
        uses[root.index()] += 1;
    }
    for id in arena.ids().collect::<Vec<_>>().into_iter().rev() {
        if reachable[id.index()] {
            for c in arena.node(id).children() {
                reachable[c.index()] = true;
                uses[c.index()] += 1;
            }
        }
    }
    let planner = Planner { arena, uses };
    // Parents before children: a parent decides what it absorbs first.
    let mut ops: Vec<Option<BlockOp>> = vec![None; n];
    let mut needed = vec![false; n];
    for (_, root) in projection.outputs() {
        needed[root.index()] = true;
    }
    for id in arena.ids().collect::<Vec<_>>().into_iter().rev() {
        if !needed[id.index()] {
            continue;
        }
        let op = planner.op(id);
        for input in op.inputs() {
            needed[input.index()] = true;
        }
        ops[id.index()] = Some(op);
    }
    ops
}

/// Decides each node's op from the arena and how many needed nodes read each node.
struct Planner<'a> {
    arena: &'a ExprArena,
    uses: Vec<usize>,
}

impl Planner<'_> {
    /// Whether the node is a float (superinstructions are for floats only).
    fn float(&self, id: ExprId) -> bool {
        matches!(self.arena.dtype(id), DType::Float32 | DType::Float64)
    }

    /// The value of a float literal.
    fn constant(&self, id: ExprId) -> Option<f64> {
        match self.arena.node(id) {
            Node::Literal(c @ Const::Float(_)) => c.as_f64(),
            _ => None,
        }
    }

    /// Read only by its parent, so the parent may absorb it.
    fn private(&self, id: ExprId) -> bool {
        self.uses[id.index()] == 1
    }

    /// The op of node `id`: a superinstruction where its shape allows, else the node.
    fn op(&self, id: ExprId) -> BlockOp {
        if self.float(id) {
            if let Some(op) = self.accumulation_op(id) {
                return op;
            }
            if let Some(affine) = self.affine(id) {
                return BlockOp::Affine(affine);
            }
        }
        BlockOp::Node(self.arena.node(id).clone())
    }

    /// `clip(scaled, lo, hi)` or `scaled`, where `scaled = (x ± a) (*|/) b`.
    fn affine(&self, id: ExprId) -> Option<Affine> {
        let (scaled, clip) = match *self.arena.node(id) {
            Node::Clip(inner, lo, hi) if self.private(inner) => {
                (inner, Some((self.constant(lo)?, self.constant(hi)?)))
            }
            _ => (id, None),
        };
        let Node::Binary(op2 @ (BinaryOp::Mul | BinaryOp::Div), shifted, b) =
            *self.arena.node(scaled)
        else {
            return None;
        };
        let scale = self.constant(b)?;
        if !self.private(shifted) {
            return None;
        }
        let Node::Binary(op1 @ (BinaryOp::Add | BinaryOp::Sub), x, a) = *self.arena.node(shifted)
        else {
            return None;
        };
        let shift = self.constant(a)?;
        let (x, fill) = match *self.arena.node(x) {
            Node::FillNull(inner, value) if self.private(x) => match self.constant(value) {
                Some(v) => (inner, Some(v)),
                None => (x, None),
            },
            _ => (x, None),
        };
        Some(Affine {
            x,
            fill,
            subtract: op1 == BinaryOp::Sub,
            shift,
            divide: op2 == BinaryOp::Div,
            scale,
            clip,
        })
    }

    /// `acc + w * x` or a dot product of affine terms ending in `acc + w * affine(x)`.
    fn accumulation_op(&self, id: ExprId) -> Option<BlockOp> {
        let (acc, weight, x) = self.accumulation(id)?;
        let Some(affine) = self.term(x) else {
            return Some(BlockOp::MulAdd { acc, weight, x });
        };
        // Absorb the partial sums below while they are private terms of one shape.
        let mut acc = acc;
        let mut terms = vec![Term { weight, affine }];
        while terms.len() < MAX_TERMS && self.private(acc) && self.float(acc) {
            let Some((inner, weight, x)) = self.accumulation(acc) else {
                break;
            };
            match self.term(x) {
                Some(affine) if affine.shape() == terms[0].affine.shape() => {
                    terms.push(Term { weight, affine });
                    acc = inner;
                }
                _ => break,
            }
        }
        terms.reverse();
        Some(BlockOp::Dot { acc, terms })
    }

    /// `acc + w * x` (either operand order), the product read only here.
    fn accumulation(&self, id: ExprId) -> Option<(ExprId, f64, ExprId)> {
        let Node::Binary(BinaryOp::Add, left, right) = *self.arena.node(id) else {
            return None;
        };
        let product = |p: ExprId| -> Option<(f64, ExprId)> {
            if !self.private(p) {
                return None;
            }
            match *self.arena.node(p) {
                Node::Binary(BinaryOp::Mul, a, b) => self
                    .constant(a)
                    .map(|w| (w, b))
                    .or_else(|| self.constant(b).map(|w| (w, a))),
                _ => None,
            }
        };
        match (product(right), product(left)) {
            (Some((w, x)), _) => Some((left, w, x)),
            (None, Some((w, x))) => Some((right, w, x)),
            (None, None) => None,
        }
    }

    /// `x` as an affine term of a dot product: an affine read only there.
    fn term(&self, x: ExprId) -> Option<Affine> {
        self.affine(x).filter(|_| self.private(x))
    }
}

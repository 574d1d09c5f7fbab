//! One instruction over one block: its operands looked up, its validity
//! propagated, its values computed by the loop for what it computes.

use super::columns::Input;
use super::compile::{CpuKernel, Instruction, Slot};
use super::dot::{affine_op, dot_op, mul_add_op};
use super::elementwise::{binary, cast, clip_values, copy, kleene, unary};
use super::plan::BlockOp;
use super::registers::{Buf, Operand, Reg, Registers, Src, Values};
use crate::ir::{BinaryOp, ExprId, Node};

/// What an instruction reads in the current block: the bound inputs, the
/// registers written so far, and the block's rows.
#[derive(Clone, Copy)]
pub(super) struct BlockView<'r, 'a> {
    kernel: &'a CpuKernel,
    inputs: &'r [Input<'a>],
    regs: &'r Registers<'a>,
    start: usize,
    pub(super) len: usize,
}

impl<'r, 'a: 'r> BlockView<'r, 'a> {
    /// The value and validity of a node for the current block.
    #[inline(always)]
    pub(super) fn get(&self, id: ExprId) -> Operand<'r, 'a> {
        self.kernel
            .view(id, self.inputs, self.regs, self.start, self.len)
    }
}

impl CpuKernel {
    /// Run `instruction` over the block at `start`, writing `dst`.
    #[inline(always)]
    pub(super) fn exec<'a>(
        &'a self,
        instruction: &Instruction,
        inputs: &[Input<'a>],
        regs: &Registers<'a>,
        dst: &mut Reg<'a>,
        start: usize,
        len: usize,
    ) {
        let block = BlockView {
            kernel: self,
            inputs,
            regs,
            start,
            len,
        };
        match &instruction.op {
            BlockOp::Node(node) => self.exec_node(node, instruction, block, dst),
            BlockOp::Affine(affine) => affine_op(affine, block, dst),
            BlockOp::MulAdd { acc, weight, x } => mul_add_op(*acc, *weight, *x, block, dst),
            BlockOp::Dot { acc, terms } => dot_op(*acc, terms, block, dst),
        }
    }

    /// One arena node over the block: one loop per operator.
    #[inline(always)]
    fn exec_node<'a>(
        &'a self,
        node: &Node,
        instruction: &Instruction,
        block: BlockView<'_, 'a>,
        dst: &mut Reg<'a>,
    ) {
        match *node {
            Node::Unary(op, a) => {
                let a = block.get(a);
                dst.valid_from(&[a.valid]);
                unary(op, &a.values, &mut dst.values);
            }
            Node::Binary(op @ (BinaryOp::And | BinaryOp::Or), a, b) => {
                kleene(op, block.get(a), block.get(b), dst)
            }
            Node::Binary(op, a, b) => {
                let (a, b) = (block.get(a), block.get(b));
                dst.valid_from(&[a.valid, b.valid]);
                binary(op, &a.values, &b.values, &mut dst.values);
            }
            Node::Clip(x, lo, hi) => {
                let (x, lo, hi) = (block.get(x), block.get(lo), block.get(hi));
                dst.valid_from(&[x.valid, lo.valid, hi.valid]);
                clip_values(&x.values, &lo.values, &hi.values, &mut dst.values);
            }
            Node::IsNull(x) => is_null(block.get(x), dst),
            Node::FillNull(x, fill) => self.fill_null(x, fill, block, dst),
            Node::IfElse(c, t, f) => {
                if_else(block.get(c), block.get(t), block.get(f), block.len, dst)
            }
            Node::Cast(x) => {
                let x = block.get(x);
                let lossy = cast(
                    &x.values,
                    &mut dst.values,
                    instruction.operand_dtype,
                    instruction.dtype,
                );
                dst.valid_from(&[x.valid, lossy.as_deref()]);
            }
            Node::Column(_) | Node::Literal(_) => {
                unreachable!("columns and literals need no instruction")
            }
        }
    }

    /// `fill_null(x, fill)`: the input itself where the block has no null.
    #[inline(always)]
    fn fill_null<'a>(
        &'a self,
        x_id: ExprId,
        fill: ExprId,
        block: BlockView<'_, 'a>,
        dst: &mut Reg<'a>,
    ) {
        let (x, fill) = (block.get(x_id), block.get(fill));
        match x.valid {
            // No null in this block: the result is the input. Inputs and
            // constants are never overwritten, so read them in place.
            None if matches!(self.slots[x_id.index()], Slot::Column(_) | Slot::Const(_)) => {
                dst.forward = Some(x_id)
            }
            None => {
                dst.valid_from(&[]);
                copy(&x.values, &mut dst.values);
            }
            Some(xv) => {
                let keep = Values::Bool(Src::Slice(xv));
                dst.values.select(&keep, &x.values, &fill.values);
                match fill.valid {
                    // A valid fill value leaves no null behind.
                    None => dst.valid_from(&[]),
                    Some(fv) => dst.select_valid(xv, Some(xv), Some(fv)),
                }
            }
        }
    }
}

/// `is_null(x)`: never null itself.
#[inline(always)]
fn is_null(x: Operand<'_, '_>, dst: &mut Reg<'_>) {
    dst.valid_from(&[]);
    let Buf::Bool(out) = &mut dst.values else {
        unreachable!("is_null yields bool")
    };
    match x.valid {
        Some(v) => {
            for (o, v) in out.iter_mut().zip(v) {
                *o = !v;
            }
        }
        None => out.fill(false),
    }
}

/// `if_else(c, t, f)`: a null condition selects `otherwise`.
#[inline(always)]
fn if_else<'a>(
    c: Operand<'_, 'a>,
    t: Operand<'_, 'a>,
    f: Operand<'_, 'a>,
    len: usize,
    dst: &mut Reg<'a>,
) {
    let Values::Bool(cond) = c.values else {
        unreachable!("condition is bool")
    };
    let cond: Vec<bool> = match c.valid {
        Some(cv) => (0..len).map(|i| cond.at(i) & cv[i]).collect(),
        None => (0..len).map(|i| cond.at(i)).collect(),
    };
    dst.values
        .select(&Values::Bool(Src::Slice(&cond)), &t.values, &f.values);
    dst.select_valid(&cond, t.valid, f.valid);
}

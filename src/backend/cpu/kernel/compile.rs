//! Compiling a projection: its planned [`BlockOp`]s as instructions over block
//! registers, each register reused as soon as its last reader has run.

use super::plan::{self, BlockOp};
use crate::ir::{Const, DType, Node, Projection};

/// A compiled projection, ready to run over any number of record batches.
#[derive(Debug)]
pub struct CpuKernel {
    pub(super) projection: Projection,
    /// Where each arena node's value lives during a block.
    pub(super) slots: Vec<Slot>,
    pub(super) instructions: Vec<Instruction>,
    pub(super) reg_dtypes: Vec<DType>,
    /// Input column index of each column slot.
    pub(super) columns: Vec<usize>,
}

/// Where a node's value lives during a block.
#[derive(Clone, Debug)]
pub(super) enum Slot {
    /// Not needed by any output.
    Unused,
    /// A literal, broadcast over the block.
    Const(Const),
    /// An input column, read in place.
    Column(usize),
    /// A register an instruction writes.
    Reg(usize),
}

/// One block instruction: what it computes and the register it writes.
#[derive(Clone, Debug)]
pub(super) struct Instruction {
    pub(super) op: BlockOp,
    pub(super) dtype: DType,
    /// The dtype of the first operand (the source type of a cast).
    pub(super) operand_dtype: DType,
    pub(super) dst: usize,
}

impl CpuKernel {
    /// Compile a projection.
    pub fn compile(projection: Projection) -> Self {
        let ops = plan::plan(&projection);
        let arena = projection.arena();
        let last_use = last_uses(&projection, &ops);
        let mut slots = vec![Slot::Unused; arena.len()];
        let mut instructions = Vec::new();
        let mut reg_dtypes: Vec<DType> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut columns = Vec::new();
        for id in arena.ids() {
            let Some(op) = &ops[id.index()] else {
                continue;
            };
            let dtype = arena.dtype(id);
            slots[id.index()] = match op {
                BlockOp::Node(Node::Literal(c)) => Slot::Const(c.clone()),
                BlockOp::Node(Node::Column(index)) => {
                    columns.push(*index);
                    Slot::Column(columns.len() - 1)
                }
                _ => {
                    // Allocate before freeing the operands' registers: an instruction
                    // never writes a register it reads.
                    let reuse = free.iter().position(|&r| reg_dtypes[r] == dtype);
                    let dst = match reuse {
                        Some(p) => free.swap_remove(p),
                        None => {
                            reg_dtypes.push(dtype);
                            reg_dtypes.len() - 1
                        }
                    };
                    let inputs = op.inputs();
                    for c in &inputs {
                        if last_use[c.index()] == id.index()
                            && let Slot::Reg(r) = slots[c.index()]
                                && !free.contains(&r) {
                                    free.push(r);
                                }
                    }
                    let operand_dtype = inputs.first().map_or(dtype, |c| arena.dtype(*c));
                    instructions.push(Instruction {
                        op: op.clone(),
                        dtype,
                        operand_dtype,
                        dst,
                    });
                    Slot::Reg(dst)
                }
            };
        }
        CpuKernel {
            projection,
            slots,
            instructions,
            reg_dtypes,
            columns,
        }
    }

    /// The projection this kernel evaluates.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// Number of block instructions (one per distinct operator node).
    #[cfg(feature = "internals")]
    pub fn instruction_count(&self) -> usize {
        self.instructions.len()
    }
}

/// The last instruction (by node index) that reads each value; outputs live
/// to the end.
fn last_uses(projection: &Projection, ops: &[Option<BlockOp>]) -> Vec<usize> {
    let arena = projection.arena();
    let mut last_use = vec![0usize; arena.len()];
    for id in arena.ids() {
        for input in ops[id.index()].iter().flat_map(BlockOp::inputs) {
            last_use[input.index()] = id.index();
        }
    }
    for (_, root) in projection.outputs() {
        last_use[root.index()] = usize::MAX;
    }
    last_use
}

//! The fused CPU kernel: a [`Projection`](crate::ir::Projection) evaluated in
//! one pass over row blocks.
//!
//! A projection is compiled once into a short list of instructions over
//! block-sized registers. Evaluation walks the input in blocks of [`BLOCK`] rows
//! (rayon over blocks): numeric columns are read in place from the Arrow
//! buffers, every instruction runs one tight, vectorizable loop over the block
//! with branch-free validity masks, and only the projection's outputs are
//! written. Registers are reused as soon as their last reader has run, so the
//! working set stays in L1/L2 however long the expression chain is, and no
//! Arrow array is built for any intermediate.
//!
//! A tour of the pieces, in the order a projection meets them:
//!
//! - `plan.rs`: which arena nodes become which `BlockOp`,
//!   one per node or a superinstruction that absorbs several.
//! - `compile.rs`: [`CpuKernel`], those ops as instructions over registers
//!   allocated by liveness.
//! - `evaluate.rs`: [`CpuKernel::evaluate`], the blocks in parallel, each
//!   block's instructions in order, the outputs assembled.
//! - `exec.rs`: one instruction over one block, by what it computes.
//! - `elementwise.rs`: the loops of one operator node (unary, binary, Kleene
//!   logic, clip, copy, cast).
//! - `dot.rs`: the superinstructions: an affine transform, and a dot product
//!   of affine terms that walks the rows once for all of them.
//! - `registers.rs`: block registers and the typed views instructions read
//!   (a slice, or one value broadcast).
//! - `validity.rs`: validity as one bool per row, its propagation, and Arrow
//!   bitmaps unpacked and packed.
//! - `columns.rs`: the input columns bound to a batch, and the output columns
//!   filled block by block.

mod columns;
mod compile;
mod dot;
mod elementwise;
mod evaluate;
mod exec;
mod plan;
mod registers;
mod validity;

pub use compile::CpuKernel;
pub use evaluate::BLOCK;
pub(crate) use validity::unpack_bits;

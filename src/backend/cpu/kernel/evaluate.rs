//! Evaluating a compiled kernel: the batch cut into blocks of [`BLOCK`] rows
//! run in parallel, each block's instructions in order, and the outputs
//! assembled from what the blocks wrote.

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::NullBuffer;
use rayon::prelude::*;

use super::columns::{Input, OutBuf, OutSlice};
use super::compile::{CpuKernel, Slot};
use super::registers::{Operand, Registers, Values};
use super::validity::pack_bits;
use crate::error::{Error, Result, ensure};
use crate::ir::ExprId;

/// Rows per block: large enough to amortize dispatch, small enough that a few
/// registers per thread stay in L1.
pub const BLOCK: usize = 8192;

impl CpuKernel {
    /// Evaluate over one record batch, in parallel over row blocks.
    ///
    /// # Errors
    /// [`Error::Schema`] when a column the projection reads is missing from the
    /// batch or has another type.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let inputs = self.bind(batch)?;
        let rows = batch.num_rows();
        let outputs = self.projection.outputs();
        let mut values: Vec<OutBuf> = outputs
            .iter()
            .map(|(_, id)| OutBuf::new(self.projection.arena().dtype(*id), rows))
            .collect();
        // Output validity, packed. Only blocks that produce a null write theirs,
        // so a null-free output never touches (or faults in) its bitmap.
        let mut validity: Vec<Vec<u8>> = outputs
            .iter()
            .map(|_| vec![0u8; rows.div_ceil(8)])
            .collect();

        // One task per block, each owning disjoint slices of every output.
        let blocks = rows.div_ceil(BLOCK);
        let mut tasks: Vec<BlockTask> = (0..blocks)
            .map(|b| BlockTask {
                start: b * BLOCK,
                outs: Vec::new(),
            })
            .collect();
        for (buf, bits) in values.iter_mut().zip(validity.iter_mut()) {
            for (task, (v, m)) in tasks.iter_mut().zip(
                buf.chunks_mut(blocks)
                    .into_iter()
                    .zip(bits.chunks_mut(BLOCK / 8)),
            ) {
                task.outs.push((v, m));
            }
        }
        let results: Vec<BlockResult> = tasks
            .into_par_iter()
            .map_init(
                || Registers::new(&self.reg_dtypes, self.columns.len()),
                |regs, task| self.run_block(&inputs, regs, task, rows),
            )
            .collect();

        let columns: Vec<ArrayRef> = values
            .into_iter()
            .zip(validity)
            .enumerate()
            .map(|(i, (buf, mut bits))| {
                let with_nulls = |r: &BlockResult| r.nulls[i];
                let nulls = results.iter().any(with_nulls).then(|| {
                    for (block, r) in bits.chunks_mut(BLOCK / 8).zip(&results) {
                        if !with_nulls(r) {
                            block.fill(u8::MAX);
                        }
                    }
                    NullBuffer::from_unsliced_buffer(bits, rows)
                });
                buf.finish(
                    nulls.flatten(),
                    results.iter().map(|block| &block.strings[i]),
                )
            })
            .collect();
        Ok(RecordBatch::try_new(
            self.projection.output_schema(),
            columns,
        )?)
    }

    /// Resolve the columns the kernel reads against a batch.
    fn bind<'a>(&self, batch: &'a RecordBatch) -> Result<Vec<Input<'a>>> {
        let schema = self.projection.input_schema();
        self.columns
            .iter()
            .map(|&index| {
                let field = schema.field(index);
                let array = self.projection.input_column(batch, index)?;
                ensure!(
                    array.data_type() == field.data_type(),
                    Error::Schema {
                        step: "<expression>".into(),
                        column: field.name().clone(),
                        message: format!(
                            "expected {}, found {} in this batch",
                            field.data_type(),
                            array.data_type()
                        ),
                    }
                );
                Input::new(array.as_ref())
            })
            .collect()
    }

    /// Evaluate one block and write its outputs; returns string outputs, which
    /// are assembled after all blocks finish. On x86-64 CPUs with AVX2 the
    /// same code runs compiled for AVX2 (8 f32 lanes instead of SSE2's 4).
    fn run_block<'a>(
        &'a self,
        inputs: &[Input<'a>],
        regs: &mut Registers<'a>,
        task: BlockTask<'_>,
        rows: usize,
    ) -> BlockResult<'a> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the running CPU supports AVX2, checked just above.
            return unsafe { self.run_block_avx2(inputs, regs, task, rows) };
        }
        self.block_body(inputs, regs, task, rows)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_block_avx2<'a>(
        &'a self,
        inputs: &[Input<'a>],
        regs: &mut Registers<'a>,
        task: BlockTask<'_>,
        rows: usize,
    ) -> BlockResult<'a> {
        self.block_body(inputs, regs, task, rows)
    }

    /// The block evaluation itself; everything it calls is inlined, so it is
    /// compiled once per instruction set it is called from.
    #[inline(always)]
    fn block_body<'a>(
        &'a self,
        inputs: &[Input<'a>],
        regs: &mut Registers<'a>,
        task: BlockTask<'_>,
        rows: usize,
    ) -> BlockResult<'a> {
        let start = task.start;
        let len = BLOCK.min(rows - start);
        for (input, scratch) in inputs.iter().zip(regs.columns.iter_mut()) {
            input.load(start, len, scratch);
        }
        for instruction in &self.instructions {
            let mut dst = std::mem::take(&mut regs.regs[instruction.dst]);
            dst.resize(len);
            dst.forward = None;
            self.exec(instruction, inputs, regs, &mut dst, start, len);
            regs.regs[instruction.dst] = dst;
        }
        let mut result = BlockResult {
            strings: Vec::new(),
            nulls: Vec::new(),
        };
        for ((_, root), (values, bits)) in self.projection.outputs().iter().zip(task.outs) {
            let operand = self.view(*root, inputs, regs, start, len);
            if let Some(valid) = operand.valid {
                pack_bits(valid, bits);
            }
            result.nulls.push(operand.valid.is_some());
            result.strings.push(values.write(&operand.values, len));
        }
        result
    }

    /// The value and validity of a node for the current block.
    #[inline(always)]
    pub(super) fn view<'r, 'a: 'r>(
        &'a self,
        id: ExprId,
        inputs: &'r [Input<'a>],
        regs: &'r Registers<'a>,
        start: usize,
        len: usize,
    ) -> Operand<'r, 'a> {
        match &self.slots[id.index()] {
            Slot::Const(c) => Operand {
                values: Values::constant(c, self.projection.arena().dtype(id)),
                valid: None,
            },
            Slot::Column(i) => inputs[*i].view(start, len, &regs.columns[*i]),
            Slot::Reg(r) => match regs.regs[*r].forward {
                Some(source) => self.view(source, inputs, regs, start, len),
                None => regs.regs[*r].view(),
            },
            Slot::Unused => unreachable!("node {id:?} was not compiled"),
        }
    }
}

/// One block's share of the outputs: values, and packed validity bytes.
struct BlockTask<'o> {
    start: usize,
    outs: Vec<(OutSlice<'o>, &'o mut [u8])>,
}

/// What a block hands back besides the values it wrote in place.
struct BlockResult<'a> {
    /// Per output: string values, assembled once all blocks are done.
    strings: Vec<Vec<&'a str>>,
    /// Per output: whether the block wrote validity bits (it may have nulls).
    nulls: Vec<bool>,
}

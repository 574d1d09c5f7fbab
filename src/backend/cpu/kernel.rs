//! The fused CPU kernel: a [`Projection`] evaluated in one pass over row blocks.
//!
//! A projection is compiled once into a short list of instructions over
//! block-sized registers. Evaluation walks the input in blocks of [`BLOCK`] rows
//! (rayon over blocks): numeric columns are read in place from the Arrow
//! buffers, every instruction runs one tight, vectorizable loop over the block
//! with branch-free validity masks, and only the projection's outputs are
//! written. Registers are reused as soon as their last reader has run, so the
//! working set stays in L1/L2 however long the expression chain is, and no
//! Arrow array is built for any intermediate.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, PrimitiveArray, RecordBatch, StringArray, types};
use arrow_buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use rayon::prelude::*;

use super::plan::{self, Affine, Step, Term};
use crate::error::{Error, Result, ensure};
use crate::ir::ops::{Float, Native, clip, select};
use crate::ir::{
    BinaryOp, Const, DType, ExprId, Node, Projection, UnaryOp, specialize_binary, specialize_unary,
};

/// Rows per block: large enough to amortize dispatch, small enough that a few
/// registers per thread stay in L1.
pub const BLOCK: usize = 8192;

/// A compiled projection, ready to run over any number of record batches.
#[derive(Debug)]
pub struct CpuKernel {
    projection: Projection,
    /// Where each arena node's value lives during a block.
    slots: Vec<Slot>,
    instrs: Vec<Instr>,
    reg_dtypes: Vec<DType>,
    /// Input column index of each column slot.
    columns: Vec<usize>,
}

#[derive(Clone, Debug)]
enum Slot {
    Unused,
    Const(Const),
    Column(usize),
    Reg(usize),
}

#[derive(Clone, Debug)]
struct Instr {
    step: Step,
    dtype: DType,
    operand_dtype: DType,
    dst: usize,
}

impl CpuKernel {
    /// Compile a projection.
    pub fn compile(projection: Projection) -> Self {
        let steps = plan::plan(&projection);
        let arena = projection.arena();
        let n = arena.len();
        // The last instruction that reads each value; outputs live to the end.
        let mut last_use = vec![0usize; n];
        for id in arena.ids() {
            for input in steps[id.index()].iter().flat_map(Step::inputs) {
                last_use[input.index()] = id.index();
            }
        }
        for (_, root) in projection.outputs() {
            last_use[root.index()] = usize::MAX;
        }

        let mut slots = vec![Slot::Unused; n];
        let mut instrs = Vec::new();
        let mut reg_dtypes: Vec<DType> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut columns = Vec::new();
        for id in arena.ids() {
            let Some(step) = &steps[id.index()] else {
                continue;
            };
            let dtype = arena.dtype(id);
            slots[id.index()] = match step {
                Step::Node(Node::Literal(c)) => Slot::Const(c.clone()),
                Step::Node(Node::Column(index)) => {
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
                    let inputs = step.inputs();
                    for c in &inputs {
                        if last_use[c.index()] == id.index() {
                            if let Slot::Reg(r) = slots[c.index()] {
                                if !free.contains(&r) {
                                    free.push(r);
                                }
                            }
                        }
                    }
                    let operand_dtype = inputs.first().map_or(dtype, |c| arena.dtype(*c));
                    instrs.push(Instr {
                        step: step.clone(),
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
            instrs,
            reg_dtypes,
            columns,
        }
    }

    /// The projection this kernel evaluates.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// Number of block instructions (one per distinct operator node).
    pub fn instruction_count(&self) -> usize {
        self.instrs.len()
    }

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
        for instr in &self.instrs {
            let mut dst = std::mem::take(&mut regs.regs[instr.dst]);
            dst.resize(len);
            dst.forward = None;
            self.exec(instr, inputs, regs, &mut dst, start, len);
            regs.regs[instr.dst] = dst;
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
    fn view<'r, 'a: 'r>(
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

    #[inline(always)]
    fn exec<'a>(
        &'a self,
        instr: &Instr,
        inputs: &[Input<'a>],
        regs: &Registers<'a>,
        dst: &mut Reg<'a>,
        start: usize,
        len: usize,
    ) {
        macro_rules! get {
            ($id:expr) => {
                self.view($id, inputs, regs, start, len)
            };
        }
        let node = match &instr.step {
            Step::Node(node) => node,
            Step::Affine(affine) => {
                let x = get!(affine.x);
                // A fill removes the input's nulls.
                dst.valid_from(&[x.valid.filter(|_| affine.fill.is_none())]);
                affine_block(affine, &x, &mut dst.values);
                return;
            }
            Step::MulAdd { acc, weight, x } => {
                let (acc, x) = (get!(*acc), get!(*x));
                dst.valid_from(&[acc.valid, x.valid]);
                dispatch_float!(&mut dst.values, |out| {
                    let w = Native::from_f64(*weight);
                    map2(
                        Pick::pick(&acc.values),
                        Pick::pick(&x.values),
                        out,
                        |acc, x| BinaryOp::Add.float(acc, BinaryOp::Mul.float(w, x)),
                    );
                });
                return;
            }
            Step::Dot { acc, terms } => {
                let acc = get!(*acc);
                let xs: Vec<Operand> = terms.iter().map(|t| get!(t.affine.x)).collect();
                // A fill removes its input's nulls.
                let nulls = terms
                    .iter()
                    .zip(&xs)
                    .map(|(t, x)| x.valid.filter(|_| t.affine.fill.is_none()));
                dst.valid_from(&std::iter::once(acc.valid).chain(nulls).collect::<Vec<_>>());
                dot_block(terms, &xs, &acc.values, &mut dst.values);
                return;
            }
        };
        match *node {
            Node::Unary(op, a) => {
                let a = get!(a);
                dst.valid_from(&[a.valid]);
                unary(op, &a.values, &mut dst.values);
            }
            Node::Binary(op @ (BinaryOp::And | BinaryOp::Or), a, b) => {
                kleene(op, get!(a), get!(b), dst)
            }
            Node::Binary(op, a, b) => {
                let (a, b) = (get!(a), get!(b));
                dst.valid_from(&[a.valid, b.valid]);
                binary(op, &a.values, &b.values, &mut dst.values);
            }
            Node::Clip(x, lo, hi) => {
                let (x, lo, hi) = (get!(x), get!(lo), get!(hi));
                dst.valid_from(&[x.valid, lo.valid, hi.valid]);
                dispatch_numeric!(&mut dst.values, |out| ternary(
                    &x.values, &lo.values, &hi.values, out, clip
                ));
            }
            Node::IsNull(x) => {
                let x = get!(x);
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
            Node::FillNull(x_id, fill) => {
                let (x, fill) = (get!(x_id), get!(fill));
                match x.valid {
                    // No null in this block: the result is the input. Inputs and
                    // constants are never overwritten, so read them in place.
                    None if matches!(
                        self.slots[x_id.index()],
                        Slot::Column(_) | Slot::Const(_)
                    ) =>
                    {
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
            Node::IfElse(c, t, f) => {
                let (c, t, f) = (get!(c), get!(t), get!(f));
                let Values::Bool(cond) = c.values else {
                    unreachable!("condition is bool")
                };
                // A null condition selects `otherwise`.
                let cond: Vec<bool> = match c.valid {
                    Some(cv) => (0..len).map(|i| cond.at(i) & cv[i]).collect(),
                    None => (0..len).map(|i| cond.at(i)).collect(),
                };
                dst.values
                    .select(&Values::Bool(Src::Slice(&cond)), &t.values, &f.values);
                dst.select_valid(&cond, t.valid, f.valid);
            }
            Node::Cast(x) => {
                let x = get!(x);
                let lossy = cast(&x.values, &mut dst.values, instr.operand_dtype, instr.dtype);
                dst.valid_from(&[x.valid, lossy.as_deref()]);
            }
            Node::Column(_) | Node::Literal(_) => {
                unreachable!("columns and literals need no instruction")
            }
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

/// A column the kernel reads, bound to one batch.
enum Input<'a> {
    Bool(&'a BooleanArray),
    I32(&'a [i32], Option<&'a NullBuffer>),
    I64(&'a [i64], Option<&'a NullBuffer>),
    F32(&'a [f32], Option<&'a NullBuffer>),
    F64(&'a [f64], Option<&'a NullBuffer>),
    Str(&'a StringArray),
}

impl<'a> Input<'a> {
    fn new(array: &'a dyn Array) -> Result<Self> {
        use arrow_array::cast::AsArray;
        let nulls = array.nulls();
        Ok(match DType::from_arrow(array.data_type()) {
            Some(DType::Bool) => Input::Bool(array.as_boolean()),
            Some(DType::Int32) => {
                Input::I32(array.as_primitive::<types::Int32Type>().values(), nulls)
            }
            Some(DType::Int64) => {
                Input::I64(array.as_primitive::<types::Int64Type>().values(), nulls)
            }
            Some(DType::Float32) => {
                Input::F32(array.as_primitive::<types::Float32Type>().values(), nulls)
            }
            Some(DType::Float64) => {
                Input::F64(array.as_primitive::<types::Float64Type>().values(), nulls)
            }
            Some(DType::Utf8) => Input::Str(array.as_string::<i32>()),
            None => {
                return Err(Error::Internal(format!(
                    "unsupported input type {}",
                    array.data_type()
                )));
            }
        })
    }

    fn nulls(&self) -> Option<&'a NullBuffer> {
        match self {
            Input::Bool(a) => (*a).nulls(),
            Input::Str(a) => (*a).nulls(),
            Input::I32(_, n) | Input::I64(_, n) | Input::F32(_, n) | Input::F64(_, n) => *n,
        }
    }

    /// Unpack validity (and bool/string values) of one block into scratch space.
    #[inline(always)]
    fn load(&self, start: usize, len: usize, scratch: &mut ColumnScratch<'a>) {
        scratch.has_nulls = false;
        if let Some(nulls) = self.nulls() {
            let bits = nulls.inner().slice(start, len);
            if bits.count_set_bits() != len {
                scratch.has_nulls = true;
                unpack_bits(&bits, &mut scratch.valid);
            }
        }
        match self {
            Input::Bool(a) => unpack_bits(&a.values().slice(start, len), &mut scratch.bools),
            Input::Str(a) => {
                scratch.strs.clear();
                scratch
                    .strs
                    .extend((start..start + len).map(|i| a.value(i)));
            }
            _ => {}
        }
    }

    #[inline(always)]
    fn view<'r>(
        &'r self,
        start: usize,
        len: usize,
        scratch: &'r ColumnScratch<'a>,
    ) -> Operand<'r, 'a> {
        let range = start..start + len;
        let values = match self {
            Input::Bool(_) => Values::Bool(Src::Slice(&scratch.bools)),
            Input::Str(_) => Values::Str(Src::Slice(&scratch.strs)),
            Input::I32(v, _) => Values::I32(Src::Slice(&v[range])),
            Input::I64(v, _) => Values::I64(Src::Slice(&v[range])),
            Input::F32(v, _) => Values::F32(Src::Slice(&v[range])),
            Input::F64(v, _) => Values::F64(Src::Slice(&v[range])),
        };
        Operand {
            values,
            valid: scratch.has_nulls.then_some(scratch.valid.as_slice()),
        }
    }
}

#[derive(Default)]
struct ColumnScratch<'a> {
    has_nulls: bool,
    valid: Vec<bool>,
    bools: Vec<bool>,
    strs: Vec<&'a str>,
}

/// Per-thread block registers.
struct Registers<'a> {
    regs: Vec<Reg<'a>>,
    columns: Vec<ColumnScratch<'a>>,
}

impl Registers<'_> {
    fn new(dtypes: &[DType], columns: usize) -> Self {
        Registers {
            regs: dtypes
                .iter()
                .map(|&d| Reg {
                    values: Buf::new(d),
                    valid: Vec::new(),
                    has_nulls: false,
                    forward: None,
                })
                .collect(),
            columns: (0..columns).map(|_| ColumnScratch::default()).collect(),
        }
    }
}

/// One register: a block of values of one dtype plus validity.
#[derive(Default)]
struct Reg<'a> {
    values: Buf<'a>,
    valid: Vec<bool>,
    has_nulls: bool,
    /// For this block the register holds exactly the value of an input column
    /// or constant, which readers then use in place (no copy).
    forward: Option<ExprId>,
}

impl<'a> Reg<'a> {
    #[inline(always)]
    fn resize(&mut self, len: usize) {
        self.values.resize(len);
    }

    #[inline(always)]
    fn view(&self) -> Operand<'_, 'a> {
        Operand {
            values: self.values.view(),
            valid: self.has_nulls.then_some(self.valid.as_slice()),
        }
    }

    /// Validity = AND of the operands' validity (null propagation).
    #[inline(always)]
    fn valid_from(&mut self, operands: &[Option<&[bool]>]) {
        let mut present = operands.iter().flatten();
        let Some(first) = present.next() else {
            self.has_nulls = false;
            return;
        };
        self.has_nulls = true;
        self.valid.clear();
        self.valid.extend_from_slice(first);
        for other in present {
            for (v, o) in self.valid.iter_mut().zip(other.iter()) {
                *v &= o;
            }
        }
    }

    /// Validity taken from `then` where `cond`, else from `otherwise`.
    #[inline(always)]
    fn select_valid(&mut self, cond: &[bool], then: Option<&[bool]>, otherwise: Option<&[bool]>) {
        if then.is_none() && otherwise.is_none() {
            self.has_nulls = false;
            return;
        }
        self.has_nulls = true;
        self.valid.clear();
        let t = |i: usize| then.is_none_or(|v| v[i]);
        let f = |i: usize| otherwise.is_none_or(|v| v[i]);
        self.valid
            .extend((0..cond.len()).map(|i| select(cond[i], t(i), f(i))));
    }
}

/// A block operand: values and optional validity (`None`: all valid).
struct Operand<'r, 'a> {
    values: Values<'r, 'a>,
    valid: Option<&'r [bool]>,
}

/// A block of values, or one value broadcast over the block.
#[derive(Clone, Copy)]
enum Src<'r, T> {
    Slice(&'r [T]),
    Splat(T),
}

impl<T: Copy> Src<'_, T> {
    #[inline(always)]
    fn at(&self, i: usize) -> T {
        match self {
            Src::Slice(s) => s[i],
            Src::Splat(v) => *v,
        }
    }
}

/// Typed block operand values.
enum Values<'r, 'a> {
    Bool(Src<'r, bool>),
    I32(Src<'r, i32>),
    I64(Src<'r, i64>),
    F32(Src<'r, f32>),
    F64(Src<'r, f64>),
    Str(Src<'r, &'a str>),
}

impl<'a> Values<'_, 'a> {
    fn constant(c: &'a Const, dtype: DType) -> Self {
        let f = c.as_f64().unwrap_or_default();
        match (c, dtype) {
            (Const::Str(s), _) => Values::Str(Src::Splat(s.as_str())),
            (_, DType::Bool) => Values::Bool(Src::Splat(f != 0.0)),
            (Const::Int(i), DType::Int32) => Values::I32(Src::Splat(*i as i32)),
            (Const::Int(i), DType::Int64) => Values::I64(Src::Splat(*i)),
            (_, DType::Float32) => Values::F32(Src::Splat(f as f32)),
            (_, DType::Float64) => Values::F64(Src::Splat(f)),
            (c, d) => unreachable!("literal {c:?} typed {d}"),
        }
    }
}

/// Owned block storage of one dtype.
#[derive(Default)]
enum Buf<'a> {
    #[default]
    Empty,
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str(Vec<&'a str>),
}

impl<'a> Buf<'a> {
    fn new(dtype: DType) -> Self {
        match dtype {
            DType::Bool => Buf::Bool(Vec::with_capacity(BLOCK)),
            DType::Int32 => Buf::I32(Vec::with_capacity(BLOCK)),
            DType::Int64 => Buf::I64(Vec::with_capacity(BLOCK)),
            DType::Float32 => Buf::F32(Vec::with_capacity(BLOCK)),
            DType::Float64 => Buf::F64(Vec::with_capacity(BLOCK)),
            DType::Utf8 => Buf::Str(Vec::with_capacity(BLOCK)),
        }
    }

    fn resize(&mut self, len: usize) {
        match self {
            Buf::Empty => {}
            Buf::Bool(v) => v.resize(len, false),
            Buf::I32(v) => v.resize(len, 0),
            Buf::I64(v) => v.resize(len, 0),
            Buf::F32(v) => v.resize(len, 0.0),
            Buf::F64(v) => v.resize(len, 0.0),
            Buf::Str(v) => v.resize(len, ""),
        }
    }

    #[inline(always)]
    fn view(&self) -> Values<'_, 'a> {
        match self {
            Buf::Empty => unreachable!("register read before it was written"),
            Buf::Bool(v) => Values::Bool(Src::Slice(v)),
            Buf::I32(v) => Values::I32(Src::Slice(v)),
            Buf::I64(v) => Values::I64(Src::Slice(v)),
            Buf::F32(v) => Values::F32(Src::Slice(v)),
            Buf::F64(v) => Values::F64(Src::Slice(v)),
            Buf::Str(v) => Values::Str(Src::Slice(v)),
        }
    }

    /// `out[i] = cond[i] ? a[i] : b[i]` for any dtype.
    #[inline(always)]
    fn select(&mut self, cond: &Values<'_, 'a>, a: &Values<'_, 'a>, b: &Values<'_, 'a>) {
        let Values::Bool(c) = cond else {
            unreachable!("select condition is bool")
        };
        macro_rules! go {
            ($($buf:ident),*) => {
                match (self, a, b) {
                    $((Buf::$buf(out), Values::$buf(a), Values::$buf(b)) => match (c, a, b) {
                        // The fill_null shape: a mask, a column and a constant.
                        (Src::Slice(c), Src::Slice(a), Src::Splat(b)) => {
                            for (o, (&c, &a)) in out.iter_mut().zip(c.iter().zip(a.iter())) {
                                *o = select(c, a, *b);
                            }
                        }
                        (Src::Slice(c), Src::Slice(a), Src::Slice(b)) => {
                            for (o, (&c, (&a, &b))) in out.iter_mut().zip(c.iter().zip(a.iter().zip(b.iter()))) {
                                *o = select(c, a, b);
                            }
                        }
                        _ => {
                            for (i, o) in out.iter_mut().enumerate() {
                                *o = select(c.at(i), a.at(i), b.at(i));
                            }
                        }
                    },)*
                    _ => unreachable!("select operands share the output dtype"),
                }
            };
        }
        go!(Bool, I32, I64, F32, F64, Str)
    }
}

/// Expand a bitmap into one bool per bit, a byte (through [`BYTE_BITS`]) at a time.
#[inline(always)]
pub(crate) fn unpack_bits(bits: &BooleanBuffer, out: &mut Vec<bool>) {
    out.clear();
    out.resize(bits.len(), false);
    let chunks = bits.inner().bit_chunks(bits.offset(), bits.len());
    let mut rows = out.chunks_exact_mut(64);
    for (row, word) in (&mut rows).zip(chunks.iter()) {
        for (eight, byte) in row.chunks_exact_mut(8).zip(word.to_le_bytes()) {
            eight.copy_from_slice(&BYTE_BITS[usize::from(byte)]);
        }
    }
    let rest = chunks.remainder_bits();
    for (j, row) in rows.into_remainder().iter_mut().enumerate() {
        *row = (rest >> j) & 1 == 1;
    }
}

/// Pack bools into a bitmap, least significant bit first.
#[inline(always)]
fn pack_bits(valid: &[bool], out: &mut [u8]) {
    for (byte, eight) in out.iter_mut().zip(valid.chunks(8)) {
        *byte = eight
            .iter()
            .enumerate()
            .fold(0, |b, (k, &v)| b | (u8::from(v) << k));
    }
}

/// The bits of every byte value as bools, least significant first.
const BYTE_BITS: [[bool; 8]; 256] = {
    let mut table = [[false; 8]; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut bit = 0;
        while bit < 8 {
            table[byte][bit] = (byte >> bit) & 1 == 1;
            bit += 1;
        }
        byte += 1;
    }
    table
};

/// Dispatch on a float output buffer, binding `$out` to its `&mut Vec<T>`.
macro_rules! dispatch_float {
    ($buf:expr, |$out:ident| $body:expr) => {
        match $buf {
            Buf::F32($out) => $body,
            Buf::F64($out) => $body,
            _ => unreachable!("superinstructions are planned for float types only"),
        }
    };
}
use dispatch_float;

/// `y = clip((fill_null(x, f) ± shift) (*|/) scale, lo, hi)` per element: one
/// loop specialized for the affine's shape, each operation defined in
/// [`crate::ir::ops`].
#[inline(always)]
fn affine_block(affine: &Affine, x: &Operand<'_, '_>, out: &mut Buf<'_>) {
    #[inline(always)]
    fn run<'r, T: Float + Pick<'r>, const SUB: bool, const DIV: bool, const CLIP: bool>(
        affine: &Affine,
        x: &Operand<'r, '_>,
        out: &mut [T],
    ) {
        let transform = Transform::<T>::new(affine, x.valid);
        let y = |i: usize, x: T| transform.apply::<SUB, DIV, CLIP>(transform.filled(i, x));
        match T::pick(&x.values) {
            Src::Slice(xs) => {
                for (i, (o, &x)) in out.iter_mut().zip(xs).enumerate() {
                    *o = y(i, x);
                }
            }
            Src::Splat(x) => out.fill(y(0, x)),
        }
    }
    specialize_shape!(
        affine,
        out,
        |T, SUB, DIV, CLIP, out| run::<T, SUB, DIV, CLIP>(affine, x, out)
    );
}

/// `acc + w_1 * affine_1(x_1) + ... + w_k * affine_k(x_k)` per element, summed
/// left to right. Rows go by in chunks of one cache line of values; each
/// chunk's partial sums stay in vector registers while the terms stream by.
#[inline(always)]
fn dot_block(terms: &[Term], xs: &[Operand<'_, '_>], acc: &Values<'_, '_>, out: &mut Buf<'_>) {
    #[inline(always)]
    fn run<
        'r,
        T: Float + Pick<'r>,
        const SUB: bool,
        const DIV: bool,
        const CLIP: bool,
        const L: usize,
    >(
        terms: &[Term],
        xs: &[Operand<'r, '_>],
        acc: &Values<'r, '_>,
        out: &mut [T],
    ) {
        let n = out.len();
        // A constant input (rare: `fill_null(3.0, 0.0) * 2 ...`) is spread over
        // the block so every term streams a slice.
        let spread: Vec<Vec<T>> = xs
            .iter()
            .filter_map(|x| match T::pick(&x.values) {
                Src::Splat(v) => Some(vec![v; n]),
                Src::Slice(_) => None,
            })
            .collect();
        let mut spread = spread.iter();
        let bound: Vec<BlockTerm<'_, T>> = terms
            .iter()
            .zip(xs)
            .map(|(t, x)| {
                let values = match T::pick(&x.values) {
                    Src::Slice(v) => v,
                    Src::Splat(_) => spread.next().expect("one spread block per constant"),
                };
                BlockTerm {
                    x: values,
                    weight: T::from_f64(t.weight),
                    transform: Transform::new(&t.affine, x.valid),
                }
            })
            .collect();
        let acc = T::pick(acc);
        let chunks = n / L * L;
        for start in (0..chunks).step_by(L) {
            let mut sum: [T; L] = match acc {
                Src::Slice(a) => a[start..start + L].try_into().expect("L values"),
                Src::Splat(a) => [a; L],
            };
            for term in &bound {
                term.accumulate::<SUB, DIV, CLIP, L>(&mut sum, start);
            }
            out[start..start + L].copy_from_slice(&sum);
        }
        for (i, o) in out.iter_mut().enumerate().skip(chunks) {
            let mut sum = [acc.at(i)];
            for term in &bound {
                term.accumulate::<SUB, DIV, CLIP, 1>(&mut sum, i);
            }
            *o = sum[0];
        }
    }
    let shape = &terms[0].affine;
    // 64 bytes per row chunk: one cache line of each term's input.
    specialize_shape!(shape, out, |T, SUB, DIV, CLIP, out| run::<
        T,
        SUB,
        DIV,
        CLIP,
        { 64 / std::mem::size_of::<T>() },
    >(
        terms, xs, acc, out
    ));
}

/// An [`Affine`] bound to a block: its constants converted to the block's
/// type, and where its fill applies.
struct Transform<'r, T> {
    /// The input's validity, if it has nulls in this block and there is a fill.
    fill_where: Option<&'r [bool]>,
    fill: T,
    shift: T,
    scale: T,
    lo: T,
    hi: T,
}

impl<'r, T: Float> Transform<'r, T> {
    #[inline(always)]
    fn new(affine: &Affine, valid: Option<&'r [bool]>) -> Self {
        let (lo, hi) = affine.clip.unwrap_or_default();
        Transform {
            fill_where: valid.filter(|_| affine.fill.is_some()),
            fill: T::from_f64(affine.fill.unwrap_or_default()),
            shift: T::from_f64(affine.shift),
            scale: T::from_f64(affine.scale),
            lo: T::from_f64(lo),
            hi: T::from_f64(hi),
        }
    }

    /// Row `i`'s value `x`, or the fill where it is null.
    #[inline(always)]
    fn filled(&self, i: usize, x: T) -> T {
        match self.fill_where {
            Some(valid) => T::keep_or(valid[i], x, self.fill),
            None => x,
        }
    }

    /// `clip((x ± shift) (*|/) scale, lo, hi)`.
    #[inline(always)]
    fn apply<const SUB: bool, const DIV: bool, const CLIP: bool>(&self, x: T) -> T {
        let shifted = if SUB {
            BinaryOp::Sub.float(x, self.shift)
        } else {
            BinaryOp::Add.float(x, self.shift)
        };
        let scaled = if DIV {
            BinaryOp::Div.float(shifted, self.scale)
        } else {
            BinaryOp::Mul.float(shifted, self.scale)
        };
        if CLIP {
            clip(scaled, self.lo, self.hi)
        } else {
            scaled
        }
    }
}

/// One term `weight * transform(x)` of a dot product, bound to a block.
struct BlockTerm<'r, T> {
    x: &'r [T],
    weight: T,
    transform: Transform<'r, T>,
}

impl<T: Float> BlockTerm<'_, T> {
    /// `sum[l] += weight * transform(x[start + l])` for `L` rows.
    #[inline(always)]
    fn accumulate<const SUB: bool, const DIV: bool, const CLIP: bool, const L: usize>(
        &self,
        sum: &mut [T; L],
        start: usize,
    ) {
        let x: &[T; L] = self.x[start..start + L].try_into().expect("L values");
        let mut x = *x;
        let t = &self.transform;
        // Test once per chunk, not per row, whether the fill applies.
        if let Some(valid) = t.fill_where {
            let valid: &[bool; L] = valid[start..start + L].try_into().expect("L flags");
            for l in 0..L {
                x[l] = T::keep_or(valid[l], x[l], t.fill);
            }
        }
        for l in 0..L {
            let y = t.apply::<SUB, DIV, CLIP>(x[l]);
            sum[l] = BinaryOp::Add.float(sum[l], BinaryOp::Mul.float(self.weight, y));
        }
    }
}

/// Expands `$body` once per element type and affine shape, binding `$t` to
/// the type, the three shape flags to constants and `$out` to the `&mut Vec<T>`.
macro_rules! specialize_shape {
    ($affine:expr, $buf:expr, |$t:ident, $sub:ident, $div:ident, $clip:ident, $out:ident| $body:expr) => {{
        let affine = $affine;
        specialize_flag!(affine.subtract, $sub, {
            specialize_flag!(affine.divide, $div, {
                specialize_flag!(affine.clip.is_some(), $clip, {
                    match $buf {
                        Buf::F32($out) => {
                            type $t = f32;
                            $body
                        }
                        Buf::F64($out) => {
                            type $t = f64;
                            $body
                        }
                        _ => unreachable!("superinstructions are planned for float types only"),
                    }
                })
            })
        })
    }};
}
use specialize_shape;

/// Expands `$body` twice, with the constant `$name` false and true, and runs
/// the one that `$flag` selects.
macro_rules! specialize_flag {
    ($flag:expr, $name:ident, $body:expr) => {
        if $flag {
            const $name: bool = true;
            $body
        } else {
            const $name: bool = false;
            $body
        }
    };
}
use specialize_flag;

/// Dispatch on a numeric output buffer, binding `$out` to its `&mut Vec<T>`.
macro_rules! dispatch_numeric {
    ($buf:expr, |$out:ident| $body:expr) => {
        match $buf {
            Buf::I32($out) => $body,
            Buf::I64($out) => $body,
            Buf::F32($out) => $body,
            Buf::F64($out) => $body,
            _ => unreachable!("numeric operator on a non-numeric register"),
        }
    };
}
use dispatch_numeric;

/// Typed values of a numeric operand of the same dtype as `out`.
trait Pick<'r>: Sized + Copy {
    fn pick(values: &Values<'r, '_>) -> Src<'r, Self>;
}

macro_rules! impl_pick {
    ($t:ty, $variant:ident) => {
        impl<'r> Pick<'r> for $t {
            #[inline(always)]
            fn pick(values: &Values<'r, '_>) -> Src<'r, Self> {
                match values {
                    Values::$variant(s) => *s,
                    _ => unreachable!(concat!("operand is not ", stringify!($t))),
                }
            }
        }
    };
}
impl_pick!(bool, Bool);
impl_pick!(i32, I32);
impl_pick!(i64, I64);
impl_pick!(f32, F32);
impl_pick!(f64, F64);

/// `out[i] = f(a[i])`, specialized for slice and splat inputs.
#[inline(always)]
fn map1<A: Copy, O>(a: Src<'_, A>, out: &mut [O], f: impl Fn(A) -> O) {
    match a {
        Src::Slice(a) => {
            for (o, &a) in out.iter_mut().zip(a) {
                *o = f(a);
            }
        }
        Src::Splat(a) => {
            for o in out.iter_mut() {
                *o = f(a);
            }
        }
    }
}

/// `out[i] = f(a[i], b[i])`, specialized for slice and splat inputs.
#[inline(always)]
fn map2<A: Copy, O>(a: Src<'_, A>, b: Src<'_, A>, out: &mut [O], f: impl Fn(A, A) -> O) {
    match (a, b) {
        (Src::Slice(a), Src::Slice(b)) => {
            for (o, (&a, &b)) in out.iter_mut().zip(a.iter().zip(b)) {
                *o = f(a, b);
            }
        }
        (Src::Slice(a), Src::Splat(b)) => {
            for (o, &a) in out.iter_mut().zip(a) {
                *o = f(a, b);
            }
        }
        (Src::Splat(a), Src::Slice(b)) => {
            for (o, &b) in out.iter_mut().zip(b) {
                *o = f(a, b);
            }
        }
        (Src::Splat(a), Src::Splat(b)) => {
            for o in out.iter_mut() {
                *o = f(a, b);
            }
        }
    }
}

#[inline(always)]
fn ternary<'r, T: Native + Pick<'r>>(
    x: &Values<'r, '_>,
    lo: &Values<'r, '_>,
    hi: &Values<'r, '_>,
    out: &mut [T],
    f: fn(T, T, T) -> T,
) {
    let (x, lo, hi) = (T::pick(x), T::pick(lo), T::pick(hi));
    match (lo, hi) {
        (Src::Splat(lo), Src::Splat(hi)) => map1(x, out, |x| f(x, lo, hi)),
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = f(x.at(i), lo.at(i), hi.at(i));
            }
        }
    }
}

#[inline(always)]
fn unary(op: UnaryOp, a: &Values<'_, '_>, out: &mut Buf<'_>) {
    specialize_unary!(op, |OP| match (a, out) {
        (Values::Bool(a), Buf::Bool(out)) => map1(*a, out, |x| OP.logical(x)),
        (Values::I32(a), Buf::I32(out)) => map1(*a, out, |x| OP.numeric(x)),
        (Values::I64(a), Buf::I64(out)) => map1(*a, out, |x| OP.numeric(x)),
        (Values::F32(a), Buf::F32(out)) => map1(*a, out, |x| OP.float(x)),
        (Values::F64(a), Buf::F64(out)) => map1(*a, out, |x| OP.float(x)),
        _ => unreachable!("type checker guarantees operand types"),
    })
}

#[inline(always)]
fn binary(op: BinaryOp, a: &Values<'_, '_>, b: &Values<'_, '_>, out: &mut Buf<'_>) {
    specialize_binary!(op, |OP| match (a, b, out) {
        (Values::I32(a), Values::I32(b), Buf::I32(out)) =>
            map2(*a, *b, out, |x, y| OP.numeric(x, y)),
        (Values::I64(a), Values::I64(b), Buf::I64(out)) =>
            map2(*a, *b, out, |x, y| OP.numeric(x, y)),
        (Values::F32(a), Values::F32(b), Buf::F32(out)) => map2(*a, *b, out, |x, y| OP.float(x, y)),
        (Values::F64(a), Values::F64(b), Buf::F64(out)) => map2(*a, *b, out, |x, y| OP.float(x, y)),
        (Values::Bool(a), Values::Bool(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::I32(a), Values::I32(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::I64(a), Values::I64(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::F32(a), Values::F32(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::F64(a), Values::F64(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        (Values::Str(a), Values::Str(b), Buf::Bool(out)) =>
            map2(*a, *b, out, |x, y| OP.compare(x, y)),
        _ => unreachable!("type checker guarantees operand types"),
    })
}

/// Kleene `and` / `or`: a known `false` (for and) or `true` (for or) decides
/// the result even when the other side is null.
#[inline(always)]
fn kleene(op: BinaryOp, a: Operand<'_, '_>, b: Operand<'_, '_>, dst: &mut Reg<'_>) {
    let (Values::Bool(av), Values::Bool(bv)) = (a.values, b.values) else {
        unreachable!("logical operands are bool")
    };
    let Buf::Bool(out) = &mut dst.values else {
        unreachable!("logical result is bool")
    };
    let decides = op == BinaryOp::Or; // the value that decides the result alone
    map2(av, bv, out, |x, y| op.logical(x, y));
    if a.valid.is_none() && b.valid.is_none() {
        dst.has_nulls = false;
        return;
    }
    let va = |i: usize| a.valid.is_none_or(|v| v[i]);
    let vb = |i: usize| b.valid.is_none_or(|v| v[i]);
    dst.has_nulls = true;
    dst.valid.clear();
    #[allow(
        clippy::needless_range_loop,
        reason = "row i of four parallel columns and two validity masks"
    )]
    for i in 0..out.len() {
        let a_decides = va(i) && av.at(i) == decides;
        let b_decides = vb(i) && bv.at(i) == decides;
        dst.valid.push((va(i) && vb(i)) || a_decides || b_decides);
        out[i] = if a_decides || b_decides {
            decides
        } else {
            out[i]
        };
    }
}

/// `out = a`: a memcpy for slices, a fill for constants.
#[inline(always)]
fn copy<'a>(a: &Values<'_, 'a>, out: &mut Buf<'a>) {
    fn put<T: Copy>(src: Src<'_, T>, out: &mut [T]) {
        match src {
            Src::Slice(s) => out.copy_from_slice(s),
            Src::Splat(v) => out.fill(v),
        }
    }
    match (a, out) {
        (Values::Bool(a), Buf::Bool(o)) => put(*a, o),
        (Values::I32(a), Buf::I32(o)) => put(*a, o),
        (Values::I64(a), Buf::I64(o)) => put(*a, o),
        (Values::F32(a), Buf::F32(o)) => put(*a, o),
        (Values::F64(a), Buf::F64(o)) => put(*a, o),
        (Values::Str(a), Buf::Str(o)) => put(*a, o),
        _ => unreachable!("copy within one dtype"),
    }
}

/// Numeric and boolean conversions. Returns validity for conversions that can
/// fail (float to integer: NaN or out of range becomes null).
#[inline(always)]
fn cast<'a>(a: &Values<'_, 'a>, out: &mut Buf<'a>, from: DType, to: DType) -> Option<Vec<bool>> {
    if from == to {
        copy(a, out);
        return None;
    }
    fn num<'r, T: Native + Pick<'r>, O: Native>(
        a: &Values<'r, '_>,
        out: &mut [O],
    ) -> Option<Vec<bool>> {
        let a = T::pick(a);
        map1(a, out, |x| O::from_f64(x.to_f64()));
        if T::DTYPE.is_float() && O::DTYPE.is_integer() {
            // Truncate first, then require the integer to be representable:
            // [-2^31, 2^31) or [-2^63, 2^63), both exact in f64. NaN fails both tests.
            let bound = if O::DTYPE == DType::Int32 {
                2f64.powi(31)
            } else {
                2f64.powi(63)
            };
            let mut valid = vec![false; out.len()];
            map1(a, &mut valid, |x| {
                let t = x.to_f64().trunc();
                t >= -bound && t < bound
            });
            return Some(valid);
        }
        None
    }
    fn from_bool<O: Native>(a: &Values<'_, '_>, out: &mut [O]) {
        map1(bool::pick(a), out, |x| O::from_f64(f64::from(u8::from(x))));
    }
    fn to_bool<'r, T: Native + Pick<'r>>(a: &Values<'r, '_>, out: &mut [bool]) {
        map1(T::pick(a), out, |x| x.to_f64() != 0.0);
    }
    macro_rules! from_num {
        ($t:ty) => {
            match out {
                Buf::I32(o) => num::<$t, i32>(a, o),
                Buf::I64(o) => num::<$t, i64>(a, o),
                Buf::F32(o) => num::<$t, f32>(a, o),
                Buf::F64(o) => num::<$t, f64>(a, o),
                Buf::Bool(o) => {
                    to_bool::<$t>(a, o);
                    None
                }
                _ => unreachable!("cast target checked by the type checker"),
            }
        };
    }
    match from {
        DType::Int32 => from_num!(i32),
        DType::Int64 => from_num!(i64),
        DType::Float32 => from_num!(f32),
        DType::Float64 => from_num!(f64),
        DType::Bool => {
            match out {
                Buf::I32(o) => from_bool(a, o),
                Buf::I64(o) => from_bool(a, o),
                Buf::F32(o) => from_bool(a, o),
                Buf::F64(o) => from_bool(a, o),
                _ => unreachable!("cast target checked by the type checker"),
            }
            None
        }
        DType::Utf8 => unreachable!("utf8 casts only to utf8"),
    }
}

/// A full-length output column being filled block by block.
enum OutBuf {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str,
}

/// One block's slice of an output column.
enum OutSlice<'o> {
    Bool(&'o mut [bool]),
    I32(&'o mut [i32]),
    I64(&'o mut [i64]),
    F32(&'o mut [f32]),
    F64(&'o mut [f64]),
    Str,
}

impl OutBuf {
    fn new(dtype: DType, rows: usize) -> Self {
        match dtype {
            DType::Bool => OutBuf::Bool(vec![false; rows]),
            DType::Int32 => OutBuf::I32(vec![0; rows]),
            DType::Int64 => OutBuf::I64(vec![0; rows]),
            DType::Float32 => OutBuf::F32(vec![0.0; rows]),
            DType::Float64 => OutBuf::F64(vec![0.0; rows]),
            DType::Utf8 => OutBuf::Str,
        }
    }

    fn chunks_mut(&mut self, blocks: usize) -> Vec<OutSlice<'_>> {
        match self {
            OutBuf::Bool(v) => v.chunks_mut(BLOCK).map(OutSlice::Bool).collect(),
            OutBuf::I32(v) => v.chunks_mut(BLOCK).map(OutSlice::I32).collect(),
            OutBuf::I64(v) => v.chunks_mut(BLOCK).map(OutSlice::I64).collect(),
            OutBuf::F32(v) => v.chunks_mut(BLOCK).map(OutSlice::F32).collect(),
            OutBuf::F64(v) => v.chunks_mut(BLOCK).map(OutSlice::F64).collect(),
            OutBuf::Str => (0..blocks).map(|_| OutSlice::Str).collect(),
        }
    }

    fn finish<'s>(
        self,
        nulls: Option<NullBuffer>,
        strings: impl Iterator<Item = &'s Vec<&'s str>>,
    ) -> ArrayRef {
        fn prim<T: arrow_array::ArrowPrimitiveType>(
            v: Vec<T::Native>,
            nulls: Option<NullBuffer>,
        ) -> ArrayRef {
            Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(v), nulls))
        }
        match self {
            OutBuf::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
            OutBuf::I32(v) => prim::<types::Int32Type>(v, nulls),
            OutBuf::I64(v) => prim::<types::Int64Type>(v, nulls),
            OutBuf::F32(v) => prim::<types::Float32Type>(v, nulls),
            OutBuf::F64(v) => prim::<types::Float64Type>(v, nulls),
            OutBuf::Str => {
                let values = strings.flat_map(|block| block.iter().copied());
                let array: StringArray = match &nulls {
                    Some(n) => values
                        .zip(n.iter())
                        .map(|(s, valid)| valid.then_some(s))
                        .collect(),
                    None => values.map(Some).collect(),
                };
                Arc::new(array)
            }
        }
    }
}

impl<'o> OutSlice<'o> {
    /// Copy a block result into the output; string results are returned instead.
    #[inline(always)]
    fn write<'a>(self, values: &Values<'_, 'a>, len: usize) -> Vec<&'a str> {
        match (self, values) {
            (OutSlice::Bool(o), Values::Bool(v)) => map1(*v, o, |x| x),
            (OutSlice::I32(o), Values::I32(v)) => map1(*v, o, |x| x),
            (OutSlice::I64(o), Values::I64(v)) => map1(*v, o, |x| x),
            (OutSlice::F32(o), Values::F32(v)) => map1(*v, o, |x| x),
            (OutSlice::F64(o), Values::F64(v)) => map1(*v, o, |x| x),
            (OutSlice::Str, Values::Str(v)) => return (0..len).map(|i| v.at(i)).collect(),
            _ => unreachable!("output dtype matches its root"),
        }
        Vec::new()
    }
}

//! The columns a kernel reads, bound to one batch (numeric values in place,
//! bools and strings unpacked per block), and the output columns it fills
//! block by block.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, PrimitiveArray, StringArray, types};
use arrow_buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};

use super::evaluate::BLOCK;
use super::registers::{Operand, Src, Values, map1};
use super::validity::unpack_bits;
use crate::error::{Error, Result};
use crate::ir::DType;

/// A column the kernel reads, bound to one batch.
pub(super) enum Input<'a> {
    Bool(&'a BooleanArray),
    I32(&'a [i32], Option<&'a NullBuffer>),
    I64(&'a [i64], Option<&'a NullBuffer>),
    F32(&'a [f32], Option<&'a NullBuffer>),
    F64(&'a [f64], Option<&'a NullBuffer>),
    Str(&'a StringArray),
}

impl<'a> Input<'a> {
    /// Bind an Arrow array of a supported dtype.
    pub(super) fn new(array: &'a dyn Array) -> Result<Self> {
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

    /// The column's validity bitmap, if it has one.
    fn nulls(&self) -> Option<&'a NullBuffer> {
        match self {
            Input::Bool(a) => (*a).nulls(),
            Input::Str(a) => (*a).nulls(),
            Input::I32(_, n) | Input::I64(_, n) | Input::F32(_, n) | Input::F64(_, n) => *n,
        }
    }

    /// Unpack validity (and bool/string values) of one block into scratch space.
    #[inline(always)]
    pub(super) fn load(&self, start: usize, len: usize, scratch: &mut ColumnScratch<'a>) {
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

    /// The block at `start` as an operand: numeric values in place, the rest from `scratch`.
    #[inline(always)]
    pub(super) fn view<'r>(
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

/// One input column's block, unpacked: whether it has nulls, its validity,
/// and bool or string values (numeric values are read in place).
#[derive(Default)]
pub(super) struct ColumnScratch<'a> {
    has_nulls: bool,
    valid: Vec<bool>,
    bools: Vec<bool>,
    strs: Vec<&'a str>,
}

/// A full-length output column being filled block by block.
pub(super) enum OutBuf {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str,
}

/// One block's slice of an output column.
pub(super) enum OutSlice<'o> {
    Bool(&'o mut [bool]),
    I32(&'o mut [i32]),
    I64(&'o mut [i64]),
    F32(&'o mut [f32]),
    F64(&'o mut [f64]),
    Str,
}

impl OutBuf {
    /// A column of `rows` values of `dtype` (strings are collected at the end).
    pub(super) fn new(dtype: DType, rows: usize) -> Self {
        match dtype {
            DType::Bool => OutBuf::Bool(vec![false; rows]),
            DType::Int32 => OutBuf::I32(vec![0; rows]),
            DType::Int64 => OutBuf::I64(vec![0; rows]),
            DType::Float32 => OutBuf::F32(vec![0.0; rows]),
            DType::Float64 => OutBuf::F64(vec![0.0; rows]),
            DType::Utf8 => OutBuf::Str,
        }
    }

    /// One slice per block, for the `blocks` blocks to write in parallel.
    pub(super) fn chunks_mut(&mut self, blocks: usize) -> Vec<OutSlice<'_>> {
        match self {
            OutBuf::Bool(v) => v.chunks_mut(BLOCK).map(OutSlice::Bool).collect(),
            OutBuf::I32(v) => v.chunks_mut(BLOCK).map(OutSlice::I32).collect(),
            OutBuf::I64(v) => v.chunks_mut(BLOCK).map(OutSlice::I64).collect(),
            OutBuf::F32(v) => v.chunks_mut(BLOCK).map(OutSlice::F32).collect(),
            OutBuf::F64(v) => v.chunks_mut(BLOCK).map(OutSlice::F64).collect(),
            OutBuf::Str => (0..blocks).map(|_| OutSlice::Str).collect(),
        }
    }

    /// The Arrow array, with `nulls` and, for strings, each block's values in order.
    pub(super) fn finish<'s>(
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
    pub(super) fn write<'a>(self, values: &Values<'_, 'a>, len: usize) -> Vec<&'a str> {
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

//! Columns in device memory: upload from Arrow, download to Arrow.
//!
//! i32 and f32 values keep Arrow's layout and are written straight from the
//! Arrow buffer. Bool values and validity bitmaps travel as `u32` bit words
//! (Arrow's LSB-first bit order) that start at row 0: a slice that starts on a
//! byte is bound in place, one that starts mid-byte is re-aligned on the host.
//! The words are padded to whole words; bits past the last row mean nothing.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type};
use arrow_array::{Array, ArrayRef, BooleanArray, Float32Array, Int32Array};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer};

use super::WgpuBackend;
use crate::backend::DeviceArray;
use crate::error::{DeviceFailure, Error, Result};
use crate::ir::DType;

/// The device storage of a column.
pub(crate) struct Column {
    /// i32/f32 values, or bool values as bit words.
    pub values: wgpu::Buffer,
    /// Validity bit words; `None` when the column has no nulls.
    pub validity: Option<wgpu::Buffer>,
}

impl Column {
    /// `len` null-free f32 values in `values` as a device array.
    pub(crate) fn dense_f32(values: wgpu::Buffer, len: usize) -> DeviceArray {
        DeviceArray::new(
            DType::Float32,
            len,
            0,
            Arc::new(Column {
                values,
                validity: None,
            }),
        )
    }

    /// The storage behind a wgpu device array.
    pub(crate) fn of(array: &DeviceArray) -> Result<&Column> {
        array.storage::<Column>().ok_or_else(|| {
            Error::Internal("a device array from another backend was given to wgpu".into())
        })
    }
}

/// Bytes of the bit words of `rows` rows.
pub(crate) fn bit_bytes(rows: usize) -> u64 {
    rows.div_ceil(32) as u64 * 4
}

/// Bytes of the values of a column of `rows` rows of `dtype`.
pub(crate) fn value_bytes(dtype: DType, rows: usize) -> u64 {
    match dtype {
        DType::Bool => bit_bytes(rows),
        _ => rows as u64 * 4,
    }
}

/// The bit words of `bits`, starting at its first bit.
fn bit_words(bits: &BooleanBuffer) -> Cow<'_, [u8]> {
    let bytes = bit_bytes(bits.len()) as usize;
    if bits.offset().is_multiple_of(8) {
        let start = bits.offset() / 8;
        if let Some(words) = bits.values().get(start..start + bytes) {
            return Cow::Borrowed(words);
        }
    }
    let chunks: Vec<u64> = bits
        .inner()
        .bit_chunks(bits.offset(), bits.len())
        .iter_padded()
        .collect();
    Cow::Owned(bytemuck::cast_slice(&chunks)[..bytes].to_vec())
}

/// Copy `array` into device memory.
pub(crate) fn upload(backend: &WgpuBackend, array: &ArrayRef) -> Result<DeviceArray> {
    let dtype = DType::from_arrow(array.data_type())
        .filter(|d| matches!(d, DType::Bool | DType::Int32 | DType::Float32))
        .ok_or_else(|| {
            backend.error(
                DeviceFailure::Unsupported,
                format!(
                    "cannot hold a column of {}: wgpu computes on bool, i32 and f32 only; cast it \
                     (`cast(x, f32)`) or place the step on `cpu`",
                    array.data_type()
                ),
            )
        })?;
    let values: Cow<'_, [u8]> = match dtype {
        DType::Bool => bit_words(array.as_boolean().values()),
        DType::Int32 => Cow::Borrowed(bytemuck::cast_slice(
            array.as_primitive::<Int32Type>().values(),
        )),
        _ => Cow::Borrowed(bytemuck::cast_slice(
            array.as_primitive::<Float32Type>().values(),
        )),
    };
    let nulls = array.nulls().filter(|n| n.null_count() > 0);
    let write = |what: &str, bytes: &[u8]| -> Result<wgpu::Buffer> {
        let buffer = backend.storage(what, bytes.len() as u64)?;
        if !bytes.is_empty() {
            backend.scoped(&format!("uploading {what}"), DeviceFailure::Launch, || {
                backend.queue().write_buffer(&buffer, 0, bytes)
            })?;
        }
        Ok(buffer)
    };
    let column = Column {
        values: write("column values", &values)?,
        validity: nulls
            .map(|n| write("column validity", &bit_words(n.inner())))
            .transpose()?,
    };
    Ok(DeviceArray::new(
        dtype,
        array.len(),
        nulls.map_or(0, NullBuffer::null_count),
        Arc::new(column),
    ))
}

/// Bit words read back as an Arrow bitmap of `rows` bits.
fn read_bits(backend: &WgpuBackend, buffer: &wgpu::Buffer, rows: usize) -> Result<BooleanBuffer> {
    let words: Vec<u32> = backend.read(buffer, rows.div_ceil(32))?;
    Ok(BooleanBuffer::new(Buffer::from_vec(words), 0, rows))
}

/// Copy a device column back into an Arrow array.
pub(crate) fn download(backend: &WgpuBackend, array: &DeviceArray) -> Result<ArrayRef> {
    let column = Column::of(array)?;
    let rows = array.len();
    let nulls = match &column.validity {
        Some(validity) if array.null_count() > 0 => {
            Some(NullBuffer::new(read_bits(backend, validity, rows)?))
        }
        _ => None,
    };
    Ok(match array.dtype() {
        DType::Bool => Arc::new(BooleanArray::new(
            read_bits(backend, &column.values, rows)?,
            nulls,
        )),
        DType::Int32 => Arc::new(Int32Array::new(
            backend.read::<i32>(&column.values, rows)?.into(),
            nulls,
        )),
        DType::Float32 => Arc::new(Float32Array::new(
            backend.read::<f32>(&column.values, rows)?.into(),
            nulls,
        )),
        other => {
            return Err(Error::Internal(format!(
                "a wgpu device array of {other}, which upload refuses"
            )));
        }
    })
}

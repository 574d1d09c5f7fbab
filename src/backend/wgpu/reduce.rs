//! Column statistics on the device: per-block partials in f32 by
//! `kernels/wgsl/reduce.wgsl`, combined on the host in f64 in block order with
//! [`ColumnStats::merge`], the combine the CPU backend uses.

use super::WgpuBackend;
use super::codegen::PRELUDE;
use super::device::Dispatch;
use super::memory::{Column, bit_bytes, value_bytes};
use crate::backend::{ColumnStats, DeviceArray};
use crate::error::{DeviceFailure, Result};
use crate::ir::DType;

/// Rows per block (`CHUNK` in the kernel).
const CHUNK: usize = 4096;

/// `u32` words per partial (`Partial` in the kernel).
const PARTIAL_WORDS: usize = 8;

/// The reduction kernel for a column of `dtype`, reading validity when `nullable`.
pub(crate) fn source(dtype: DType, nullable: bool) -> String {
    let elem = if dtype == DType::Int32 { "i32" } else { "f32" };
    let valid = if nullable {
        "@group(0) @binding(2) var<storage, read> validity: array<u32>;\n\
         fn ff_valid(row: u32) -> bool { return ((validity[row >> 5u] >> (row & 31u)) & 1u) != 0u; }\n"
    } else {
        "fn ff_valid(row: u32) -> bool { return true; }\n"
    };
    format!(
        "{PRELUDE}\nalias Elem = {elem};\n{valid}\n{}",
        include_str!("../../../kernels/wgsl/reduce.wgsl")
    )
}

/// Statistics of a numeric column (see [`Backend::reduce`]).
///
/// [`Backend::reduce`]: crate::backend::Backend::reduce
pub(crate) fn reduce(backend: &WgpuBackend, array: &DeviceArray) -> Result<ColumnStats> {
    let dtype = array.dtype();
    if !matches!(dtype, DType::Int32 | DType::Float32) {
        return Err(backend.error(
            DeviceFailure::Unsupported,
            format!("statistics need an i32 or f32 column on wgpu, this one is {dtype}"),
        ));
    }
    let rows = array.len();
    if rows == 0 {
        return Ok(ColumnStats::EMPTY);
    }
    let column = Column::of(array)?;
    let validity = column.validity.as_ref().filter(|_| array.null_count() > 0);
    let blocks = rows.div_ceil(CHUNK);
    let partials = backend.storage("reduction partials", (blocks * PARTIAL_WORDS * 4) as u64)?;
    let pipeline = backend.pipeline("reduction", &source(dtype, validity.is_some()))?;
    // Pieces are whole blocks, so the blocks, and the result, do not depend on the split.
    let piece = backend.piece_rows();
    let pieces: Vec<(usize, usize, [u32; 3])> = (0..rows)
        .step_by(piece)
        .map(|start| {
            let n = piece.min(rows - start);
            Ok((start, n, backend.grid(n.div_ceil(CHUNK) as u64)?))
        })
        .collect::<Result<_>>()?;
    let params = pieces
        .iter()
        .map(|&(start, n, grid)| backend.uniform(&[n as u32, grid[0], (start / CHUNK) as u32]))
        .collect::<Result<Vec<_>>>()?;
    let dispatches = pieces
        .iter()
        .zip(&params)
        .map(|(&(start, n, groups), params)| {
            let mut entries = vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: WgpuBackend::range(
                        &column.values,
                        value_bytes(dtype, start),
                        value_bytes(dtype, n),
                    ),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: partials.as_entire_binding(),
                },
            ];
            if let Some(validity) = validity {
                entries.push(wgpu::BindGroupEntry {
                    binding: 2,
                    resource: WgpuBackend::range(validity, bit_bytes(start), bit_bytes(n)),
                });
            }
            Dispatch { entries, groups }
        })
        .collect();
    backend.dispatch("reduction", &pipeline, dispatches)?;
    let words: Vec<u32> = backend.read(&partials, blocks * PARTIAL_WORDS)?;
    Ok(words
        .chunks_exact(PARTIAL_WORDS)
        .map(partial)
        .fold(ColumnStats::EMPTY, ColumnStats::merge))
}

/// A block's partial as [`ColumnStats`] (NaN mean, min and max when it has no values).
fn partial(words: &[u32]) -> ColumnStats {
    let (finite, nulls, nans) = (words[0], words[1], words[2]);
    let f = |i: usize| {
        if finite == 0 {
            f64::NAN
        } else {
            f64::from(f32::from_bits(words[i]))
        }
    };
    ColumnStats {
        count: u64::from(finite) + u64::from(nans),
        nulls: u64::from(nulls),
        nans: u64::from(nans),
        mean: f(4),
        m2: if finite == 0 { 0.0 } else { f(5) },
        min: f(6),
        max: f(7),
    }
}

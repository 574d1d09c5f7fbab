//! Running a fused kernel over columns, in pieces no larger than one binding.
//!
//! A column may be larger than the device lets one storage binding cover
//! (`max_storage_buffer_binding_size`, often 128 MiB to 4 GiB). Columns live
//! in one buffer each, and each piece of [`WgpuBackend::piece_rows`] rows is a
//! separate dispatch whose bindings are byte ranges of those buffers; pieces
//! are whole multiples of 4096 rows, so bit words never straddle two pieces.

use std::sync::Arc;

use super::WgpuBackend;
use super::codegen::{FusedKernel, WORKGROUP, fused_kernel};
use super::device::Dispatch;
use super::memory::{Column, bit_bytes, value_bytes};
use crate::backend::DeviceArray;
use crate::backend::codegen::InputUse;
use crate::error::{Error, Result, ensure};
use crate::ir::Projection;

/// Evaluate every output of `projection` over `inputs` (see [`Backend::launch`]).
///
/// [`Backend::launch`]: crate::backend::Backend::launch
pub(crate) fn launch(
    backend: &WgpuBackend,
    projection: &Projection,
    inputs: &[Option<&DeviceArray>],
) -> Result<Vec<DeviceArray>> {
    let rows = inputs.iter().flatten().map(|a| a.len()).next().unwrap_or(0);
    ensure!(
        inputs.iter().flatten().all(|a| a.len() == rows),
        Error::Internal("launch of a fused kernel on columns of different lengths".into())
    );
    let nullable: Vec<bool> = inputs
        .iter()
        .map(|a| a.is_some_and(|a| a.null_count() > 0))
        .collect();
    let kernel = fused_kernel(projection, &nullable, backend.name())?;
    let columns = kernel
        .body
        .inputs
        .iter()
        .map(|input| match inputs.get(input.column).copied().flatten() {
            Some(array) => Column::of(array).map(|c| (input, c)),
            None => Err(Error::Internal(format!(
                "launch without input column {}, which the kernel reads",
                input.column
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let outputs = allocate_outputs(backend, &kernel, rows)?;
    let nulls = kernel
        .body
        .outputs
        .iter()
        .any(|o| o.valid.is_some())
        .then(|| backend.storage("null counters", 4 * outputs.len() as u64))
        .transpose()?;
    if rows > 0 {
        dispatch_pieces(backend, &kernel, &columns, &outputs, nulls.as_ref(), rows)?;
    }
    let null_counts: Vec<u32> = match &nulls {
        Some(nulls) if rows > 0 => backend.read(nulls, outputs.len())?,
        _ => vec![0; outputs.len()],
    };
    Ok(kernel
        .body
        .outputs
        .iter()
        .zip(outputs)
        .zip(null_counts)
        .map(|((out, mut column), nulls)| {
            // An output without nulls carries no validity, as the trait promises.
            if nulls == 0 {
                column.validity = None;
            }
            DeviceArray::new(out.dtype, rows, nulls as usize, Arc::new(column))
        })
        .collect())
}

/// Storage for every output of `kernel` over `rows` rows: values, and
/// validity where the output can be null.
fn allocate_outputs(
    backend: &WgpuBackend,
    kernel: &FusedKernel,
    rows: usize,
) -> Result<Vec<Column>> {
    kernel
        .body
        .outputs
        .iter()
        .map(|out| {
            Ok(Column {
                values: backend.storage("kernel output", value_bytes(out.dtype, rows))?,
                validity: match out.valid {
                    Some(_) => Some(backend.storage("kernel output validity", bit_bytes(rows))?),
                    None => None,
                },
            })
        })
        .collect()
}

/// Dispatch `kernel` once per piece of [`WgpuBackend::piece_rows`] rows, each
/// piece binding its byte ranges of the inputs and outputs.
fn dispatch_pieces(
    backend: &WgpuBackend,
    kernel: &FusedKernel,
    columns: &[(&InputUse, &Column)],
    outputs: &[Column],
    nulls: Option<&wgpu::Buffer>,
    rows: usize,
) -> Result<()> {
    let pipeline = backend.pipeline("fused kernel", &kernel.source)?;
    let piece = backend.piece_rows();
    let pieces: Vec<(usize, usize, [u32; 3])> = (0..rows)
        .step_by(piece)
        .map(|start| {
            let n = piece.min(rows - start);
            Ok((start, n, backend.grid(row_groups(n))?))
        })
        .collect::<Result<_>>()?;
    let params = pieces
        .iter()
        .map(|&(_, n, grid)| backend.uniform(&[n as u32, grid[0]]))
        .collect::<Result<Vec<_>>>()?;
    let dispatches = pieces
        .iter()
        .zip(&params)
        .map(|(&(start, n, groups), params)| {
            let mut resources = vec![params.as_entire_binding()];
            let values = |buffer, dtype| {
                let offset = value_bytes(dtype, start);
                WgpuBackend::range(buffer, offset, value_bytes(dtype, n))
            };
            let bits = |buffer| WgpuBackend::range(buffer, bit_bytes(start), bit_bytes(n));
            for (input, column) in columns {
                resources.push(values(&column.values, input.dtype));
                if input.nullable {
                    let validity = column.validity.as_ref().ok_or_else(|| {
                        Error::Internal("a column with nulls has no validity buffer".into())
                    })?;
                    resources.push(bits(validity));
                }
            }
            for (out, column) in kernel.body.outputs.iter().zip(outputs) {
                resources.push(values(&column.values, out.dtype));
                if let Some(validity) = &column.validity {
                    resources.push(bits(validity));
                }
            }
            if let Some(nulls) = nulls {
                resources.push(nulls.as_entire_binding());
            }
            Ok(Dispatch::new(resources, groups))
        })
        .collect::<Result<Vec<_>>>()?;
    backend.dispatch("fused kernel", &pipeline, dispatches)
}

/// Workgroups for `rows` rows, one row per invocation.
fn row_groups(rows: usize) -> u64 {
    (rows as u64).div_ceil(u64::from(WORKGROUP))
}

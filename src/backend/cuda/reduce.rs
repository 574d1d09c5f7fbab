//! Column statistics on the device: `kernels/cuda/reduce.cu` writes one
//! partial per fixed chunk of [`REDUCE_CHUNK`] rows, and the host merges them
//! in chunk order with [`ColumnStats::merge`], the CPU's own merge, so
//! results repeat bit for bit and differ from the CPU's only by the order of
//! additions inside a chunk.

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};

use super::compile::ModuleCache;
use super::device::Device;
use super::memory::column;
use crate::backend::{ColumnStats, DeviceArray};
use crate::error::{DeviceFailure, Result};
use crate::ir::DType;

/// The statistics kernels, as compiled by NVRTC.
pub const REDUCE_SOURCE: &str = include_str!("../../../kernels/cuda/reduce.cu");

/// Rows per partial (`FF_CHUNK` in `reduce.cu`).
const REDUCE_CHUNK: usize = 8192;
/// Threads per block (`FF_THREADS` in `reduce.cu`).
const REDUCE_THREADS: u32 = 256;

/// The entry point of `reduce.cu` for a numeric dtype.
pub fn reduce_entry(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::Float32 => Some("ff_reduce_f32"),
        DType::Float64 => Some("ff_reduce_f64"),
        DType::Int32 => Some("ff_reduce_i32"),
        DType::Int64 => Some("ff_reduce_i64"),
        DType::Bool | DType::Utf8 => None,
    }
}

/// `ff_partial` in `reduce.cu`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Partial {
    count: u64,
    nulls: u64,
    nans: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

// SAFETY: plain old data with the C layout of `ff_partial`; all-zero is valid.
unsafe impl DeviceRepr for Partial {}
// SAFETY: as above.
unsafe impl ValidAsZeroBits for Partial {}

impl From<Partial> for ColumnStats {
    fn from(p: Partial) -> ColumnStats {
        ColumnStats {
            count: p.count,
            nulls: p.nulls,
            nans: p.nans,
            mean: p.mean,
            m2: p.m2,
            min: p.min,
            max: p.max,
        }
    }
}

/// Statistics of a numeric device array.
pub(super) fn reduce(
    device: &Device,
    modules: &ModuleCache,
    array: &DeviceArray,
) -> Result<ColumnStats> {
    let entry = reduce_entry(array.dtype()).ok_or_else(|| {
        device.error(
            DeviceFailure::Unsupported,
            format!(
                "statistics need a numeric column, this one is {}; cast it to f32/f64 first",
                array.dtype()
            ),
        )
    })?;
    let len = array.len();
    if len == 0 {
        return Ok(ColumnStats::EMPTY);
    }
    let col = column(array)?;
    let function = modules.function(device, REDUCE_SOURCE, entry)?;
    let chunks = len.div_ceil(REDUCE_CHUNK);
    let doing = format!("kernel `{entry}` over {len} rows");
    let mut partials = device
        .stream
        .alloc_zeros::<Partial>(chunks)
        .map_err(|e| device.driver_error(DeviceFailure::Launch, &doing, "cuMemAllocAsync", e))?;
    let no_validity: u64 = 0;
    let rows = len as i64;
    let config = LaunchConfig {
        grid_dim: (chunks as u32, 1, 1),
        block_dim: (REDUCE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = device.stream.launch_builder(&function);
    launch.arg(&col.values);
    match (&col.validity, array.null_count()) {
        (Some(validity), n) if n > 0 => launch.arg(validity),
        _ => launch.arg(&no_validity),
    };
    launch.arg(&rows).arg(&mut partials);
    // SAFETY: the arguments match `ff_reduce_*`'s parameters in type and
    // order; the values hold `len` elements, the validity `ceil(len/32)`
    // words, and `partials` one element per block.
    unsafe { launch.launch(config) }
        .map_err(|e| device.driver_error(DeviceFailure::Launch, &doing, "cuLaunchKernel", e))?;
    let partials = device.stream.clone_dtoh(&partials).map_err(|e| {
        device.driver_error(
            DeviceFailure::Launch,
            &doing,
            "cuMemcpyDtoHAsync (partials)",
            e,
        )
    })?;
    device.stream.synchronize().map_err(|e| {
        device.driver_error(DeviceFailure::Launch, &doing, "cuStreamSynchronize", e)
    })?;
    Ok(partials
        .into_iter()
        .fold(ColumnStats::EMPTY, |acc, p| acc.merge(p.into())))
}

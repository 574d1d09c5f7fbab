//! Running a [`Projection`] as one fused kernel: specialize on the inputs'
//! nulls, generate and compile (once per source, see
//! [`ModuleCache`]), allocate outputs, launch, and read the null counts.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::codegen::{FUSED_ENTRY, FusedKernel, Param, fused_kernel};
use super::compile::ModuleCache;
use super::device::Device;
use super::memory::{CudaColumn, alloc, alloc_zeros, column, value_bytes, words};
use crate::backend::DeviceArray;
use crate::error::{DeviceFailure, Error, Result};
use crate::ir::Projection;

/// Evaluate every output of `projection` over `inputs` (see
/// [`Backend::launch`](crate::backend::Backend::launch)).
///
/// Queued asynchronously, except that outputs which can be null need their
/// null counts: when there are any, the call waits for the kernel.
pub(super) fn launch(
    device: &Device,
    modules: &ModuleCache,
    projection: &Projection,
    inputs: &[Option<&DeviceArray>],
) -> Result<Vec<DeviceArray>> {
    let outputs: Vec<&str> = projection
        .outputs()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    let what = format!("fused kernel for outputs [{}]", outputs.join(", "));
    let width = projection.input_schema().fields().len();
    if inputs.len() != width {
        return Err(Error::Internal(format!(
            "{what}: {} inputs given for an input schema of {width} columns",
            inputs.len()
        )));
    }
    let rows = inputs.iter().flatten().map(|a| a.len()).next().unwrap_or(0);
    if let Some(other) = inputs.iter().flatten().find(|a| a.len() != rows) {
        return Err(Error::Internal(format!(
            "{what}: inputs of {rows} and {} rows",
            other.len()
        )));
    }
    let nullable: Vec<bool> = inputs
        .iter()
        .map(|a| a.is_some_and(|a| a.null_count() > 0))
        .collect();
    let kernel = fused_kernel(projection, &nullable, &device.label)?;
    check_inputs(&what, &kernel, inputs)?;
    let doing = format!("{what} over {rows} rows");
    let buffers = Outputs::alloc(device, &kernel, rows, &doing)?;
    if rows > 0 {
        run(
            device, modules, &kernel, inputs, &buffers, rows, &what, &doing,
        )?;
    }
    let counts = null_counts(device, &kernel, &buffers.null_counts, rows, &doing)?;
    Ok(kernel
        .outputs
        .iter()
        .zip(buffers.values.into_iter().zip(buffers.validity))
        .zip(counts)
        .map(|((output, (values, validity)), nulls)| {
            DeviceArray::new(
                output.dtype,
                rows,
                nulls as usize,
                Arc::new(CudaColumn { values, validity }),
            )
        })
        .collect())
}

/// Check that every column the kernel reads was given, with the dtype it reads.
fn check_inputs(what: &str, kernel: &FusedKernel, inputs: &[Option<&DeviceArray>]) -> Result<()> {
    for used in &kernel.inputs {
        match inputs[used.column] {
            Some(array) if array.dtype() == used.dtype => {}
            Some(array) => {
                return Err(Error::Internal(format!(
                    "{what}: input column {} is {} on the device, the projection reads {}",
                    used.column,
                    array.dtype(),
                    used.dtype
                )));
            }
            None => {
                return Err(Error::Internal(format!(
                    "{what}: input column {} is read but was not given",
                    used.column
                )));
            }
        }
    }
    Ok(())
}

/// The device buffers a fused kernel writes.
struct Outputs {
    /// Each output's values (bool outputs as bit words).
    values: Vec<CudaSlice<u8>>,
    /// Each output's validity words, where it can be null.
    validity: Vec<Option<CudaSlice<u8>>>,
    /// One zeroed 64-bit null counter per output.
    null_counts: CudaSlice<u8>,
}

impl Outputs {
    /// Allocate the outputs of `kernel` over `rows` rows.
    fn alloc(device: &Device, kernel: &FusedKernel, rows: usize, doing: &str) -> Result<Outputs> {
        let mut values = Vec::with_capacity(kernel.outputs.len());
        let mut validity = Vec::with_capacity(kernel.outputs.len());
        for output in &kernel.outputs {
            values.push(alloc(device, value_bytes(output.dtype, rows), doing)?);
            validity.push(match output.nullable {
                true => Some(alloc(device, words(rows) * 4, doing)?),
                false => None,
            });
        }
        let null_counts = alloc_zeros(device, kernel.outputs.len() * 8, doing)?;
        Ok(Outputs {
            values,
            validity,
            null_counts,
        })
    }
}

/// Compile (once per source) and launch `kernel` over `rows` rows, passing
/// the arguments in the order of its parameter list.
#[allow(
    clippy::too_many_arguments,
    reason = "what is launched, on what, and the two ways errors name it"
)]
fn run(
    device: &Device,
    modules: &ModuleCache,
    kernel: &FusedKernel,
    inputs: &[Option<&DeviceArray>],
    outputs: &Outputs,
    rows: usize,
    what: &str,
    doing: &str,
) -> Result<()> {
    let function = modules.function(device, &kernel.full_source(), FUSED_ENTRY)?;
    let input = |c: usize| column(inputs[c].expect("checked against kernel.inputs"));
    let n = rows as i64;
    let mut launch = device.stream.launch_builder(&function);
    // Walk the parameter list the kernel was generated from, in order.
    for param in &kernel.params {
        match *param {
            Param::Rows => launch.arg(&n),
            Param::Values(c) => launch.arg(&input(c)?.values),
            Param::Validity(c) => launch.arg(input(c)?.validity.as_ref().ok_or_else(|| {
                Error::Internal(format!(
                    "{what}: input column {c} has nulls but no validity"
                ))
            })?),
            Param::Output(k) => launch.arg(&outputs.values[k]),
            Param::OutputValidity(k) => launch.arg(
                outputs.validity[k]
                    .as_ref()
                    .expect("allocated for every nullable output"),
            ),
            Param::NullCounts => launch.arg(&outputs.null_counts),
        };
    }
    let config = LaunchConfig {
        grid_dim: (device.grid_for(rows), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments follow `kernel.params`, the list the kernel's
    // signature was generated from; inputs hold `rows` values (bit words:
    // `ceil(rows/32)`), outputs were allocated for `rows` rows above.
    unsafe { launch.launch(config) }.map_err(|e| {
        device.driver_error(
            DeviceFailure::Launch,
            doing,
            &format!("cuLaunchKernel(`{FUSED_ENTRY}`)"),
            e,
        )
    })?;
    Ok(())
}

/// Each output's null count: read back (waiting for the kernel) when an
/// output can be null and there are rows, else zeros.
fn null_counts(
    device: &Device,
    kernel: &FusedKernel,
    counters: &CudaSlice<u8>,
    rows: usize,
    doing: &str,
) -> Result<Vec<u64>> {
    if !(kernel.outputs.iter().any(|o| o.nullable) && rows > 0) {
        return Ok(vec![0; kernel.outputs.len()]);
    }
    let bytes = device.stream.clone_dtoh(counters).map_err(|e| {
        device.driver_error(
            DeviceFailure::Launch,
            doing,
            "cuMemcpyDtoHAsync (null counts)",
            e,
        )
    })?;
    device
        .stream
        .synchronize()
        .map_err(|e| device.driver_error(DeviceFailure::Launch, doing, "cuStreamSynchronize", e))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

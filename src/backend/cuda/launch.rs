//! Running a [`Projection`] as one fused kernel: specialize on the inputs'
//! nulls, generate and compile (once per source, see
//! [`ModuleCache`]), allocate outputs, launch, and read the null counts.

use std::sync::Arc;

use cudarc::driver::{LaunchConfig, PushKernelArg};

use super::codegen::{FUSED_ENTRY, Param, fused_kernel};
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
    let doing = format!("{what} over {rows} rows");

    let mut values = Vec::with_capacity(kernel.outputs.len());
    let mut validity = Vec::with_capacity(kernel.outputs.len());
    for output in &kernel.outputs {
        values.push(alloc(device, value_bytes(output.dtype, rows), &doing)?);
        validity.push(match output.nullable {
            true => Some(alloc(device, words(rows) * 4, &doing)?),
            false => None,
        });
    }
    let null_counts = alloc_zeros(device, kernel.outputs.len() * 8, &doing)?;

    if rows > 0 {
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
                Param::Output(k) => launch.arg(&values[k]),
                Param::OutputValidity(k) => launch.arg(
                    validity[k]
                        .as_ref()
                        .expect("allocated for every nullable output"),
                ),
                Param::NullCounts => launch.arg(&null_counts),
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
                &doing,
                &format!("cuLaunchKernel(`{FUSED_ENTRY}`)"),
                e,
            )
        })?;
    }

    let counts: Vec<u64> = if kernel.outputs.iter().any(|o| o.nullable) && rows > 0 {
        let bytes = device.stream.clone_dtoh(&null_counts).map_err(|e| {
            device.driver_error(
                DeviceFailure::Launch,
                &doing,
                "cuMemcpyDtoHAsync (null counts)",
                e,
            )
        })?;
        device.stream.synchronize().map_err(|e| {
            device.driver_error(DeviceFailure::Launch, &doing, "cuStreamSynchronize", e)
        })?;
        bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect()
    } else {
        vec![0; kernel.outputs.len()]
    };
    Ok(kernel
        .outputs
        .iter()
        .zip(values.into_iter().zip(validity))
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

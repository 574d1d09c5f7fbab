//! Dense f32 matrix products with the tiled kernel `kernels/wgsl/matmul.wgsl`.

use super::WgpuBackend;
use super::device::Dispatch;
use super::memory::Column;
use crate::backend::{DeviceArray, Matrix};
use crate::error::{DeviceFailure, Result};

/// Rows and columns of C per workgroup (`TILE` in the kernel).
const TILE: usize = 16;

/// The matrix product kernel.
pub(crate) const SOURCE: &str = include_str!("../../../kernels/wgsl/matmul.wgsl");

/// The product `a · b` (see [`Backend::matmul`]).
///
/// [`Backend::matmul`]: crate::backend::Backend::matmul
pub(crate) fn matmul(backend: &WgpuBackend, a: Matrix<'_>, b: Matrix<'_>) -> Result<DeviceArray> {
    let (m, k, n) = Matrix::product_shape(&a, &b)?;
    let (a_values, b_values) = (operand(backend, a)?, operand(backend, b)?);
    let out_bytes = (m as u64) * (n as u64) * 4;
    if out_bytes > backend.binding_limit() {
        return Err(backend.error(
            DeviceFailure::OutOfMemory,
            format!(
                "a {m}x{n} product ({} MiB) exceeds the device's largest binding ({} MiB); \
                 multiply in row blocks or use --device cpu",
                out_bytes >> 20,
                backend.binding_limit() >> 20
            ),
        ));
    }
    let out = backend.storage("matmul output", out_bytes)?;
    if m > 0 && n > 0 {
        let [groups_x, rows_z, _] = backend.grid(m.div_ceil(TILE) as u64)?;
        let groups_y = backend.grid(n.div_ceil(TILE) as u64)?;
        if groups_y[1] > 1 {
            return Err(backend.error(
                DeviceFailure::OutOfMemory,
                format!("a product with {n} columns exceeds the device's grid; multiply in column blocks"),
            ));
        }
        let params = backend.uniform(&[
            m as u32,
            n as u32,
            k as u32,
            a.rows as u32,
            b.rows as u32,
            u32::from(a.transposed),
            u32::from(b.transposed),
            groups_x,
        ])?;
        let resources = [
            params.as_entire_binding(),
            a_values.as_entire_binding(),
            b_values.as_entire_binding(),
            out.as_entire_binding(),
        ];
        let pipeline = backend.pipeline("matmul", SOURCE)?;
        backend.dispatch(
            "matmul",
            &pipeline,
            vec![Dispatch::new(resources, [groups_x, groups_y[0], rows_z])],
        )?;
    }
    Ok(Column::dense_f32(out, m * n))
}

/// The values of an operand (checked by [`Matrix::product_shape`]), which
/// must fit in one binding.
fn operand<'a>(backend: &WgpuBackend, x: Matrix<'a>) -> Result<&'a wgpu::Buffer> {
    let bytes = x.data.len() as u64 * 4;
    if bytes > backend.binding_limit() {
        return Err(backend.error(
            DeviceFailure::OutOfMemory,
            format!(
                "a {}x{} matrix ({} MiB) exceeds the device's largest binding ({} MiB); \
                     multiply in row blocks or use --device cpu",
                x.rows,
                x.cols,
                bytes >> 20,
                backend.binding_limit() >> 20
            ),
        ));
    }
    Ok(&Column::of(x.data)?.values)
}

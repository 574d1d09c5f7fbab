//! Dense f32 products with cuBLAS `sgemm`.
//!
//! [`Matrix`] is column-major like cuBLAS, so a stored `rows x cols` operand
//! has leading dimension `rows`, and reading it transposed is `CUBLAS_OP_T`.
//! The handle keeps cuBLAS's default math mode, which on sm_80+ computes in
//! full f32 (TF32 tensor cores only when asked for), so results stay within
//! f32 rounding of the CPU's f64-accumulated reference.

use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};

use super::device::{Device, guarded};
use super::memory::{CudaColumn, alloc_zeros, column};
use crate::backend::{DeviceArray, Matrix};
use crate::error::{DeviceFailure, Error, Result};

/// Open cuBLAS on the device's stream.
///
/// # Errors
/// [`DeviceFailure::Unavailable`] when `libcublas` is missing or cannot start.
pub(super) fn open_blas(device: &Device) -> Result<CudaBlas> {
    guarded(&device.label, "opening cuBLAS", || {
        // SAFETY: only tries to dlopen the library under its usual names.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(device.error(
                DeviceFailure::Unavailable,
                "cuBLAS (libcublas.so) was not found, so matrix products cannot run on CUDA; \
                 install the CUDA toolkit or `pip install nvidia-cublas` and put its lib \
                 directory on LD_LIBRARY_PATH, or run on `cpu`",
            ));
        }
        CudaBlas::new(Arc::clone(&device.stream)).map_err(|e| {
            device.error(
                DeviceFailure::Unavailable,
                format!("cublasCreate failed: {e:?}"),
            )
        })
    })
}

/// `a · b` as a new column-major f32 matrix.
pub(super) fn matmul(
    device: &Device,
    blas: &CudaBlas,
    a: Matrix<'_>,
    b: Matrix<'_>,
) -> Result<DeviceArray> {
    let (m, k, n) = Matrix::product_shape(&a, &b)?;
    let doing = format!("sgemm {m}x{k} by {k}x{n}");
    let dim = |v: usize| {
        i32::try_from(v.max(1)).map_err(|_| {
            device.error(
                DeviceFailure::Unsupported,
                format!("{doing}: a dimension exceeds cuBLAS's 32-bit limit; split the product"),
            )
        })
    };
    // Zeroed, so an empty inner dimension (k = 0) gives the zero matrix without a call.
    let mut out = alloc_zeros(device, m * n * 4, &doing)?;
    if m > 0 && n > 0 && k > 0 {
        let op = |x: &Matrix<'_>| {
            if x.transposed {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        let config = GemmConfig {
            transa: op(&a),
            transb: op(&b),
            m: dim(m)?,
            n: dim(n)?,
            k: dim(k)?,
            alpha: 1.0f32,
            lda: dim(a.rows)?,
            ldb: dim(b.rows)?,
            beta: 0.0f32,
            ldc: dim(m)?,
        };
        let (ca, cb) = (column(a.data)?, column(b.data)?);
        // SAFETY: the operands hold rows*cols f32 values (checked above) and
        // `out` m*n; reinterpreting the bytes as f32 is sound for any bits.
        let result = unsafe {
            let av = ca.values.transmute::<f32>(a.rows * a.cols);
            let bv = cb.values.transmute::<f32>(b.rows * b.cols);
            let mut ov = out.transmute_mut::<f32>(m * n);
            match (av, bv, ov.as_mut()) {
                (Some(av), Some(bv), Some(ov)) => blas.gemm(config, &av, &bv, ov).map_err(|e| {
                    device.error(
                        DeviceFailure::Launch,
                        format!("{doing}: cublasSgemm failed: {e:?}"),
                    )
                }),
                _ => Err(Error::Internal(format!(
                    "{doing}: device buffers smaller than their matrices"
                ))),
            }
        };
        result?;
    }
    Ok(CudaColumn::dense_f32(out, m * n))
}

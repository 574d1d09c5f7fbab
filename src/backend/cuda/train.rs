//! The training kernels (see [`TrainKernel`]) on CUDA: block products with
//! cuBLAS (`cublasSdgmm` for the row weights, then one
//! `cublasSgemmStridedBatched` over the whole blocks of rows and one `sgemm`
//! for the last, partial block), the rest hand-written in
//! `kernels/cuda/train.cu`.

use std::sync::MutexGuard;

use cudarc::cublas::sys::{cublasOperation_t, cublasSideMode_t, cublasStatus_t};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{
    CudaFunction, CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg,
};

use super::compile::ModuleCache;
use super::device::Device;
use super::memory::{CudaColumn, alloc, alloc_zeros, column};
use crate::backend::train::{Activation, AdamStep, GRAM_BLOCK_ROWS, Loss};
use crate::backend::{DeviceArray, Matrix, TrainKernel};
use crate::error::{DeviceFailure, Error, Result};

/// The hand-written training kernels, as compiled by NVRTC.
pub const TRAIN_SOURCE: &str = include_str!("../../../kernels/cuda/train.cu");

/// The entry points of [`TRAIN_SOURCE`].
#[cfg(feature = "internals")]
pub const TRAIN_ENTRIES: [&str; 5] = [
    "ff_train_head",
    "ff_bias_activation",
    "ff_activation_backward",
    "ff_gather_rows",
    "ff_adam",
];

/// Run `kernel` on `device`.
pub(super) fn train<'b>(
    device: &Device,
    modules: &ModuleCache,
    blas: impl FnOnce() -> Result<MutexGuard<'b, CudaBlas>>,
    kernel: TrainKernel<'_>,
) -> Result<Vec<DeviceArray>> {
    kernel.check()?;
    let kernels = Kernels {
        device,
        modules,
        name: kernel.name(),
    };
    match kernel {
        TrainKernel::BlockGram { a, b, weights } => {
            Ok(vec![block_gram(device, &*blas()?, a, b, weights)?])
        }
        TrainKernel::Head {
            loss,
            logits,
            target,
        } => kernels.head(loss, logits, target),
        TrainKernel::BiasActivation {
            z,
            bias,
            activation,
        } => kernels.bias_activation(z, bias, activation),
        TrainKernel::ActivationBackward {
            delta,
            output,
            activation,
        } => kernels.activation_backward(delta, output, activation),
        TrainKernel::GatherRows { x, rows } => kernels.gather_rows(x, rows),
        TrainKernel::Adam {
            params,
            grads,
            m,
            v,
            step,
        } => kernels.adam([params, grads, m, v], step),
    }
}

/// The hand-written kernels of [`TRAIN_SOURCE`] on one device, for one
/// [`TrainKernel`] (`name` labels its allocations).
struct Kernels<'d> {
    device: &'d Device,
    modules: &'d ModuleCache,
    name: &'static str,
}

impl Kernels<'_> {
    /// A zeroed output of `len` f32 values (at least one, as the allocator needs).
    fn f32s(&self, len: usize) -> Result<CudaSlice<u8>> {
        alloc_zeros(self.device, len.max(1) * 4, self.name)
    }

    /// Entry `entry` of [`TRAIN_SOURCE`], compiled once per device.
    fn function(&self, entry: &str) -> Result<CudaFunction> {
        self.modules.function(self.device, TRAIN_SOURCE, entry)
    }

    /// [`TrainKernel::Head`]: `ff_train_head`, one thread per row.
    fn head(
        &self,
        loss: Loss,
        logits: Matrix<'_>,
        target: &DeviceArray,
    ) -> Result<Vec<DeviceArray>> {
        let device = self.device;
        let (n, k) = (logits.rows, logits.cols);
        let columns = loss.hessian_columns(k);
        let (mut residual, mut losses, mut weights) =
            (self.f32s(n * k)?, self.f32s(n)?, self.f32s(n * columns)?);
        let code = loss.kernel_code() as i32;
        let (rows, k32) = (n as i64, k as i32);
        let function = self.function("ff_train_head")?;
        let mut builder = device.stream.launch_builder(&function);
        builder
            .arg(&column(logits.data)?.values)
            .arg(&column(target)?.values)
            .arg(&rows)
            .arg(&k32)
            .arg(&code)
            .arg(&mut residual)
            .arg(&mut losses)
            .arg(&mut weights);
        launch(device, "ff_train_head", n, builder)?;
        Ok(vec![
            CudaColumn::dense_f32(residual, n * k),
            CudaColumn::dense_f32(losses, n),
            CudaColumn::dense_f32(weights, n * columns),
        ])
    }

    /// [`TrainKernel::BiasActivation`]: `ff_bias_activation`, one thread per element.
    fn bias_activation(
        &self,
        z: Matrix<'_>,
        bias: &DeviceArray,
        activation: Option<Activation>,
    ) -> Result<Vec<DeviceArray>> {
        let total = z.rows * z.cols;
        let mut out = self.f32s(total)?;
        let (rows, count, act) = (
            z.rows as i64,
            total as i64,
            Activation::kernel_code(activation) as i32,
        );
        let function = self.function("ff_bias_activation")?;
        let mut builder = self.device.stream.launch_builder(&function);
        builder
            .arg(&column(z.data)?.values)
            .arg(&column(bias)?.values)
            .arg(&rows)
            .arg(&count)
            .arg(&act)
            .arg(&mut out);
        launch(self.device, "ff_bias_activation", total, builder)?;
        Ok(vec![CudaColumn::dense_f32(out, total)])
    }

    /// [`TrainKernel::ActivationBackward`]: `ff_activation_backward`, one
    /// thread per element.
    fn activation_backward(
        &self,
        delta: Matrix<'_>,
        output: &DeviceArray,
        activation: Activation,
    ) -> Result<Vec<DeviceArray>> {
        let total = delta.rows * delta.cols;
        let mut out = self.f32s(total)?;
        let (count, act) = (
            total as i64,
            Activation::kernel_code(Some(activation)) as i32,
        );
        let function = self.function("ff_activation_backward")?;
        let mut builder = self.device.stream.launch_builder(&function);
        builder
            .arg(&column(delta.data)?.values)
            .arg(&column(output)?.values)
            .arg(&count)
            .arg(&act)
            .arg(&mut out);
        launch(self.device, "ff_activation_backward", total, builder)?;
        Ok(vec![CudaColumn::dense_f32(out, total)])
    }

    /// [`TrainKernel::GatherRows`]: `ff_gather_rows`, one thread per element gathered.
    fn gather_rows(&self, x: Matrix<'_>, rows: &DeviceArray) -> Result<Vec<DeviceArray>> {
        let total = rows.len() * x.cols;
        let mut out = self.f32s(total)?;
        let (n, m, count) = (x.rows as i64, rows.len() as i64, total as i64);
        let function = self.function("ff_gather_rows")?;
        let mut builder = self.device.stream.launch_builder(&function);
        builder
            .arg(&column(x.data)?.values)
            .arg(&column(rows)?.values)
            .arg(&n)
            .arg(&m)
            .arg(&count)
            .arg(&mut out);
        launch(self.device, "ff_gather_rows", total, builder)?;
        Ok(vec![CudaColumn::dense_f32(out, total)])
    }

    /// [`TrainKernel::Adam`] over `[params, grads, m, v]`: `ff_adam`, one
    /// thread per parameter.
    fn adam(
        &self,
        [params, grads, m, v]: [&DeviceArray; 4],
        step: AdamStep,
    ) -> Result<Vec<DeviceArray>> {
        let len = params.len();
        let (mut p_out, mut m_out, mut v_out) = (self.f32s(len)?, self.f32s(len)?, self.f32s(len)?);
        let count = len as i64;
        let function = self.function("ff_adam")?;
        let mut builder = self.device.stream.launch_builder(&function);
        builder
            .arg(&column(params)?.values)
            .arg(&column(grads)?.values)
            .arg(&column(m)?.values)
            .arg(&column(v)?.values)
            .arg(&count)
            .arg(&step.learning_rate)
            .arg(&step.c1)
            .arg(&step.c2)
            .arg(&step.grad_scale)
            .arg(&step.l2)
            .arg(&mut p_out)
            .arg(&mut m_out)
            .arg(&mut v_out);
        launch(self.device, "ff_adam", len, builder)?;
        Ok(vec![
            CudaColumn::dense_f32(p_out, len),
            CudaColumn::dense_f32(m_out, len),
            CudaColumn::dense_f32(v_out, len),
        ])
    }
}

/// Launch `builder` (entry `entry` of [`TRAIN_SOURCE`] with its arguments
/// pushed) over `items` items.
fn launch(
    device: &Device,
    entry: &str,
    items: usize,
    mut builder: cudarc::driver::LaunchArgs<'_>,
) -> Result<()> {
    if items == 0 {
        return Ok(());
    }
    let config = LaunchConfig {
        grid_dim: (device.grid_for(items), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: every caller pushes the arguments of `entry`'s signature in
    // `train.cu`, in order, with buffers holding the items the kernel reads
    // and writes (checked by `TrainKernel::check` and allocated above).
    unsafe { builder.launch(config) }.map(drop).map_err(|e| {
        device.driver_error(
            DeviceFailure::Launch,
            &format!("training kernel `{entry}` over {items} items"),
            "cuLaunchKernel",
            e,
        )
    })
}

/// `Aᵀ·diag(w)·B` per block of [`GRAM_BLOCK_ROWS`] rows.
fn block_gram(
    device: &Device,
    blas: &CudaBlas,
    a: Matrix<'_>,
    b: Matrix<'_>,
    weights: Option<(Matrix<'_>, usize)>,
) -> Result<DeviceArray> {
    let (n, p, q) = (a.rows, a.cols, b.cols);
    let blocks = TrainKernel::blocks(n);
    let gram = Gram {
        device,
        blas,
        doing: format!("block products of {n} rows, {p}x{q}"),
        n,
        p,
        q,
    };
    let mut out = alloc_zeros(device, (blocks * p * q).max(1) * 4, &gram.doing)?;
    if blocks == 0 || p == 0 || q == 0 {
        return Ok(CudaColumn::dense_f32(out, blocks * p * q));
    }
    let (ca, cb) = (column(a.data)?, column(b.data)?);
    // The weighted right factor diag(w)·B, when there are weights.
    let scaled = match weights {
        Some((w, c)) => Some(gram.scale_rows(&cb.values, w, c)?),
        None => None,
    };
    let right = scaled.as_ref().unwrap_or(&cb.values);
    gram.products(&ca.values, right, &mut out, blocks)?;
    Ok(CudaColumn::dense_f32(out, blocks * p * q))
}

/// The block products of an n×p `A` and an n×q right factor, with cuBLAS.
struct Gram<'d> {
    device: &'d Device,
    blas: &'d CudaBlas,
    /// What is being done, as errors say it.
    doing: String,
    n: usize,
    p: usize,
    q: usize,
}

impl Gram<'_> {
    /// A dimension as cuBLAS takes it.
    fn dim(&self, v: usize) -> Result<i32> {
        i32::try_from(v).map_err(|_| {
            self.device.error(
                DeviceFailure::Unsupported,
                format!(
                    "{}: a dimension exceeds cuBLAS's 32-bit limit; train on fewer rows",
                    self.doing
                ),
            )
        })
    }

    /// A failed cuBLAS call.
    fn failed(&self, call: &str, e: &dyn std::fmt::Debug) -> Error {
        self.device.error(
            DeviceFailure::Launch,
            format!("{}: {call} failed: {e:?}", self.doing),
        )
    }

    /// A device buffer too small to view as its matrix: a bug, never user data.
    fn small(&self) -> Error {
        Error::Internal(format!(
            "{}: device buffers smaller than their matrices",
            self.doing
        ))
    }

    /// `diag(w)·B` for column `c` of `w`, by `cublasSdgmm`.
    fn scale_rows(&self, b: &CudaSlice<u8>, w: Matrix<'_>, c: usize) -> Result<CudaSlice<u8>> {
        let (device, n, q) = (self.device, self.n, self.q);
        let mut scaled = alloc(device, n * q * 4, &self.doing)?;
        let cw = column(w.data)?;
        // SAFETY: b holds n*q f32 values and w n*cols (checked by
        // `TrainKernel::check`), the weight column starts at c*n; the
        // output holds n*q. The pointers are used on the handle's stream.
        let status = unsafe {
            let bv = b.transmute::<f32>(n * q).ok_or_else(|| self.small())?;
            let wv = cw
                .values
                .transmute::<f32>(w.rows * w.cols)
                .ok_or_else(|| self.small())?;
            let wv = wv.slice(c * w.rows..(c + 1) * w.rows);
            let mut sv = scaled
                .transmute_mut::<f32>(n * q)
                .ok_or_else(|| self.small())?;
            let (bp, _b) = bv.device_ptr(&device.stream);
            let (wp, _w) = wv.device_ptr(&device.stream);
            let (sp, _s) = sv.device_ptr_mut(&device.stream);
            cudarc::cublas::sys::cublasSdgmm(
                *self.blas.handle(),
                cublasSideMode_t::CUBLAS_SIDE_LEFT,
                self.dim(n)?,
                self.dim(q)?,
                bp as *const f32,
                self.dim(n)?,
                wp as *const f32,
                1,
                sp as *mut f32,
                self.dim(n)?,
            )
        };
        if status != cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(self.failed("cublasSdgmm", &status));
        }
        Ok(scaled)
    }

    /// `Aᵀ·right` per block of rows into `out`: one strided batched `sgemm`
    /// over the whole blocks, one `sgemm` for the last, partial block.
    fn products(
        &self,
        a: &CudaSlice<u8>,
        right: &CudaSlice<u8>,
        out: &mut CudaSlice<u8>,
        blocks: usize,
    ) -> Result<()> {
        let (n, p, q) = (self.n, self.p, self.q);
        let full = n / GRAM_BLOCK_ROWS;
        let rest = n - full * GRAM_BLOCK_ROWS;
        let gemm = |k: usize| -> Result<GemmConfig<f32>> {
            Ok(GemmConfig {
                transa: cublasOperation_t::CUBLAS_OP_T,
                transb: cublasOperation_t::CUBLAS_OP_N,
                m: self.dim(p)?,
                n: self.dim(q)?,
                k: self.dim(k)?,
                alpha: 1.0,
                lda: self.dim(n)?,
                ldb: self.dim(n)?,
                beta: 0.0,
                ldc: self.dim(p)?,
            })
        };
        // SAFETY: a holds n*p and the right factor n*q f32 values, `out`
        // blocks*p*q; block i reads rows [i*B, i*B + B) of both (offset i*B, leading
        // dimension n) and writes p*q values at i*p*q, all within the buffers.
        unsafe {
            let av = a.transmute::<f32>(n * p).ok_or_else(|| self.small())?;
            let bv = right.transmute::<f32>(n * q).ok_or_else(|| self.small())?;
            let mut ov = out
                .transmute_mut::<f32>(blocks * p * q)
                .ok_or_else(|| self.small())?;
            if full > 0 {
                let config = StridedBatchedConfig {
                    gemm: gemm(GRAM_BLOCK_ROWS)?,
                    batch_size: self.dim(full)?,
                    stride_a: GRAM_BLOCK_ROWS as i64,
                    stride_b: GRAM_BLOCK_ROWS as i64,
                    stride_c: (p * q) as i64,
                };
                self.blas
                    .gemm_strided_batched(config, &av, &bv, &mut ov)
                    .map_err(|e| self.failed("cublasSgemmStridedBatched", &e))?;
            }
            if rest > 0 {
                let start = full * GRAM_BLOCK_ROWS;
                let (ar, br) = (av.slice(start..), bv.slice(start..));
                let mut or = ov.slice_mut(full * p * q..);
                self.blas
                    .gemm(gemm(rest)?, &ar, &br, &mut or)
                    .map_err(|e| self.failed("cublasSgemm", &e))?;
            }
        }
        Ok(())
    }
}

//! The training kernels (see [`TrainKernel`]) as hand-written WGSL in
//! `kernels/wgsl/train_*.wgsl`: the block products in 16x16 tiles staged in
//! workgroup memory, the rest one thread per element or row.

use super::WgpuBackend;
use super::device::Dispatch;
use super::memory::Column;
use crate::backend::train::{Activation, AdamStep, GRAM_BLOCK_ROWS, Loss};
use crate::backend::{DeviceArray, Matrix, TrainKernel};
use crate::error::{DeviceFailure, Result};

const GRAM: &str = include_str!("../../../kernels/wgsl/train_gram.wgsl");
const HEAD: &str = include_str!("../../../kernels/wgsl/train_head.wgsl");
const BIAS_ACTIVATION: &str = include_str!("../../../kernels/wgsl/train_bias_activation.wgsl");
const ACTIVATION_BACKWARD: &str =
    include_str!("../../../kernels/wgsl/train_activation_backward.wgsl");
const GATHER: &str = include_str!("../../../kernels/wgsl/train_gather.wgsl");
const ADAM: &str = include_str!("../../../kernels/wgsl/train_adam.wgsl");

/// Rows and columns of a block-product tile (`TILE` in `train_gram.wgsl`).
const TILE: usize = 16;
/// Threads per workgroup of the elementwise kernels.
const THREADS: u64 = 256;

// `GRAM_BLOCK` in `train_gram.wgsl`.
const _: () = assert!(GRAM_BLOCK_ROWS == 4096);

/// Run `kernel` on `backend`.
pub(crate) fn train(backend: &WgpuBackend, kernel: TrainKernel<'_>) -> Result<Vec<DeviceArray>> {
    kernel.check()?;
    let name = kernel.name();
    match kernel {
        TrainKernel::BlockGram { a, b, weights } => block_gram(backend, name, a, b, weights),
        TrainKernel::Head {
            loss,
            logits,
            target,
        } => head(backend, name, loss, logits, target),
        TrainKernel::BiasActivation {
            z,
            bias,
            activation,
        } => bias_activation(backend, name, z, bias, activation),
        TrainKernel::ActivationBackward {
            delta,
            output,
            activation,
        } => activation_backward(backend, name, delta, output, activation),
        TrainKernel::GatherRows { x, rows } => gather_rows(backend, name, x, rows),
        TrainKernel::Adam {
            params,
            grads,
            m,
            v,
            step,
        } => adam(backend, name, [params, grads, m, v], step),
    }
}

/// [`TrainKernel::BlockGram`]: one workgroup per 16x16 tile of each block's product.
fn block_gram(
    backend: &WgpuBackend,
    name: &str,
    a: Matrix<'_>,
    b: Matrix<'_>,
    weights: Option<(Matrix<'_>, usize)>,
) -> Result<Vec<DeviceArray>> {
    let (n, p, q) = (a.rows, a.cols, b.cols);
    let blocks = TrainKernel::blocks(n);
    let parts = output(backend, name, blocks * p * q)?;
    if blocks > 0 && p > 0 && q > 0 {
        let (w, offset) = match weights {
            Some((w, c)) => (values(backend, w.data)?, c * w.rows),
            None => (values(backend, a.data)?, 0),
        };
        let groups_z = u32::try_from(blocks)
            .ok()
            .filter(|&z| z <= backend.max_groups())
            .ok_or_else(|| too_large(backend, name, n))?;
        let params = [
            n as u32,
            p as u32,
            q as u32,
            offset as u32,
            u32::from(weights.is_some()),
        ];
        let groups = [p.div_ceil(TILE) as u32, q.div_ceil(TILE) as u32, groups_z];
        let inputs = [values(backend, a.data)?, values(backend, b.data)?, w];
        launch(backend, name, GRAM, &params, &inputs, &[&parts], groups)?;
    }
    Ok(vec![Column::dense_f32(parts, blocks * p * q)])
}

/// [`TrainKernel::Head`]: one thread per row.
fn head(
    backend: &WgpuBackend,
    name: &str,
    loss: Loss,
    logits: Matrix<'_>,
    target: &DeviceArray,
) -> Result<Vec<DeviceArray>> {
    let (n, k) = (logits.rows, logits.cols);
    let columns = loss.hessian_columns(k);
    let outs = [
        output(backend, name, n * k)?,
        output(backend, name, n)?,
        output(backend, name, n * columns)?,
    ];
    let code = loss.kernel_code();
    let inputs = [values(backend, logits.data)?, values(backend, target)?];
    let refs: Vec<&wgpu::Buffer> = outs.iter().collect();
    elementwise(
        backend,
        name,
        HEAD,
        n,
        &[n as u32, k as u32, code],
        &inputs,
        &refs,
    )?;
    let [residual, losses, weights] = outs;
    Ok(vec![
        Column::dense_f32(residual, n * k),
        Column::dense_f32(losses, n),
        Column::dense_f32(weights, n * columns),
    ])
}

/// [`TrainKernel::BiasActivation`]: one thread per element.
fn bias_activation(
    backend: &WgpuBackend,
    name: &str,
    z: Matrix<'_>,
    bias: &DeviceArray,
    activation: Option<Activation>,
) -> Result<Vec<DeviceArray>> {
    let total = z.rows * z.cols;
    let out = output(backend, name, total)?;
    let params = [
        z.rows as u32,
        total as u32,
        Activation::kernel_code(activation),
    ];
    let inputs = [values(backend, z.data)?, values(backend, bias)?];
    elementwise(
        backend,
        name,
        BIAS_ACTIVATION,
        total,
        &params,
        &inputs,
        &[&out],
    )?;
    Ok(vec![Column::dense_f32(out, total)])
}

/// [`TrainKernel::ActivationBackward`]: one thread per element.
fn activation_backward(
    backend: &WgpuBackend,
    name: &str,
    delta: Matrix<'_>,
    act: &DeviceArray,
    activation: Activation,
) -> Result<Vec<DeviceArray>> {
    let total = delta.rows * delta.cols;
    let out = output(backend, name, total)?;
    let params = [total as u32, Activation::kernel_code(Some(activation))];
    let inputs = [values(backend, delta.data)?, values(backend, act)?];
    elementwise(
        backend,
        name,
        ACTIVATION_BACKWARD,
        total,
        &params,
        &inputs,
        &[&out],
    )?;
    Ok(vec![Column::dense_f32(out, total)])
}

/// [`TrainKernel::GatherRows`]: one thread per element gathered.
fn gather_rows(
    backend: &WgpuBackend,
    name: &str,
    x: Matrix<'_>,
    rows: &DeviceArray,
) -> Result<Vec<DeviceArray>> {
    let total = rows.len() * x.cols;
    let out = output(backend, name, total)?;
    let params = [x.rows as u32, rows.len() as u32, total as u32];
    let inputs = [values(backend, x.data)?, values(backend, rows)?];
    elementwise(backend, name, GATHER, total, &params, &inputs, &[&out])?;
    Ok(vec![Column::dense_f32(out, total)])
}

/// [`TrainKernel::Adam`] over `[params, grads, m, v]`: one thread per parameter.
fn adam(
    backend: &WgpuBackend,
    name: &str,
    [p, grads, m, v]: [&DeviceArray; 4],
    step: AdamStep,
) -> Result<Vec<DeviceArray>> {
    let len = p.len();
    let outs = [
        output(backend, name, len)?,
        output(backend, name, len)?,
        output(backend, name, len)?,
    ];
    let inputs = [
        values(backend, p)?,
        values(backend, grads)?,
        values(backend, m)?,
        values(backend, v)?,
    ];
    // `len`, then the grid's x extent (filled in by `elementwise`), then f32 bits.
    let scalars = [
        step.learning_rate,
        step.c1,
        step.c2,
        step.grad_scale,
        step.l2,
    ]
    .map(f32::to_bits);
    let groups = backend.grid((len as u64).div_ceil(THREADS))?;
    let mut params = vec![len as u32, groups[0]];
    params.extend(scalars);
    let refs: Vec<&wgpu::Buffer> = outs.iter().collect();
    if len > 0 {
        launch(backend, name, ADAM, &params, &inputs, &refs, groups)?;
    }
    let [p, m, v] = outs;
    Ok(vec![
        Column::dense_f32(p, len),
        Column::dense_f32(m, len),
        Column::dense_f32(v, len),
    ])
}

/// An error for work beyond the device's grid or bindings.
fn too_large(backend: &WgpuBackend, kernel: &str, rows: usize) -> crate::error::Error {
    backend.error(
        DeviceFailure::OutOfMemory,
        format!(
            "training kernel `{kernel}` over {rows} rows exceeds the device's grid or largest \
             binding; train on fewer rows or use --device cpu"
        ),
    )
}

/// The values buffer of an operand, which must fit one binding.
fn values<'a>(backend: &WgpuBackend, array: &'a DeviceArray) -> Result<&'a wgpu::Buffer> {
    if array.len() as u64 * 4 > backend.binding_limit() {
        return Err(too_large(backend, "operand", array.len()));
    }
    Ok(&Column::of(array)?.values)
}

/// A new f32 output of `len` values, within one binding.
fn output(backend: &WgpuBackend, kernel: &str, len: usize) -> Result<wgpu::Buffer> {
    let bytes = len as u64 * 4;
    if bytes > backend.binding_limit() {
        return Err(too_large(backend, kernel, len));
    }
    backend.storage(&format!("{kernel} output"), bytes)
}

/// Launch a one-thread-per-item kernel over `items`; `params` get the
/// grid's x extent appended (the kernels' `groups_x`).
fn elementwise(
    backend: &WgpuBackend,
    name: &str,
    source: &str,
    items: usize,
    params: &[u32],
    inputs: &[&wgpu::Buffer],
    outputs: &[&wgpu::Buffer],
) -> Result<()> {
    if items == 0 {
        return Ok(());
    }
    let groups = backend.grid((items as u64).div_ceil(THREADS))?;
    let mut words = params.to_vec();
    words.push(groups[0]);
    launch(backend, name, source, &words, inputs, outputs, groups)
}

/// Bind the parameters, then `inputs` and `outputs` in binding order, and dispatch.
fn launch(
    backend: &WgpuBackend,
    name: &str,
    source: &str,
    params: &[u32],
    inputs: &[&wgpu::Buffer],
    outputs: &[&wgpu::Buffer],
    groups: [u32; 3],
) -> Result<()> {
    let uniform = backend.uniform(params)?;
    let resources = std::iter::once(uniform.as_entire_binding())
        .chain(inputs.iter().chain(outputs).map(|b| b.as_entire_binding()));
    let what = format!("training kernel `{name}`");
    let pipeline = backend.pipeline(&what, source)?;
    backend.dispatch(&what, &pipeline, vec![Dispatch::new(resources, groups)])
}

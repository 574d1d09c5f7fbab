//! The training kernels on the CPU: the reference the GPU kernels are tested
//! against. Each value is computed in f64 from the f32 operands and rounded
//! to f32 once, so the GPUs' f32 arithmetic is compared with a result that
//! has only its final rounding.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float32Array, Int32Array};
use rayon::prelude::*;

use crate::backend::train::{
    Activation, Adam, AdamRate, AdamStep, GRAM_BLOCK_ROWS, Loss, TrainKernel,
};
use crate::backend::{DeviceArray, Matrix};
use crate::error::{Error, Result};
use crate::ir::DType;
use crate::ir::math::{logistic_loss, sigmoid, softmax};

/// The f32 values of a CPU device array (checked by [`TrainKernel::check`]).
fn f32s(array: &DeviceArray) -> Result<&[f32]> {
    super::backend::host(array)?
        .as_any()
        .downcast_ref::<Float32Array>()
        .map(|a| a.values().as_ref())
        .ok_or_else(|| Error::Internal("a training operand is not f32".into()))
}

/// The i32 values of a CPU device array.
fn i32s(array: &DeviceArray) -> Result<&[i32]> {
    super::backend::host(array)?
        .as_any()
        .downcast_ref::<Int32Array>()
        .map(|a| a.values().as_ref())
        .ok_or_else(|| Error::Internal("a training operand is not i32".into()))
}

/// Wrap f32 values as a CPU device array.
fn array(values: Vec<f32>) -> DeviceArray {
    let array: ArrayRef = Arc::new(Float32Array::from(values));
    DeviceArray::new(DType::Float32, array.len(), 0, Arc::new(array))
}

/// Run `kernel` on the CPU.
pub(super) fn train(kernel: TrainKernel<'_>) -> Result<Vec<DeviceArray>> {
    kernel.check()?;
    Ok(match kernel {
        TrainKernel::BlockGram { a, b, weights } => vec![array(block_gram(a, b, weights)?)],
        TrainKernel::Head {
            loss,
            logits,
            target,
        } => head(loss, logits, target)?.map(array).into(),
        TrainKernel::BiasActivation {
            z,
            bias,
            activation,
        } => vec![array(bias_activation(z, bias, activation)?)],
        TrainKernel::ActivationBackward {
            delta,
            output,
            activation,
        } => vec![array(activation_backward(delta, output, activation)?)],
        TrainKernel::GatherRows { x, rows } => vec![array(gather_rows(x, rows)?)],
        TrainKernel::Adam {
            params,
            grads,
            m,
            v,
            step,
        } => adam(params, grads, m, v, step)?.map(array).into(),
    })
}

/// `act(z + bias)` per element, the bias one per column.
fn bias_activation(
    z: Matrix<'_>,
    bias: &DeviceArray,
    activation: Option<Activation>,
) -> Result<Vec<f32>> {
    let (zv, bv) = (f32s(z.data)?, f32s(bias)?);
    Ok(zv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = v + bv[i / z.rows.max(1)];
            activation.map_or(s, |act| act.apply(f64::from(s)) as f32)
        })
        .collect())
}

/// `delta ⊙ act'(output)`, the derivative from the activation's output.
fn activation_backward(
    delta: Matrix<'_>,
    output: &DeviceArray,
    activation: Activation,
) -> Result<Vec<f32>> {
    let (dv, ov) = (f32s(delta.data)?, f32s(output)?);
    Ok(dv
        .iter()
        .zip(ov)
        .map(|(&d, &a)| activation.backward(f64::from(d), f64::from(a)) as f32)
        .collect())
}

/// Rows `rows[i]` of `x`, in order.
fn gather_rows(x: Matrix<'_>, rows: &DeviceArray) -> Result<Vec<f32>> {
    let (xv, idx) = (f32s(x.data)?, i32s(rows)?);
    let m = idx.len();
    let mut out = vec![0.0; m * x.cols];
    for c in 0..x.cols {
        for (i, &r) in idx.iter().enumerate() {
            // Out-of-range rows read as zero, as on the GPUs.
            if let Some(r) = usize::try_from(r).ok().filter(|&r| r < x.rows) {
                out[c * m + i] = xv[c * x.rows + r];
            }
        }
    }
    Ok(out)
}

/// One Adam step: the new parameters and moments.
fn adam(
    params: &DeviceArray,
    grads: &DeviceArray,
    m: &DeviceArray,
    v: &DeviceArray,
    step: AdamStep,
) -> Result<[Vec<f32>; 3]> {
    let (p, g, m, v) = (f32s(params)?, f32s(grads)?, f32s(m)?, f32s(v)?);
    let (mut po, mut mo, mut vo) = (vec![0.0; p.len()], vec![0.0; p.len()], vec![0.0; p.len()]);
    let f = f64::from;
    let rate = AdamRate {
        learning_rate: f(step.learning_rate),
        c1: f(step.c1),
        c2: f(step.c2),
    };
    for i in 0..p.len() {
        let g = f(step.grad_scale) * f(g[i]) + f(step.l2) * f(p[i]);
        let [pi, mi, vi] = Adam::F32.update(rate, f(p[i]), g, f(m[i]), f(v[i]));
        (po[i], mo[i], vo[i]) = (pi as f32, mi as f32, vi as f32);
    }
    Ok([po, mo, vo])
}

/// Partial `Aᵀ·diag(w)·B` per block of rows, accumulated in f64.
fn block_gram(
    a: Matrix<'_>,
    b: Matrix<'_>,
    weights: Option<(Matrix<'_>, usize)>,
) -> Result<Vec<f32>> {
    let (av, bv) = (f32s(a.data)?, f32s(b.data)?);
    let w = match weights {
        Some((w, c)) => Some(&f32s(w.data)?[c * w.rows..(c + 1) * w.rows]),
        None => None,
    };
    let (n, p, q) = (a.rows, a.cols, b.cols);
    let blocks = TrainKernel::blocks(n);
    let mut out = vec![0.0f32; blocks * p * q];
    out.par_chunks_mut((p * q).max(1))
        .enumerate()
        .for_each(|(blk, part)| {
            let rows = blk * GRAM_BLOCK_ROWS..((blk + 1) * GRAM_BLOCK_ROWS).min(n);
            for j in 0..q {
                for i in 0..p {
                    let sum: f64 = rows
                        .clone()
                        .map(|r| {
                            let wr = w.map_or(1.0, |w| f64::from(w[r]));
                            f64::from(av[i * n + r]) * wr * f64::from(bv[j * n + r])
                        })
                        .sum();
                    part[j * p + i] = sum as f32;
                }
            }
        });
    Ok(out)
}

/// Residual, loss and Hessian weights of every row.
fn head(loss: Loss, logits: Matrix<'_>, target: &DeviceArray) -> Result<[Vec<f32>; 3]> {
    let (n, k) = (logits.rows, logits.cols);
    let z = f32s(logits.data)?;
    let columns = loss.hessian_columns(k);
    let mut residual = vec![0.0f32; n * k];
    let mut losses = vec![0.0f32; n];
    let mut weights = vec![0.0f32; n * columns];
    match loss {
        Loss::Squared => {
            let y = f32s(target)?;
            for r in 0..n {
                let d = f64::from(z[r]) - f64::from(y[r]);
                residual[r] = d as f32;
                losses[r] = (0.5 * d * d) as f32;
            }
        }
        Loss::Logistic => {
            let y = i32s(target)?;
            for r in 0..n {
                let (zr, t) = (f64::from(z[r]), f64::from(y[r]));
                let p = sigmoid(zr);
                residual[r] = (p - t) as f32;
                losses[r] = logistic_loss(zr, t) as f32;
                weights[r] = (p * (1.0 - p)) as f32;
            }
        }
        Loss::Softmax => {
            let y = i32s(target)?;
            let (mut zr, mut p) = (vec![0.0f64; k], vec![0.0f64; k]);
            for r in 0..n {
                for (a, za) in zr.iter_mut().enumerate() {
                    *za = f64::from(z[a * n + r]);
                }
                let lse = softmax(&zr, &mut p);
                let c = usize::try_from(y[r]).unwrap_or(0).min(k - 1);
                losses[r] = (lse - zr[c]) as f32;
                for a in 0..k {
                    residual[a * n + r] = (p[a] - f64::from(u8::from(a == c))) as f32;
                    for b in 0..=a {
                        let w = if a == b {
                            p[a] * (1.0 - p[a])
                        } else {
                            -p[a] * p[b]
                        };
                        weights[Loss::pair(a, b) * n + r] = w as f32;
                    }
                }
            }
        }
    }
    Ok([residual, losses, weights])
}

//! Training through the backend verbs: the same trainers as on the host,
//! with the passes over the data run by a device's kernels in f32.
//!
//! - [`fit_logistic`]: Newton's method ([`logistic::newton`]) over a
//!   [`DeviceLogistic`] objective. The design (with a column of ones for the
//!   intercepts) and the labels are uploaded once; each evaluation uploads the
//!   parameters, computes the logits with [`Backend::matmul`], the residuals,
//!   losses and Hessian weights with [`TrainKernel::Head`], and the gradient
//!   and Hessian blocks with [`TrainKernel::BlockGram`]. Only the partial
//!   sums per block of rows come back; the host adds them in f64 and solves.
//! - [`train_mlp`]: the MLP's epoch loop (`mlp::run_epochs`) over a
//!   [`DeviceMlp`] whose parameters, Adam moments and activations stay on the
//!   device; per step only the minibatch's row indices and targets go up,
//!   and per epoch only the loss's partial sums come back.
//!
//! # Precision
//!
//! Device arithmetic is f32 (WGSL has no f64), so results agree with the
//! host's f64 training within f32 rounding, not bit for bit, and the models
//! record `precision = "f32"`. Newton's stopping rule cannot promise the
//! host's gradient tolerance: see [`DeviceLogistic::precision`] for the floor.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{ArrayRef, Float32Array, Int32Array};

use super::design::Design;
use super::logistic::{self, LogisticConfig, LogisticFit, Objective, Order, Precision, Sums};
use super::mlp::{self, Head, Labels, Minibatches, Mlp, MlpConfig, MlpTarget, Start, TrainReport};
use crate::backend::train::{AdamStep, GRAM_BLOCK_ROWS, Loss};
use crate::backend::{Backend, DeviceArray, Matrix, TrainKernel, train};
use crate::error::{Error, Result};

/// Train logistic regression on `backend` (see [`logistic::fit`] for the
/// model and the errors).
///
/// # Errors
/// As [`logistic::fit`], and [`Error::Device`] when the device fails (the
/// training step then falls back to the CPU).
pub fn fit_logistic(
    step: &str,
    backend: &dyn Backend,
    x: &Design,
    y: &[u32],
    classes: usize,
    config: &LogisticConfig,
) -> Result<LogisticFit> {
    logistic::check(step, classes, config)?;
    let objective = DeviceLogistic::new(backend, x, y, classes)?;
    logistic::newton(step, &objective, classes, config)
}

/// Train an MLP on `backend` (see [`mlp::train`] for the model and the errors).
///
/// # Errors
/// As [`mlp::train`], and [`Error::Device`] when the device fails.
pub fn train_mlp(
    step: &str,
    backend: &dyn Backend,
    x: &Design,
    y: &MlpTarget,
    config: &MlpConfig,
) -> Result<(Mlp, TrainReport)> {
    let Start {
        labels,
        model,
        mut rng,
    } = mlp::start(step, x, y, config)?;
    let mut net = DeviceMlp::new(backend, x, labels, &model, config)?;
    let report = mlp::run_epochs(step, x.rows, config, &mut rng, &mut net)?;
    Ok((net.download(model)?, report))
}

/// Unit roundoff of f32, `2^-24`.
const F32_UNIT: f64 = 5.960_464_477_539_063e-8;

/// f64 values as an f32 device array.
fn upload_f32(backend: &dyn Backend, values: impl Iterator<Item = f64>) -> Result<DeviceArray> {
    let array: ArrayRef = Arc::new(values.map(|v| v as f32).collect::<Float32Array>());
    backend.upload(&array)
}

/// Indices or class labels as an i32 device array.
fn upload_i32(backend: &dyn Backend, values: impl Iterator<Item = usize>) -> Result<DeviceArray> {
    let array: ArrayRef = Arc::new(values.map(|v| v as i32).collect::<Int32Array>());
    backend.upload(&array)
}

/// An f32 device array's values, widened to f64.
fn download_f64(backend: &dyn Backend, array: &DeviceArray) -> Result<Vec<f64>> {
    let host = backend.download(array)?;
    Ok(host
        .as_primitive::<Float32Type>()
        .values()
        .iter()
        .map(|&v| f64::from(v))
        .collect())
}

/// The design's columns as an f32 matrix on the device, with a column of
/// ones after them when `intercept`.
fn upload_design(backend: &dyn Backend, x: &Design, intercept: bool) -> Result<DeviceArray> {
    let ones = std::iter::repeat_n(1.0, if intercept { x.rows } else { 0 });
    upload_f32(backend, x.x.iter().copied().chain(ones))
}

/// Run one kernel and check how many arrays it returned.
fn run<const N: usize>(backend: &dyn Backend, kernel: TrainKernel<'_>) -> Result<[DeviceArray; N]> {
    let name = kernel.name();
    backend.train(kernel)?.try_into().map_err(|got: Vec<_>| {
        Error::Internal(format!(
            "{}: kernel `{name}` returned {} arrays, {N} expected",
            backend.info(),
            got.len()
        ))
    })
}

/// `Aᵀ·diag(w)·B` (p×q, column-major) with the blocks' partials added in f64
/// in block order.
fn gram(
    backend: &dyn Backend,
    a: Matrix<'_>,
    b: Matrix<'_>,
    weights: Option<(Matrix<'_>, usize)>,
) -> Result<Vec<f64>> {
    let size = a.cols * b.cols;
    let [parts] = run(backend, TrainKernel::BlockGram { a, b, weights })?;
    let parts = download_f64(backend, &parts)?;
    let mut sum = vec![0.0; size];
    for block in parts.chunks_exact(size.max(1)) {
        sum.iter_mut().zip(block).for_each(|(s, p)| *s += p);
    }
    Ok(sum)
}

/// The loss a head trains with.
fn loss_of(head: Head) -> Loss {
    match head {
        Head::Identity => Loss::Squared,
        Head::Sigmoid => Loss::Logistic,
        Head::Softmax => Loss::Softmax,
    }
}

/// Logistic regression's loss over data resident on a device.
pub struct DeviceLogistic<'b> {
    backend: &'b dyn Backend,
    /// The design and a column of ones, n×(d+1).
    x: DeviceArray,
    /// Class indices.
    y: DeviceArray,
    /// n ones, to sum the losses.
    ones: DeviceArray,
    rows: usize,
    features: usize,
    outputs: usize,
    loss: Loss,
    /// The largest mean absolute value of a design column (at least 1, the ones').
    scale: f64,
}

impl<'b> DeviceLogistic<'b> {
    /// Upload the design and the labels.
    ///
    /// # Errors
    /// [`Error::Device`] when the upload fails.
    pub fn new(
        backend: &'b dyn Backend,
        x: &Design,
        y: &[u32],
        classes: usize,
    ) -> Result<DeviceLogistic<'b>> {
        let outputs = logistic::outputs(classes);
        let scale = (0..x.width())
            .map(|j| x.column(j).iter().map(|v| v.abs()).sum::<f64>() / x.rows.max(1) as f64)
            .fold(1.0, f64::max);
        Ok(DeviceLogistic {
            backend,
            x: upload_design(backend, x, true)?,
            y: upload_i32(backend, y.iter().map(|&c| c as usize))?,
            ones: upload_f32(backend, std::iter::repeat_n(1.0, x.rows))?,
            rows: x.rows,
            features: x.width(),
            outputs,
            loss: if outputs == 1 {
                Loss::Logistic
            } else {
                Loss::Softmax
            },
            scale,
        })
    }
}

impl Objective for DeviceLogistic<'_> {
    fn outputs(&self) -> usize {
        self.outputs
    }

    fn features(&self) -> usize {
        self.features
    }

    fn rows(&self) -> usize {
        self.rows
    }

    /// A gradient component is `sum_i r_i x_ij` with residuals `|r_i| <= 1`
    /// from f32 logits (each a dot product of `w = d + 1` terms), summed in
    /// f32 within blocks of `B` = [`GRAM_BLOCK_ROWS`] rows. Rounding moves
    /// a logit by about `w·u` of its size and a block sum by about `√B·u` of
    /// its terms' (`u = 2^-24`, errors of random sign), so the mean gradient
    /// is resolved to about `(w + √B)·u·s`, with `s` the largest mean
    /// absolute design value; Newton stops at that floor when it exceeds the
    /// configured tolerance. The line search gives up at steps below `2^-10`,
    /// where f32 losses no longer tell the objective's changes from noise.
    /// A Hessian entry is rounded by about `√B·u ≈ 4e-6` of its size, so
    /// multinomial Hessians are damped by `1e-5` of their largest diagonal
    /// (the host's `1e-12` would leave them indefinite). Each row's loss is
    /// within a few ulp of exact (Vulkan allows `exp` and `log` 3 ulp and
    /// more), and those errors may add up coherently over the rows, so an
    /// evaluated objective is known to about `16·u ≈ 1e-6` of itself: near
    /// the optimum a Newton step is judged by the gradient it leaves.
    fn precision(&self) -> Precision {
        let w = (self.features + 1) as f64;
        Precision {
            name: "f32",
            gradient_floor: (w + (GRAM_BLOCK_ROWS as f64).sqrt()) * F32_UNIT * self.scale,
            min_step: 1.0 / 1024.0,
            damping: 1e-5,
            objective_noise: 1e-6,
            // A line search that failed in f32 means rounding hides every
            // descent left: stop, whatever the objective did.
            objective_resolution: f64::INFINITY,
        }
    }

    fn evaluate(&self, theta: &[f64], order: Order) -> Result<Sums> {
        let (n, k, w) = (self.rows, self.outputs, self.features + 1);
        let backend = self.backend;
        // theta is `outputs x w` row-major: the w×k column-major matrix Θ.
        let theta_on = upload_f32(backend, theta.iter().copied())?;
        let x = Matrix::new(&self.x, n, w);
        let logits = backend.matmul(x, Matrix::new(&theta_on, w, k))?;
        let [residual, losses, weights] = run(
            backend,
            TrainKernel::Head {
                loss: self.loss,
                logits: Matrix::new(&logits, n, k),
                target: &self.y,
            },
        )?;
        let ones = Matrix::new(&self.ones, n, 1);
        let loss = gram(backend, Matrix::new(&losses, n, 1), ones, None)?[0];
        if order == Order::Loss {
            return Ok(Sums {
                loss,
                ..Sums::default()
            });
        }
        // Column a of Xᵀ·R is output a's gradient: the layout of theta.
        let gradient = gram(backend, x, Matrix::new(&residual, n, k), None)?;
        if order == Order::Gradient {
            return Ok(Sums {
                loss,
                gradient,
                hessian: Vec::new(),
            });
        }
        let m = k * w;
        let mut hessian = vec![0.0; m * m];
        let columns = self.loss.hessian_columns(k);
        for a in 0..k {
            for b in 0..=a {
                let pair = Some((Matrix::new(&weights, n, columns), Loss::pair(a, b)));
                let block = gram(backend, x, x, pair)?;
                for j in 0..w {
                    for l in 0..w {
                        let v = block[l * w + j];
                        hessian[(a * w + j) * m + b * w + l] = v;
                        hessian[(b * w + l) * m + a * w + j] = v;
                    }
                }
            }
        }
        Ok(Sums {
            loss,
            gradient,
            hessian,
        })
    }
}

/// One parameter array of a layer and its Adam moments, on the device.
struct Param {
    value: DeviceArray,
    m: DeviceArray,
    v: DeviceArray,
    /// The L2 penalty applied to it (0 for biases).
    l2: f32,
}

impl Param {
    fn new(backend: &dyn Backend, values: &[f64], l2: f64) -> Result<Param> {
        let zeros = || upload_f32(backend, std::iter::repeat_n(0.0, values.len()));
        Ok(Param {
            value: upload_f32(backend, values.iter().copied())?,
            m: zeros()?,
            v: zeros()?,
            l2: l2 as f32,
        })
    }

    /// One Adam step with the raw gradient `grad`.
    fn step(&mut self, backend: &dyn Backend, grad: &DeviceArray, step: AdamStep) -> Result<()> {
        let [value, m, v] = run(
            backend,
            TrainKernel::Adam {
                params: &self.value,
                grads: grad,
                m: &self.m,
                v: &self.v,
                step: AdamStep {
                    l2: self.l2,
                    ..step
                },
            },
        )?;
        *self = Param {
            value,
            m,
            v,
            l2: self.l2,
        };
        Ok(())
    }
}

/// A dense layer on the device: weights as the `inputs x outputs`
/// column-major matrix (the host's row-major `outputs x inputs`), biases.
struct DeviceLayer {
    inputs: usize,
    outputs: usize,
    weights: Param,
    bias: Param,
}

/// An MLP in training on a device.
pub struct DeviceMlp<'b> {
    backend: &'b dyn Backend,
    /// The design, n×d.
    x: DeviceArray,
    /// Every row's target (f32 values or i32 classes).
    target: DeviceArray,
    labels: Labels<'b>,
    rows: usize,
    features: usize,
    loss: Loss,
    activation: train::Activation,
    layers: Vec<DeviceLayer>,
    learning_rate: f32,
    l2: f64,
    /// Vectors of ones by length, for column sums.
    ones: HashMap<usize, DeviceArray>,
}

impl<'b> DeviceMlp<'b> {
    fn new(
        backend: &'b dyn Backend,
        x: &Design,
        labels: Labels<'b>,
        model: &Mlp,
        config: &MlpConfig,
    ) -> Result<DeviceMlp<'b>> {
        let layers = model
            .layers
            .iter()
            .map(|l| {
                Ok(DeviceLayer {
                    inputs: l.inputs,
                    outputs: l.outputs,
                    weights: Param::new(backend, &l.weights, config.l2)?,
                    bias: Param::new(backend, &l.bias, 0.0)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let rows: Vec<usize> = (0..x.rows).collect();
        Ok(DeviceMlp {
            backend,
            x: upload_design(backend, x, false)?,
            target: upload_target(backend, labels, &rows)?,
            labels,
            rows: x.rows,
            features: x.width(),
            loss: loss_of(model.head),
            activation: model.activation,
            layers,
            learning_rate: config.learning_rate as f32,
            l2: config.l2,
            ones: HashMap::new(),
        })
    }

    /// `len` ones on the device, made once per length.
    fn ones(&mut self, len: usize) -> Result<DeviceArray> {
        if let Some(ones) = self.ones.get(&len) {
            return Ok(ones.clone());
        }
        let ones = upload_f32(self.backend, std::iter::repeat_n(1.0, len))?;
        self.ones.insert(len, ones.clone());
        Ok(ones)
    }

    /// The activations of every layer for the `n` rows of `input` (n×d):
    /// `[input, hidden..., logits]`.
    fn forward(&self, input: DeviceArray, n: usize) -> Result<Vec<DeviceArray>> {
        let mut acts = vec![input];
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let z = self.backend.matmul(
                Matrix::new(&acts[l], n, layer.inputs),
                Matrix::new(&layer.weights.value, layer.inputs, layer.outputs),
            )?;
            let [out] = run(
                self.backend,
                TrainKernel::BiasActivation {
                    z: Matrix::new(&z, n, layer.outputs),
                    bias: &layer.bias.value,
                    activation: (l < last).then_some(self.activation),
                },
            )?;
            acts.push(out);
        }
        Ok(acts)
    }

    /// The trained network, read back into `model` (the initial one, for its shape).
    fn download(self, mut model: Mlp) -> Result<Mlp> {
        for (host, layer) in model.layers.iter_mut().zip(&self.layers) {
            host.weights = download_f64(self.backend, &layer.weights.value)?;
            host.bias = download_f64(self.backend, &layer.bias.value)?;
        }
        Ok(model)
    }
}

/// The targets of `rows`, as the head kernel reads them.
fn upload_target(backend: &dyn Backend, labels: Labels, rows: &[usize]) -> Result<DeviceArray> {
    match labels {
        Labels::Values(y) => upload_f32(backend, rows.iter().map(|&r| y[r])),
        Labels::Binary(c) | Labels::Multi(c) => {
            upload_i32(backend, rows.iter().map(|&r| c[r] as usize))
        }
    }
}

impl Minibatches for DeviceMlp<'_> {
    fn step(&mut self, batch: &[usize], c1: f64, c2: f64) -> Result<()> {
        let backend = self.backend;
        let n = batch.len();
        let index = upload_i32(backend, batch.iter().copied())?;
        let [input] = run(
            backend,
            TrainKernel::GatherRows {
                x: Matrix::new(&self.x, self.rows, self.features),
                rows: &index,
            },
        )?;
        let target = upload_target(backend, self.labels, batch)?;
        let acts = self.forward(input, n)?;
        let outputs = self.layers.last().map_or(0, |l| l.outputs);
        let [mut delta, _, _] = run(
            backend,
            TrainKernel::Head {
                loss: self.loss,
                logits: Matrix::new(&acts[self.layers.len()], n, outputs),
                target: &target,
            },
        )?;
        let ones = self.ones(n)?;
        let step = AdamStep {
            learning_rate: self.learning_rate,
            c1: c1 as f32,
            c2: c2 as f32,
            grad_scale: 1.0 / n as f32,
            l2: 0.0,
        };
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let d = Matrix::new(&delta, n, layer.outputs);
            let grad_w = backend.matmul(Matrix::new(&acts[l], n, layer.inputs).t(), d)?;
            let grad_b = backend.matmul(d.t(), Matrix::new(&ones, n, 1))?;
            if l > 0 {
                let back = backend.matmul(
                    d,
                    Matrix::new(&layer.weights.value, layer.inputs, layer.outputs).t(),
                )?;
                [delta] = run(
                    backend,
                    TrainKernel::ActivationBackward {
                        delta: Matrix::new(&back, n, layer.inputs),
                        output: &acts[l],
                        activation: self.activation,
                    },
                )?;
            }
            let layer = &mut self.layers[l];
            layer.weights.step(backend, &grad_w, step)?;
            layer.bias.step(backend, &grad_b, step)?;
        }
        Ok(())
    }

    fn loss(&mut self) -> Result<f64> {
        let n = self.rows;
        let acts = self.forward(self.x.clone(), n)?;
        let outputs = self.layers.last().map_or(0, |l| l.outputs);
        let [_, losses, _] = run(
            self.backend,
            TrainKernel::Head {
                loss: self.loss,
                logits: Matrix::new(&acts[self.layers.len()], n, outputs),
                target: &self.target,
            },
        )?;
        let ones = self.ones(n)?;
        let total = gram(
            self.backend,
            Matrix::new(&losses, n, 1),
            Matrix::new(&ones, n, 1),
            None,
        )?[0];
        let mut penalty = 0.0;
        if self.l2 != 0.0 {
            for layer in &self.layers {
                let w = Matrix::new(&layer.weights.value, layer.inputs * layer.outputs, 1);
                penalty += gram(self.backend, w, w, None)?[0];
            }
            penalty *= 0.5 * self.l2;
        }
        Ok(total / n as f64 + penalty)
    }
}

//! The training kernels: what model training needs from a device beyond
//! [`Backend::matmul`](super::Backend::matmul), behind the one verb
//! [`Backend::train`](super::Backend::train).
//!
//! Every kernel reads and writes dense, null-free f32 matrices stored
//! column-major in [`DeviceArray`]s (see [`Matrix`]); class labels and row
//! indices travel as i32 arrays. Outputs are new arrays: a device array's
//! storage is shared and immutable, so the Adam update is functional too.
//!
//! - [`TrainKernel::BlockGram`]: `Aᵀ·diag(w)·B` per block of
//!   [`GRAM_BLOCK_ROWS`] rows, so the host adds the blocks in f64 (Newton's
//!   gradient and Hessian, sums of squares).
//! - [`TrainKernel::Head`]: from logits and targets, the residual
//!   `∂loss/∂logits`, the per-row loss and the Hessian weights.
//! - [`TrainKernel::BiasActivation`], [`TrainKernel::ActivationBackward`]:
//!   a dense layer's forward and backward elementwise parts.
//! - [`TrainKernel::GatherRows`]: the rows of a minibatch.
//! - [`TrainKernel::Adam`]: one Adam step over a parameter array.
//!
//! [`TrainKernel::check`] validates shapes once for every backend; the CPU
//! backend (`cpu/train.rs`) is the reference the GPU kernels are tested
//! against (`tests/suite/backend_conformance.rs`).
//!
//! The arithmetic of training is written here once, in f64: an
//! [`Activation`]'s forward and backward step and the [`Adam`] update of one
//! parameter (the losses are in [`crate::ir::math`]). The host trainer
//! (`ml::mlp`) applies it to its f64 parameters; the CPU training kernels
//! apply it to f32 operands widened to f64 and round the result once, so
//! there is no f32 twin to keep in step. The GPU kernels spell the same
//! formulas in WGSL and CUDA C (`kernels/`), checked against the CPU.

use super::{DeviceArray, Matrix};
use crate::error::{Error, Result};
use crate::ir::DType;

/// Rows per partial sum of [`TrainKernel::BlockGram`].
pub const GRAM_BLOCK_ROWS: usize = 4096;

/// A hidden layer's nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `max(z, 0)`.
    Relu,
    /// `tanh(z)`.
    Tanh,
}

impl Activation {
    /// The activation of `z`.
    #[inline]
    pub fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Relu if z > 0.0 => z,
            Activation::Relu => 0.0,
            Activation::Tanh => z.tanh(),
        }
    }

    /// The gradient `delta` carried back through the activation, from the
    /// activation's output `a`: `delta · act'(z)`.
    #[inline]
    pub fn backward(self, delta: f64, a: f64) -> f64 {
        match self {
            Activation::Relu if a > 0.0 => delta,
            Activation::Relu => 0.0,
            Activation::Tanh => delta * (1.0 - a * a),
        }
    }

    /// The code the training kernels (WGSL and CUDA) take for an optional
    /// activation: 0 for none.
    pub fn kernel_code(activation: Option<Activation>) -> u32 {
        match activation {
            None => 0,
            Some(Activation::Relu) => 1,
            Some(Activation::Tanh) => 2,
        }
    }
}

/// The loss a [`TrainKernel::Head`] computes from logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Half the squared error against an f32 target; one logit per row.
    Squared,
    /// Binary cross-entropy of a sigmoid over one logit, against i32 labels 0/1.
    Logistic,
    /// Categorical cross-entropy of a softmax over `k` logits, against i32
    /// class indices in `0..k`.
    Softmax,
}

impl Loss {
    /// The code the training kernels (WGSL and CUDA) take for this loss.
    pub fn kernel_code(self) -> u32 {
        match self {
            Loss::Squared => 0,
            Loss::Logistic => 1,
            Loss::Softmax => 2,
        }
    }

    /// Columns of the Hessian weights for `k` logits: none for the squared
    /// loss, `p(1-p)` for the logistic, and for the softmax one column per
    /// pair `b <= a`, `p_a (δ_ab - p_b)`, at column [`Loss::pair`]`(a, b)`.
    pub fn hessian_columns(self, k: usize) -> usize {
        match self {
            Loss::Squared => 0,
            Loss::Logistic => 1,
            Loss::Softmax => k * (k + 1) / 2,
        }
    }

    /// The Hessian-weight column of the output pair `(a, b)`, `b <= a`.
    pub fn pair(a: usize, b: usize) -> usize {
        a * (a + 1) / 2 + b
    }
}

/// The scalars of one Adam step (all f32, as the device computes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// The step size.
    pub learning_rate: f32,
    /// `1 - beta1^t`, the first moment's bias correction.
    pub c1: f32,
    /// `1 - beta2^t`, the second moment's bias correction.
    pub c2: f32,
    /// The raw gradient is multiplied by this first (`1 / batch rows`).
    pub grad_scale: f32,
    /// Then `l2 * param` is added (0 for biases).
    pub l2: f32,
}

/// Adam's constants: the moments' decays and the denominator's guard.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// The first moment's decay.
    pub beta1: f64,
    /// The second moment's decay.
    pub beta2: f64,
    /// Added to the denominator so that it is never zero.
    pub eps: f64,
}

impl Adam {
    /// The constants in f64, as the host trainer uses them.
    pub const F64: Adam = Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };

    /// The constants rounded to f32, as the device kernels hold them.
    pub const F32: Adam = Adam {
        beta1: 0.9f32 as f64,
        beta2: 0.999f32 as f64,
        eps: 1e-8f32 as f64,
    };

    /// One parameter's step: the parameter, first and second moments after
    /// the gradient `g`, at `rate` (with its bias corrections).
    #[inline]
    pub fn update(&self, rate: AdamRate, param: f64, g: f64, m: f64, v: f64) -> [f64; 3] {
        let m = self.beta1 * m + (1.0 - self.beta1) * g;
        let v = self.beta2 * v + (1.0 - self.beta2) * g * g;
        let step = rate.learning_rate * (m / rate.c1) / ((v / rate.c2).sqrt() + self.eps);
        [param - step, m, v]
    }
}

/// The step size of one Adam step and its bias corrections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamRate {
    /// The step size.
    pub learning_rate: f64,
    /// `1 - beta1^t`.
    pub c1: f64,
    /// `1 - beta2^t`.
    pub c2: f64,
}

/// A hand-written training kernel and its operands.
///
/// Matrices are read as stored (`transposed` must be false) and all f32
/// operands must be null-free; [`TrainKernel::check`] says what is wrong.
#[derive(Clone, Copy, Debug)]
pub enum TrainKernel<'a> {
    /// Partial products `Aᵀ·diag(w)·B` over the rows of `a` (n×p) and `b`
    /// (n×q), one per block of [`GRAM_BLOCK_ROWS`] rows, with `w` column
    /// `c` of an n-row matrix (`w = 1` when `None`). Returns one array of
    /// `blocks · p · q` values: block after block, each p×q column-major.
    BlockGram {
        /// The left factor, n×p.
        a: Matrix<'a>,
        /// The right factor, n×q.
        b: Matrix<'a>,
        /// The row weights: a matrix with n rows and the column to use.
        weights: Option<(Matrix<'a>, usize)>,
    },
    /// From `logits` (n×k) and `target` (n values: f32 for
    /// [`Loss::Squared`], i32 classes otherwise) returns `[residual (n×k),
    /// loss (n), hessian weights (n×`[`Loss::hessian_columns`]`)]`. The
    /// residual is `∂loss/∂logits`: `z - y`, `p - y`, `p - onehot(y)`; the
    /// losses are computed from the logits in stable form (softplus,
    /// log-sum-exp).
    Head {
        /// Which loss.
        loss: Loss,
        /// The logits, n×k (k = 1 unless [`Loss::Softmax`]).
        logits: Matrix<'a>,
        /// The targets.
        target: &'a DeviceArray,
    },
    /// `act(z + bias)` per element, with `bias` one value per column of
    /// `z` (n×h); no activation gives the affine output. Returns `[n×h]`.
    BiasActivation {
        /// Pre-activations without the bias.
        z: Matrix<'a>,
        /// One bias per column.
        bias: &'a DeviceArray,
        /// The nonlinearity, if any.
        activation: Option<Activation>,
    },
    /// `delta ⊙ act'(output)`, with the derivative written in terms of the
    /// activation's output (`1[a > 0]`, `1 - a²`). Returns `[n×h]`.
    ActivationBackward {
        /// The gradient with respect to the activation's output, n×h.
        delta: Matrix<'a>,
        /// The activation's output, n×h values.
        output: &'a DeviceArray,
        /// The nonlinearity.
        activation: Activation,
    },
    /// Rows `rows[i]` of `x` (n×d), in order: returns `[m×d]` for `m` i32 indices.
    GatherRows {
        /// The matrix to read.
        x: Matrix<'a>,
        /// Row indices in `0..n`.
        rows: &'a DeviceArray,
    },
    /// One Adam step over equally long arrays: `g = grad_scale·grads +
    /// l2·params`, `m' = β1·m + (1-β1)·g`, `v' = β2·v + (1-β2)·g²`,
    /// `params' = params - lr·(m'/c1) / (sqrt(v'/c2) + ε)`. Returns
    /// `[params', m', v']`.
    Adam {
        /// The parameters.
        params: &'a DeviceArray,
        /// Their raw gradient.
        grads: &'a DeviceArray,
        /// The first moment.
        m: &'a DeviceArray,
        /// The second moment.
        v: &'a DeviceArray,
        /// The step's scalars.
        step: AdamStep,
    },
}

impl TrainKernel<'_> {
    /// The kernel's name, as errors and profiles show it.
    pub fn name(&self) -> &'static str {
        match self {
            TrainKernel::BlockGram { .. } => "block_gram",
            TrainKernel::Head { .. } => "head",
            TrainKernel::BiasActivation { .. } => "bias_activation",
            TrainKernel::ActivationBackward { .. } => "activation_backward",
            TrainKernel::GatherRows { .. } => "gather_rows",
            TrainKernel::Adam { .. } => "adam",
        }
    }

    /// Check the operands' types and shapes, which every backend does first.
    ///
    /// # Errors
    /// [`Error::Internal`] naming the kernel and the operand at fault: these
    /// are bugs in the caller, never in user data.
    pub fn check(&self) -> Result<()> {
        match *self {
            TrainKernel::BlockGram { a, b, weights } => {
                self.dense("a", &a)?;
                self.dense("b", &b)?;
                if a.rows != b.rows {
                    return self.fail(format!("a has {} rows, b {}", a.rows, b.rows));
                }
                if let Some((w, c)) = weights {
                    self.dense("weights", &w)?;
                    if w.rows != a.rows || c >= w.cols {
                        return self.fail(format!(
                            "weight column {c} of a {}x{} matrix for {} rows",
                            w.rows, w.cols, a.rows
                        ));
                    }
                }
            }
            TrainKernel::Head {
                loss,
                logits,
                target,
            } => {
                self.dense("logits", &logits)?;
                let dtype = match loss {
                    Loss::Squared => DType::Float32,
                    Loss::Logistic | Loss::Softmax => DType::Int32,
                };
                self.vector("target", target, dtype, logits.rows)?;
                if logits.cols == 0 || (loss != Loss::Softmax && logits.cols != 1) {
                    return self.fail(format!("{loss:?} takes one logit, got {}", logits.cols));
                }
            }
            TrainKernel::BiasActivation { z, bias, .. } => {
                self.dense("z", &z)?;
                self.vector("bias", bias, DType::Float32, z.cols)?;
            }
            TrainKernel::ActivationBackward { delta, output, .. } => {
                self.dense("delta", &delta)?;
                self.vector("output", output, DType::Float32, delta.rows * delta.cols)?;
            }
            TrainKernel::GatherRows { x, rows } => {
                self.dense("x", &x)?;
                self.vector("rows", rows, DType::Int32, rows.len())?;
            }
            TrainKernel::Adam {
                params,
                grads,
                m,
                v,
                ..
            } => {
                for (name, a) in [("grads", grads), ("m", m), ("v", v), ("params", params)] {
                    self.vector(name, a, DType::Float32, params.len())?;
                }
            }
        }
        Ok(())
    }

    /// An operand error naming this kernel.
    fn fail(&self, what: String) -> Result<()> {
        Err(Error::Internal(format!("{}: {what}", self.name())))
    }

    /// Check that `x` is a null-free f32 matrix as stored.
    fn dense(&self, name: &str, x: &Matrix<'_>) -> Result<()> {
        if x.transposed
            || x.data.dtype() != DType::Float32
            || x.data.null_count() != 0
            || x.data.len() != x.rows * x.cols
        {
            return self.fail(format!(
                "{name} must be a null-free f32 {}x{} matrix as stored, got {} values of {} \
                 with {} nulls{}",
                x.rows,
                x.cols,
                x.data.len(),
                x.data.dtype(),
                x.data.null_count(),
                if x.transposed { ", transposed" } else { "" }
            ));
        }
        Ok(())
    }

    /// Check that `a` is `len` null-free values of `dtype`.
    fn vector(&self, name: &str, a: &DeviceArray, dtype: DType, len: usize) -> Result<()> {
        if a.dtype() != dtype || a.null_count() != 0 || a.len() != len {
            return self.fail(format!(
                "{name} must be {len} null-free {dtype} values, got {} of {} with {} nulls",
                a.len(),
                a.dtype(),
                a.null_count()
            ));
        }
        Ok(())
    }

    /// Number of [`GRAM_BLOCK_ROWS`] blocks in `rows` rows.
    pub fn blocks(rows: usize) -> usize {
        rows.div_ceil(GRAM_BLOCK_ROWS)
    }
}

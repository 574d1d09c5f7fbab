//! A small multi-layer perceptron trained with minibatch Adam, in f64.
//!
//! The network is a stack of [`DenseLayer`]s: hidden layers use one
//! [`Activation`] (ReLU or tanh), and the output layer feeds a [`Head`] chosen
//! by the target: identity for regression, a sigmoid over one output for two
//! classes, a softmax over `K` outputs for `K > 2` classes. With no hidden
//! layers the model is plain linear or logistic (softmax) regression.
//!
//! # Training
//!
//! [`train`] initializes weights from a seeded [`Rng`](crate::data::Rng) (He scaling,
//! `N(0, 2 / fan_in)`, for ReLU hidden layers; Glorot scaling,
//! `N(0, 2 / (fan_in + fan_out))`, for tanh hidden layers and the output
//! layer; biases start at zero), then for each epoch shuffles the rows with a
//! seeded Fisher-Yates permutation and takes one Adam step (`beta1 = 0.9`,
//! `beta2 = 0.999`, `eps = 1e-8`, with bias correction) per minibatch.
//!
//! The objective minimized (and reported) is
//!
//! ```text
//! loss = (1 / n) * sum_i loss_i  +  (l2 / 2) * sum of squared weights
//! ```
//!
//! over the `n` rows involved, where `loss_i` is half the squared error for
//! regression, the binary cross-entropy for a sigmoid head and the categorical
//! cross-entropy for a softmax head. Both cross-entropies are computed from the
//! logits in a numerically stable form (`softplus` / log-sum-exp). The L2
//! penalty applies to weights only, never to biases.
//!
//! # Parallelism and reproducibility
//!
//! A minibatch gradient is split into fixed-size chunks of rows (64 rows each,
//! whatever the number of threads); chunks run in parallel with rayon and their
//! partial sums are added in chunk order. The same seed and data therefore give
//! bit-identical weights on any rayon thread count. Prediction
//! ([`Mlp::predict`]) runs in parallel over blocks of rows.
//!
//! # Devices
//!
//! The epoch loop (`run_epochs`) is shared: the host trains in f64 here,
//! and `on_device` trains through the backend verbs in
//! f32 with the same initialization, shuffles and step schedule.
//!
//! Features are used as given: scale them (for example standardize) before
//! training, as with any gradient-trained network.

mod network;
mod training;
mod validate;

pub use training::train;
pub(crate) use training::{Minibatches, Start, run_epochs, start};

use crate::ir::math::{sigmoid, softmax};

/// Nonlinearity applied after every hidden layer (one type for the host and
/// the device trainers).
pub use crate::backend::train::Activation;

/// How the output layer's values (logits) become predictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Regression: one output, used as is; trained with half squared error.
    Identity,
    /// Binary classification: one output `z`, `P(class 1) = 1 / (1 + e^-z)`;
    /// trained with binary cross-entropy.
    Sigmoid,
    /// Multinomial classification: `K` outputs turned into class
    /// probabilities by a softmax; trained with categorical cross-entropy.
    Softmax,
}

impl Head {
    /// Turn logits into predictions, written to `out` (same length).
    fn apply(self, logits: &[f64], out: &mut [f64]) {
        match self {
            Head::Identity => out.copy_from_slice(logits),
            Head::Sigmoid => {
                for (o, &z) in out.iter_mut().zip(logits) {
                    *o = sigmoid(z);
                }
            }
            Head::Softmax => {
                softmax(logits, out);
            }
        }
    }
}

/// Hyper-parameters of [`train`].
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Units of each hidden layer, input side first. Empty gives a linear
    /// (regression) or logistic/softmax (classification) model.
    pub hidden: Vec<usize>,
    /// Nonlinearity of the hidden layers.
    pub activation: Activation,
    /// Passes over the training rows (at least 1).
    pub epochs: usize,
    /// Rows per minibatch, i.e. per Adam step (at least 1). The last batch of
    /// an epoch may be smaller.
    pub batch_size: usize,
    /// Adam step size (finite and positive).
    pub learning_rate: f64,
    /// L2 penalty on the weights (not the biases): `(l2 / 2) * sum w^2` is
    /// added to the mean loss. Finite and non-negative.
    pub l2: f64,
    /// Seed for weight initialization and per-epoch shuffling.
    pub seed: u64,
}

impl Default for MlpConfig {
    /// One hidden layer of 32 ReLU units, 20 epochs, batches of 256,
    /// learning rate `1e-3`, `l2 = 1e-4`, seed 0.
    fn default() -> Self {
        MlpConfig {
            hidden: vec![32],
            activation: Activation::Relu,
            epochs: 20,
            batch_size: 256,
            learning_rate: 1e-3,
            l2: 1e-4,
            seed: 0,
        }
    }
}

/// What the network learns to predict, one entry per design row.
#[derive(Clone, Copy, Debug)]
pub enum MlpTarget<'a> {
    /// A real-valued target (identity head, one output).
    Regression(&'a [f64]),
    /// Class indices in `0..classes`. Two classes give a sigmoid head with one
    /// output (the probability of class 1); more give a softmax head with
    /// `classes` outputs.
    Classes {
        /// Class index of each row.
        index: &'a [u32],
        /// Number of classes (at least 2).
        classes: usize,
    },
}

/// A fully connected layer: `out = weights * in + bias`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseLayer {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// Row-major `outputs x inputs`: the weight from input `i` to output `o`
    /// is `weights[o * inputs + i]`.
    pub weights: Vec<f64>,
    /// One bias per output.
    pub bias: Vec<f64>,
}

impl DenseLayer {
    /// A layer of zeros with the given shape.
    fn zeros(inputs: usize, outputs: usize) -> Self {
        DenseLayer {
            inputs,
            outputs,
            weights: vec![0.0; inputs * outputs],
            bias: vec![0.0; outputs],
        }
    }

    /// Add `other` (same shape) into `self`.
    fn add(&mut self, other: &DenseLayer) {
        for (a, b) in self.weights.iter_mut().zip(&other.weights) {
            *a += b;
        }
        for (a, b) in self.bias.iter_mut().zip(&other.bias) {
            *a += b;
        }
    }
}

/// A trained multi-layer perceptron.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Hidden layers followed by the output layer (always at least one layer).
    pub layers: Vec<DenseLayer>,
    /// Nonlinearity after every hidden layer (not after the output layer).
    pub activation: Activation,
    /// How the output layer's values become predictions.
    pub head: Head,
}

/// Summary of a [`train`] run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// Final training loss: the mean per-row loss over all rows plus
    /// `(l2 / 2) * sum of squared weights`, with the final weights (equals the
    /// last entry of `loss_history`).
    pub loss: f64,
    /// The same training loss measured after each epoch.
    pub loss_history: Vec<f64>,
}

/// Labels resolved against a head.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Labels<'a> {
    /// Regression targets (identity head).
    Values(&'a [f64]),
    /// Classes 0/1 (sigmoid head).
    Binary(&'a [u32]),
    /// Class indices (softmax head).
    Multi(&'a [u32]),
}

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
//! [`train`] initializes weights from a seeded [`Rng`] (He scaling,
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
//! and [`on_device`](super::on_device) trains through the backend verbs in
//! f32 with the same initialization, shuffles and step schedule.
//!
//! Features are used as given: scale them (for example standardize) before
//! training, as with any gradient-trained network.

use rayon::prelude::*;

use crate::data::Rng;
use crate::error::{Error, Result};
use crate::ir::math::logistic_loss;
use crate::ml::design::Design;

/// Rows per gradient chunk. Fixed (not derived from the thread count) so the
/// reduction order, and hence the result, never depends on the thread pool.
const GRAD_CHUNK_ROWS: usize = 64;
/// Rows per chunk when evaluating the loss over the whole training set.
const LOSS_CHUNK_ROWS: usize = 1024;
/// Rows per parallel block in [`Mlp::predict`].
const PREDICT_BLOCK_ROWS: usize = 256;
/// Adam's first-moment decay (in f64; the devices' f32 kernels use
/// [`ADAM_BETA1`](crate::backend::train::ADAM_BETA1)).
const BETA1: f64 = 0.9;
/// Adam's second-moment decay.
const BETA2: f64 = 0.999;
/// Adam's denominator guard.
const ADAM_EPS: f64 = 1e-8;

/// Nonlinearity applied after every hidden layer (one type for the host and
/// the device trainers).
pub use crate::backend::train::Activation;

impl Activation {
    fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Relu => {
                if z > 0.0 {
                    z
                } else {
                    0.0
                }
            }
            Activation::Tanh => z.tanh(),
        }
    }

    /// The derivative, written in terms of the activation's output `a`.
    fn derivative_at_output(self, a: f64) -> f64 {
        match self {
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Tanh => 1.0 - a * a,
        }
    }
}

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
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for (o, &z) in out.iter_mut().zip(logits) {
                    *o = (z - max).exp();
                    sum += *o;
                }
                for o in out.iter_mut() {
                    *o /= sum;
                }
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

/// Per-thread buffers for one row's forward and backward pass.
struct Workspace {
    /// `acts[0]` is the input row, `acts[l + 1]` the output of layer `l`
    /// (activated for hidden layers, raw logits for the last layer).
    acts: Vec<Vec<f64>>,
    /// Loss gradient with respect to the current layer's pre-activations.
    delta: Vec<f64>,
    /// Scratch for the previous layer's delta.
    prev: Vec<f64>,
}

impl Workspace {
    fn new(mlp: &Mlp) -> Self {
        let widths: Vec<usize> = std::iter::once(mlp.inputs())
            .chain(mlp.layers.iter().map(|l| l.outputs))
            .collect();
        let widest = widths.iter().copied().max().unwrap_or(0);
        Workspace {
            acts: widths.iter().map(|&w| vec![0.0; w]).collect(),
            delta: vec![0.0; widest],
            prev: vec![0.0; widest],
        }
    }

    fn logits(&self) -> &[f64] {
        self.acts.last().expect("a network has at least one layer")
    }
}

/// Train a network on `x` and `y`.
///
/// `step` names the pipeline step in errors. The head follows the target: see
/// [`MlpTarget`]. The returned report holds the training loss (as defined in
/// the [module docs](self)) after every epoch.
///
/// # Errors
/// [`Error::InvalidParameter`] naming the parameter when `hidden` has a zero
/// width, `epochs` or `batch_size` is 0, `learning_rate` is not finite and
/// positive, or `l2` is not finite and non-negative; also when the design has
/// no rows or features or an inconsistent size, the target length differs from
/// the row count, a regression target is NaN or infinite, or a class index is
/// out of range or `classes < 2`. [`Error::Schema`] naming the feature when a
/// feature value is NaN or infinite. [`Error::Execution`] when training
/// diverges (the loss becomes non-finite).
pub fn train(
    step: &str,
    x: &Design,
    y: &MlpTarget,
    config: &MlpConfig,
) -> Result<(Mlp, TrainReport)> {
    let Start {
        labels,
        model,
        mut rng,
    } = start(step, x, y, config)?;
    let mut host = HostTrainer {
        adam: Adam::new(&model),
        model,
        x,
        labels,
        config,
    };
    let report = run_epochs(step, x.rows, config, &mut rng, &mut host)?;
    Ok((host.model, report))
}

/// A validated training problem and its seeded starting point.
pub(crate) struct Start<'a> {
    /// The target, resolved against the head.
    pub labels: Labels<'a>,
    /// The initialized network.
    pub model: Mlp,
    /// The generator after initialization, which then drives the shuffles.
    pub rng: Rng,
}

/// Validate the settings and data and initialize the network from the seed:
/// the start every device shares.
///
/// # Errors
/// As [`train`].
pub(crate) fn start<'a>(
    step: &str,
    x: &Design,
    y: &MlpTarget<'a>,
    config: &MlpConfig,
) -> Result<Start<'a>> {
    validate_config(step, config)?;
    let (labels, head, outputs) = validate_data(step, x, y)?;
    let mut rng = Rng::new(config.seed);
    let model = Mlp::init(
        x.width(),
        &config.hidden,
        outputs,
        config.activation,
        head,
        &mut rng,
    );
    Ok(Start { labels, model, rng })
}

/// A network in training, wherever its parameters live: what the shared
/// epoch loop ([`run_epochs`]) drives.
pub(crate) trait Minibatches {
    /// One Adam step on the rows `batch` (indices into the design), with the
    /// bias corrections `c1 = 1 - beta1^t`, `c2 = 1 - beta2^t`.
    fn step(&mut self, batch: &[usize], c1: f64, c2: f64) -> Result<()>;
    /// The training loss over all rows (mean loss plus penalty).
    fn loss(&mut self) -> Result<f64>;
}

/// The schedule every device shares: per epoch a seeded shuffle, one Adam
/// step per minibatch, then the loss over all rows, which must stay finite.
///
/// # Errors
/// [`Error::Execution`] when the loss diverges; what `net` reports.
pub(crate) fn run_epochs(
    step: &str,
    rows: usize,
    config: &MlpConfig,
    rng: &mut Rng,
    net: &mut dyn Minibatches,
) -> Result<TrainReport> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut history = Vec::with_capacity(config.epochs);
    let (mut beta1_t, mut beta2_t) = (1.0, 1.0);
    for epoch in 0..config.epochs {
        shuffle(&mut order, rng);
        for batch in order.chunks(config.batch_size) {
            beta1_t *= BETA1;
            beta2_t *= BETA2;
            net.step(batch, 1.0 - beta1_t, 1.0 - beta2_t)?;
        }
        let loss = net.loss()?;
        if !loss.is_finite() {
            return Err(Error::Execution {
                step: step.into(),
                message: format!(
                    "the network diverged in epoch {} (training loss is {loss}); lower learning_rate (now {}) or scale the features",
                    epoch + 1,
                    config.learning_rate
                ),
            });
        }
        history.push(loss);
    }
    let loss = *history.last().expect("epochs >= 1 was checked");
    Ok(TrainReport {
        epochs: config.epochs,
        loss,
        loss_history: history,
    })
}

/// Training on the host in f64.
struct HostTrainer<'a> {
    model: Mlp,
    adam: Adam,
    x: &'a Design,
    labels: Labels<'a>,
    config: &'a MlpConfig,
}

impl Minibatches for HostTrainer<'_> {
    fn step(&mut self, batch: &[usize], c1: f64, c2: f64) -> Result<()> {
        let (_, grad) = self
            .model
            .gradient(self.x, self.labels, batch, self.config.l2);
        self.adam
            .step(&mut self.model, &grad, self.config.learning_rate, c1, c2);
        Ok(())
    }

    fn loss(&mut self) -> Result<f64> {
        Ok(self.model.mean_loss(self.x, self.labels, self.config.l2))
    }
}

fn invalid(step: &str, message: String) -> Error {
    Error::InvalidParameter {
        step: step.into(),
        message,
    }
}

fn validate_config(step: &str, config: &MlpConfig) -> Result<()> {
    if let Some(i) = config.hidden.iter().position(|&h| h == 0) {
        return Err(invalid(
            step,
            format!(
                "hidden[{i}] is 0: every hidden layer needs at least one unit (use an empty `hidden` list for a linear model)"
            ),
        ));
    }
    if config.epochs == 0 {
        return Err(invalid(step, "epochs must be at least 1, got 0".into()));
    }
    if config.batch_size == 0 {
        return Err(invalid(step, "batch_size must be at least 1, got 0".into()));
    }
    let lr = config.learning_rate;
    if !(lr.is_finite() && lr > 0.0) {
        return Err(invalid(
            step,
            format!("learning_rate must be a finite number > 0, got {lr}; try 1e-3"),
        ));
    }
    let l2 = config.l2;
    if !(l2.is_finite() && l2 >= 0.0) {
        return Err(invalid(
            step,
            format!("l2 must be a finite number >= 0, got {l2}"),
        ));
    }
    Ok(())
}

/// Check the design and target; returns the labels, head and output width.
fn validate_data<'a>(
    step: &str,
    x: &Design,
    y: &MlpTarget<'a>,
) -> Result<(Labels<'a>, Head, usize)> {
    let rows = x.rows;
    if rows == 0 {
        return Err(invalid(step, "the training data has no rows".into()));
    }
    if x.width() == 0 {
        return Err(invalid(
            step,
            "no feature columns given; list at least one".into(),
        ));
    }
    if x.x.len() != rows * x.width() {
        return Err(invalid(
            step,
            format!(
                "the design holds {} values, but {rows} rows x {} features need {}",
                x.x.len(),
                x.width(),
                rows * x.width()
            ),
        ));
    }
    for (j, name) in x.features.iter().enumerate() {
        let bad = x.column(j).iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::Schema {
                step: step.into(),
                column: name.clone(),
                message: format!(
                    "{bad} of {rows} rows are NaN or infinite; replace or filter them before training"
                ),
            });
        }
    }
    let target_len = match y {
        MlpTarget::Regression(v) => v.len(),
        MlpTarget::Classes { index, .. } => index.len(),
    };
    if target_len != rows {
        return Err(invalid(
            step,
            format!("the target has {target_len} values but the features have {rows} rows"),
        ));
    }
    match *y {
        MlpTarget::Regression(values) => {
            let bad = values.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(invalid(
                    step,
                    format!(
                        "the regression target has {bad} NaN or infinite values of {rows}; filter those rows before training"
                    ),
                ));
            }
            Ok((Labels::Values(values), Head::Identity, 1))
        }
        MlpTarget::Classes { index, classes } => {
            if classes < 2 {
                return Err(invalid(
                    step,
                    format!("classes must be at least 2 to train a classifier, got {classes}"),
                ));
            }
            if let Some((row, &c)) = index
                .iter()
                .enumerate()
                .find(|&(_, &c)| c as usize >= classes)
            {
                return Err(invalid(
                    step,
                    format!("class index {c} at row {row} is out of range for {classes} classes"),
                ));
            }
            if classes == 2 {
                Ok((Labels::Binary(index), Head::Sigmoid, 1))
            } else {
                Ok((Labels::Multi(index), Head::Softmax, classes))
            }
        }
    }
}

/// In-place Fisher-Yates shuffle driven by `rng`.
fn shuffle(order: &mut [usize], rng: &mut Rng) {
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

/// `1 / (1 + e^-z)` without overflow for large `|z|`.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Copy row `r` of the column-major design into `dst`.
fn gather_row(x: &Design, r: usize, dst: &mut [f64]) {
    for (j, v) in dst.iter_mut().enumerate() {
        *v = x.x[j * x.rows + r];
    }
}

/// Loss of one row given its logits; writes `d loss / d logits` into `delta`.
fn row_loss(labels: Labels, r: usize, logits: &[f64], delta: &mut [f64]) -> f64 {
    match labels {
        Labels::Values(y) => {
            let d = logits[0] - y[r];
            delta[0] = d;
            0.5 * d * d
        }
        Labels::Binary(index) => {
            let z = logits[0];
            let t = f64::from(index[r]);
            delta[0] = sigmoid(z) - t;
            logistic_loss(z, t)
        }
        Labels::Multi(index) => {
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + logits.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
            for (d, z) in delta.iter_mut().zip(logits) {
                *d = (z - lse).exp();
            }
            let c = index[r] as usize;
            delta[c] -= 1.0;
            lse - logits[c]
        }
    }
}

impl Mlp {
    /// Seeded initialization (see the module docs).
    fn init(
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
        head: Head,
        rng: &mut Rng,
    ) -> Mlp {
        let sizes: Vec<usize> = std::iter::once(inputs)
            .chain(hidden.iter().copied())
            .chain(std::iter::once(outputs))
            .collect();
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(l, pair)| {
                let (fan_in, fan_out) = (pair[0], pair[1]);
                let scale = if l < hidden.len() && activation == Activation::Relu {
                    (2.0 / fan_in as f64).sqrt()
                } else {
                    (2.0 / (fan_in + fan_out) as f64).sqrt()
                };
                let weights = (0..fan_in * fan_out)
                    .map(|_| rng.normal() * scale)
                    .collect();
                DenseLayer {
                    inputs: fan_in,
                    outputs: fan_out,
                    weights,
                    bias: vec![0.0; fan_out],
                }
            })
            .collect();
        Mlp {
            layers,
            activation,
            head,
        }
    }

    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    /// Number of outputs per row: 1 for regression and binary, `K` for softmax.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Predictions for one row of features: the regression value, `[P(class
    /// 1)]` for a sigmoid head, or the `K` class probabilities for a softmax
    /// head.
    ///
    /// # Panics
    /// When `row.len()` differs from [`Mlp::inputs`].
    pub fn forward(&self, row: &[f64]) -> Vec<f64> {
        assert_eq!(
            row.len(),
            self.inputs(),
            "Mlp::forward: the row has {} features, the network takes {}",
            row.len(),
            self.inputs()
        );
        let mut ws = Workspace::new(self);
        ws.acts[0].copy_from_slice(row);
        self.forward_logits(&mut ws);
        let mut out = vec![0.0; self.outputs()];
        self.head.apply(ws.logits(), &mut out);
        out
    }

    /// Predictions for every row of `x`, row-major `rows x outputs` (see
    /// [`Mlp::forward`] for what each output is). Rows are scored in parallel
    /// blocks with rayon; each row's result does not depend on the blocking.
    ///
    /// # Panics
    /// When `x` has a different number of features than [`Mlp::inputs`].
    pub fn predict(&self, x: &Design) -> Vec<f64> {
        assert_eq!(
            x.width(),
            self.inputs(),
            "Mlp::predict: the design has {} features, the network takes {}",
            x.width(),
            self.inputs()
        );
        let k = self.outputs();
        let mut out = vec![0.0; x.rows * k];
        out.par_chunks_mut(PREDICT_BLOCK_ROWS * k)
            .enumerate()
            .for_each(|(block, dst)| {
                let mut ws = Workspace::new(self);
                let start = block * PREDICT_BLOCK_ROWS;
                for (i, row_out) in dst.chunks_mut(k).enumerate() {
                    gather_row(x, start + i, &mut ws.acts[0]);
                    self.forward_logits(&mut ws);
                    self.head.apply(ws.logits(), row_out);
                }
            });
        out
    }

    /// The training loss over `rows` of `x` and its gradient with respect to
    /// every weight and bias (same shapes as [`Mlp::layers`]).
    ///
    /// The loss is `(1 / rows.len()) * sum of per-row losses + (l2 / 2) *
    /// sum of squared weights` (see the module docs); with no rows only the
    /// penalty remains. The rows are processed in fixed 64-row chunks reduced
    /// in order, so the result does not depend on the rayon thread count.
    ///
    /// # Panics
    /// When the target does not fit the head (a regression target for a
    /// classifier or the reverse, or a softmax head whose output count is not
    /// `classes`), or when a row index or class index is out of range.
    pub fn loss_and_gradient(
        &self,
        x: &Design,
        y: &MlpTarget,
        rows: &[usize],
        l2: f64,
    ) -> (f64, Vec<DenseLayer>) {
        assert_eq!(
            x.width(),
            self.inputs(),
            "Mlp::loss_and_gradient: the design has {} features, the network takes {}",
            x.width(),
            self.inputs()
        );
        self.gradient(x, self.labels(y), rows, l2)
    }

    /// Resolve a public target against this network's head.
    fn labels<'a>(&self, y: &MlpTarget<'a>) -> Labels<'a> {
        match (self.head, *y) {
            (Head::Identity, MlpTarget::Regression(v)) => Labels::Values(v),
            (Head::Sigmoid, MlpTarget::Classes { index, classes: 2 }) => Labels::Binary(index),
            (Head::Softmax, MlpTarget::Classes { index, classes }) if classes == self.outputs() => {
                Labels::Multi(index)
            }
            (head, target) => panic!(
                "a {head:?} head with {} outputs cannot be trained on {target:?}",
                self.outputs()
            ),
        }
    }

    /// Shapes of the layers, filled with zeros.
    fn zeros_like(&self) -> Vec<DenseLayer> {
        self.layers
            .iter()
            .map(|l| DenseLayer::zeros(l.inputs, l.outputs))
            .collect()
    }

    /// `(l2 / 2) * sum w^2` over all weights (no biases).
    fn penalty(&self, l2: f64) -> f64 {
        if l2 == 0.0 {
            return 0.0;
        }
        0.5 * l2
            * self
                .layers
                .iter()
                .map(|l| dot(&l.weights, &l.weights))
                .sum::<f64>()
    }

    /// Forward pass for the row already in `ws.acts[0]`.
    fn forward_logits(&self, ws: &mut Workspace) {
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, rest) = ws.acts.split_at_mut(l + 1);
            let input = &done[l];
            let output = &mut rest[0];
            for (o, out) in output.iter_mut().enumerate() {
                let z = layer.bias[o]
                    + dot(
                        &layer.weights[o * layer.inputs..(o + 1) * layer.inputs],
                        input,
                    );
                *out = if l < last {
                    self.activation.apply(z)
                } else {
                    z
                };
            }
        }
    }

    /// Forward and backward pass for row `r`; adds the row's (unscaled)
    /// gradient into `grad` and returns its loss.
    fn backprop_row(
        &self,
        x: &Design,
        labels: Labels,
        r: usize,
        ws: &mut Workspace,
        grad: &mut [DenseLayer],
    ) -> f64 {
        gather_row(x, r, &mut ws.acts[0]);
        self.forward_logits(ws);
        let Workspace { acts, delta, prev } = ws;
        let depth = self.layers.len();
        let loss = row_loss(labels, r, &acts[depth], &mut delta[..self.outputs()]);
        for l in (0..depth).rev() {
            let layer = &self.layers[l];
            let g = &mut grad[l];
            let input = &acts[l];
            let d = &delta[..layer.outputs];
            for (o, &dv) in d.iter().enumerate() {
                g.bias[o] += dv;
                for (gw, a) in g.weights[o * layer.inputs..(o + 1) * layer.inputs]
                    .iter_mut()
                    .zip(input)
                {
                    *gw += dv * a;
                }
            }
            if l > 0 {
                let p = &mut prev[..layer.inputs];
                p.fill(0.0);
                for (o, &dv) in d.iter().enumerate() {
                    for (pv, w) in p
                        .iter_mut()
                        .zip(&layer.weights[o * layer.inputs..(o + 1) * layer.inputs])
                    {
                        *pv += w * dv;
                    }
                }
                for (pv, &a) in p.iter_mut().zip(input) {
                    *pv *= self.activation.derivative_at_output(a);
                }
                std::mem::swap(delta, prev);
            }
        }
        loss
    }

    /// Sum of losses and gradients over one chunk of rows, in row order.
    fn chunk_gradient(&self, x: &Design, labels: Labels, rows: &[usize]) -> (f64, Vec<DenseLayer>) {
        let mut ws = Workspace::new(self);
        let mut grad = self.zeros_like();
        let mut loss = 0.0;
        for &r in rows {
            loss += self.backprop_row(x, labels, r, &mut ws, &mut grad);
        }
        (loss, grad)
    }

    /// Mean loss plus penalty over `rows`, and its gradient.
    fn gradient(
        &self,
        x: &Design,
        labels: Labels,
        rows: &[usize],
        l2: f64,
    ) -> (f64, Vec<DenseLayer>) {
        let (mut loss, mut grad) = if rows.len() <= GRAD_CHUNK_ROWS {
            self.chunk_gradient(x, labels, rows)
        } else {
            let parts: Vec<(f64, Vec<DenseLayer>)> = rows
                .par_chunks(GRAD_CHUNK_ROWS)
                .map(|chunk| self.chunk_gradient(x, labels, chunk))
                .collect();
            let mut parts = parts.into_iter();
            let (mut loss, mut grad) = parts.next().expect("at least one chunk");
            for (part_loss, part_grad) in parts {
                loss += part_loss;
                for (g, p) in grad.iter_mut().zip(&part_grad) {
                    g.add(p);
                }
            }
            (loss, grad)
        };
        let scale = if rows.is_empty() {
            0.0
        } else {
            1.0 / rows.len() as f64
        };
        loss *= scale;
        for (g, layer) in grad.iter_mut().zip(&self.layers) {
            for (gw, w) in g.weights.iter_mut().zip(&layer.weights) {
                *gw = *gw * scale + l2 * w;
            }
            for gb in &mut g.bias {
                *gb *= scale;
            }
        }
        (loss + self.penalty(l2), grad)
    }

    /// Mean loss plus penalty over all rows of `x` (forward passes only).
    fn mean_loss(&self, x: &Design, labels: Labels, l2: f64) -> f64 {
        let chunks = x.rows.div_ceil(LOSS_CHUNK_ROWS);
        let parts: Vec<f64> = (0..chunks)
            .into_par_iter()
            .map(|c| {
                let mut ws = Workspace::new(self);
                let mut delta = vec![0.0; self.outputs()];
                let mut sum = 0.0;
                for r in c * LOSS_CHUNK_ROWS..((c + 1) * LOSS_CHUNK_ROWS).min(x.rows) {
                    gather_row(x, r, &mut ws.acts[0]);
                    self.forward_logits(&mut ws);
                    sum += row_loss(labels, r, ws.logits(), &mut delta);
                }
                sum
            })
            .collect();
        let total: f64 = parts.iter().sum();
        total / x.rows as f64 + self.penalty(l2)
    }
}

/// Adam optimizer state: first and second moments shaped like the layers
/// (the bias corrections come from [`run_epochs`]).
struct Adam {
    m: Vec<DenseLayer>,
    v: Vec<DenseLayer>,
}

impl Adam {
    fn new(model: &Mlp) -> Self {
        Adam {
            m: model.zeros_like(),
            v: model.zeros_like(),
        }
    }

    fn step(&mut self, model: &mut Mlp, grad: &[DenseLayer], lr: f64, c1: f64, c2: f64) {
        for (((layer, g), m), v) in model
            .layers
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            adam_update(
                &mut layer.weights,
                &g.weights,
                &mut m.weights,
                &mut v.weights,
                lr,
                c1,
                c2,
            );
            adam_update(
                &mut layer.bias,
                &g.bias,
                &mut m.bias,
                &mut v.bias,
                lr,
                c1,
                c2,
            );
        }
    }
}

fn adam_update(
    params: &mut [f64],
    grads: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    lr: f64,
    c1: f64,
    c2: f64,
) {
    for (((p, &g), m), v) in params
        .iter_mut()
        .zip(grads)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        *m = BETA1 * *m + (1.0 - BETA1) * g;
        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
        *p -= lr * (*m / c1) / ((*v / c2).sqrt() + ADAM_EPS);
    }
}

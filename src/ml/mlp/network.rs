//! The network's forward and backward passes on the host, in f64.

use rayon::prelude::*;

use crate::data::Rng;
use crate::ir::math::{logistic_loss, sigmoid, softmax};
use crate::ml::design::Design;

use super::{Activation, DenseLayer, Head, Labels, Mlp, MlpTarget};

/// Rows per gradient chunk. Fixed (not derived from the thread count) so the
/// reduction order, and hence the result, never depends on the thread pool.
pub(super) const GRAD_CHUNK_ROWS: usize = 64;
/// Rows per chunk when evaluating the loss over the whole training set.
pub(super) const LOSS_CHUNK_ROWS: usize = 1024;
/// Rows per parallel block in [`Mlp::predict`].
pub(super) const PREDICT_BLOCK_ROWS: usize = 256;

/// Per-thread buffers for one row's forward and backward pass.
pub(super) struct RowBuffers {
    /// `acts[0]` is the input row, `acts[l + 1]` the output of layer `l`
    /// (activated for hidden layers, raw logits for the last layer).
    acts: Vec<Vec<f64>>,
    /// Loss gradient with respect to the current layer's pre-activations.
    delta: Vec<f64>,
    /// Scratch for the previous layer's delta.
    prev: Vec<f64>,
}

impl RowBuffers {
    pub(super) fn new(mlp: &Mlp) -> Self {
        let widths: Vec<usize> = std::iter::once(mlp.inputs())
            .chain(mlp.layers.iter().map(|l| l.outputs))
            .collect();
        let widest = widths.iter().copied().max().unwrap_or(0);
        RowBuffers {
            acts: widths.iter().map(|&w| vec![0.0; w]).collect(),
            delta: vec![0.0; widest],
            prev: vec![0.0; widest],
        }
    }

    pub(super) fn logits(&self) -> &[f64] {
        self.acts.last().expect("a network has at least one layer")
    }
}

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Copy row `r` of the column-major design into `dst`.
pub(super) fn gather_row(x: &Design, r: usize, dst: &mut [f64]) {
    for (j, v) in dst.iter_mut().enumerate() {
        *v = x.x[j * x.rows + r];
    }
}

/// Loss of one row given its logits; writes `d loss / d logits` into `delta`.
pub(super) fn row_loss(labels: Labels, r: usize, logits: &[f64], delta: &mut [f64]) -> f64 {
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
            let lse = softmax(logits, delta);
            let c = index[r] as usize;
            delta[c] -= 1.0;
            lse - logits[c]
        }
    }
}

impl Mlp {
    /// Seeded initialization (see the module docs).
    pub(super) fn init(
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
        let mut ws = RowBuffers::new(self);
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
                let mut ws = RowBuffers::new(self);
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
    pub(super) fn labels<'a>(&self, y: &MlpTarget<'a>) -> Labels<'a> {
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
    pub(super) fn zeros_like(&self) -> Vec<DenseLayer> {
        self.layers
            .iter()
            .map(|l| DenseLayer::zeros(l.inputs, l.outputs))
            .collect()
    }

    /// `(l2 / 2) * sum w^2` over all weights (no biases).
    pub(super) fn penalty(&self, l2: f64) -> f64 {
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
    pub(super) fn forward_logits(&self, ws: &mut RowBuffers) {
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
    pub(super) fn backprop_row(
        &self,
        x: &Design,
        labels: Labels,
        r: usize,
        ws: &mut RowBuffers,
        grad: &mut [DenseLayer],
    ) -> f64 {
        gather_row(x, r, &mut ws.acts[0]);
        self.forward_logits(ws);
        let RowBuffers { acts, delta, prev } = ws;
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
                    *pv = self.activation.backward(*pv, a);
                }
                std::mem::swap(delta, prev);
            }
        }
        loss
    }

    /// Sum of losses and gradients over one chunk of rows, in row order.
    pub(super) fn chunk_gradient(
        &self,
        x: &Design,
        labels: Labels,
        rows: &[usize],
    ) -> (f64, Vec<DenseLayer>) {
        let mut ws = RowBuffers::new(self);
        let mut grad = self.zeros_like();
        let mut loss = 0.0;
        for &r in rows {
            loss += self.backprop_row(x, labels, r, &mut ws, &mut grad);
        }
        (loss, grad)
    }

    /// Mean loss plus penalty over `rows`, and its gradient.
    pub(super) fn gradient(
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
    pub(super) fn mean_loss(&self, x: &Design, labels: Labels, l2: f64) -> f64 {
        let chunks = x.rows.div_ceil(LOSS_CHUNK_ROWS);
        let parts: Vec<f64> = (0..chunks)
            .into_par_iter()
            .map(|c| {
                let mut ws = RowBuffers::new(self);
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

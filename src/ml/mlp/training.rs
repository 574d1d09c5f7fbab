//! The epoch loop every device shares, and the host trainer with Adam.

use crate::backend::train::{Adam, AdamRate};
use crate::data::Rng;
use crate::error::{Error, Result};
use crate::ml::design::Design;

use super::validate::{validate_config, validate_data};
use super::{DenseLayer, Labels, Mlp, MlpConfig, MlpTarget, TrainReport};

/// Train a network on `x` and `y`.
///
/// `step` names the pipeline step in errors. The head follows the target: see
/// [`MlpTarget`]. The returned report holds the training loss (as defined in
/// the [module docs](crate::ml::mlp)) after every epoch.
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
        adam: Moments::new(&model),
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
            beta1_t *= Adam::F64.beta1;
            beta2_t *= Adam::F64.beta2;
            net.step(batch, 1.0 - beta1_t, 1.0 - beta2_t)?;
        }
        let loss = net.loss()?;
        if !loss.is_finite() {
            return Err(Error::execution(
                step,
                format!(
                    "the network diverged in epoch {} (training loss is {loss}); lower learning_rate (now {}) or scale the features",
                    epoch + 1,
                    config.learning_rate
                ),
            ));
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
pub(super) struct HostTrainer<'a> {
    model: Mlp,
    adam: Moments,
    x: &'a Design,
    labels: Labels<'a>,
    config: &'a MlpConfig,
}

impl Minibatches for HostTrainer<'_> {
    fn step(&mut self, batch: &[usize], c1: f64, c2: f64) -> Result<()> {
        let (_, grad) = self
            .model
            .gradient(self.x, self.labels, batch, self.config.l2);
        self.adam.step(
            &mut self.model,
            &grad,
            AdamRate {
                learning_rate: self.config.learning_rate,
                c1,
                c2,
            },
        );
        Ok(())
    }

    fn loss(&mut self) -> Result<f64> {
        Ok(self.model.mean_loss(self.x, self.labels, self.config.l2))
    }
}

/// In-place Fisher-Yates shuffle driven by `rng`.
pub(super) fn shuffle(order: &mut [usize], rng: &mut Rng) {
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

/// Adam optimizer state: first and second moments shaped like the layers
/// (the bias corrections come from [`run_epochs`]).
pub(super) struct Moments {
    m: Vec<DenseLayer>,
    v: Vec<DenseLayer>,
}

impl Moments {
    pub(super) fn new(model: &Mlp) -> Self {
        Moments {
            m: model.zeros_like(),
            v: model.zeros_like(),
        }
    }

    /// One Adam step of every weight and bias of `model` along `grad`.
    pub(super) fn step(&mut self, model: &mut Mlp, grad: &[DenseLayer], rate: AdamRate) {
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
                rate,
            );
            adam_update(&mut layer.bias, &g.bias, &mut m.bias, &mut v.bias, rate);
        }
    }
}

/// One Adam step of `params` along `grads`, with their moments `m` and `v`.
fn adam_update(params: &mut [f64], grads: &[f64], m: &mut [f64], v: &mut [f64], rate: AdamRate) {
    for (((p, &g), m), v) in params
        .iter_mut()
        .zip(grads)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        [*p, *m, *v] = Adam::F64.update(rate, *p, g, *m, *v);
    }
}

//! The `train_logistic` step.

use std::any::Any;

use arrow_schema::SchemaRef;

use super::params::names;
use super::training::{design, label_and_features, train_placed, trained, training_step_io};
use crate::data::Table;
use crate::error::{Error, Result};
use crate::ml::design::{Classes, Design, class_target};
use crate::ml::logistic::{self, LogisticConfig, LogisticFit};
use crate::ml::mlp::{Activation, DenseLayer, Head, Mlp};
use crate::ml::model::Model;
use crate::ml::on_device;
use crate::pipeline::step::{Step, StepContext, TrainsTogether};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Logistic regression, binary or multinomial, with L2 (`kind = "train_logistic"`).
#[derive(Debug, Clone)]
pub struct TrainLogistic {
    features: Vec<String>,
    label: String,
    config: LogisticConfig,
}

impl TrainLogistic {
    /// Predict class `label` from `features` (all numeric columns but the label when empty).
    pub fn new<S: Into<String>>(
        features: impl IntoIterator<Item = S>,
        label: impl Into<String>,
        config: LogisticConfig,
    ) -> Self {
        TrainLogistic {
            features: names(features),
            label: label.into(),
            config,
        }
    }
}

impl Step for TrainLogistic {
    training_step_io!("train_logistic");
    fn uses_device(&self) -> bool {
        true
    }
    fn params(&self) -> String {
        format!(
            "label={}, features=[{}], l2={}, tolerance={}, max_iterations={}",
            self.label,
            self.features.join(", "),
            self.config.l2,
            self.config.tolerance,
            self.config.max_iterations
        )
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let data = &inputs[0];
        let (features, x) = design(ctx.name, data, &self.features, &self.label)?;
        let classes = class_target(ctx.name, data, &self.label)?;
        self.trained(ctx, data, (&features, &x), &classes, None)
    }
    fn trains_together(&self) -> Option<&dyn TrainsTogether> {
        Some(self)
    }
}

impl TrainsTogether for TrainLogistic {
    fn family(&self) -> String {
        format!(
            "label={}, features=[{}]",
            self.label,
            self.features.join(", ")
        )
    }

    /// One design matrix for all; on the CPU every Newton evaluation of
    /// all the steps in one pass over it ([`logistic::fit_siblings`]), on
    /// a GPU each fit in turn.
    fn run_together(
        &self,
        steps: &[(StepContext<'_>, &dyn TrainsTogether)],
        inputs: &[Table],
    ) -> Vec<Result<Vec<Table>>> {
        let alone = || {
            (steps.iter())
                .map(|&(ctx, step)| sibling(ctx.name, step)?.run(ctx, inputs))
                .collect()
        };
        let (Some(&(lead, _)), data) = (steps.first(), &inputs[0]) else {
            return Vec::new();
        };
        // Each step names its own error when one of these fails.
        let members = steps.iter().map(|&(ctx, step)| sibling(ctx.name, step));
        let Ok(members) = members.collect::<Result<Vec<_>>>() else {
            return alone();
        };
        let Ok((features, x)) = design(lead.name, data, &self.features, &self.label) else {
            return alone();
        };
        let Ok(classes) = class_target(lead.name, data, &self.label) else {
            return alone();
        };
        let fits: Vec<Option<Result<LogisticFit>>> = match lead.device.is_cpu() {
            true => {
                let configs: Vec<(&str, LogisticConfig)> = (steps.iter().zip(&members))
                    .map(|(&(ctx, _), member)| (ctx.name, member.config.clone()))
                    .collect();
                let n = classes.names.len();
                let fits = logistic::fit_siblings(&x, &classes.index, n, &configs);
                fits.into_iter().map(Some).collect()
            }
            false => steps.iter().map(|_| None).collect(),
        };
        (steps.iter().zip(members).zip(fits))
            .map(|((&(ctx, _), member), fit)| {
                member.trained(ctx, data, (&features, &x), &classes, fit)
            })
            .collect()
    }
}

/// A step of the family as the logistic step it is.
fn sibling<'s>(name: &str, step: &'s dyn TrainsTogether) -> Result<&'s TrainLogistic> {
    let any: &dyn Any = step;
    any.downcast_ref().ok_or_else(|| {
        Error::Internal(format!(
            "step '{name}' is not a logistic regression, to train with one"
        ))
    })
}

impl TrainLogistic {
    /// Train on the device the step is placed on, else on the CPU (where
    /// `cpu_fit`, a fit made with its siblings, stands in), and describe the
    /// model trained on `features` (`x`) of `data`.
    fn trained(
        &self,
        ctx: StepContext,
        data: &Table,
        (features, x): (&[String], &Design),
        classes: &Classes,
        cpu_fit: Option<Result<LogisticFit>>,
    ) -> Result<Vec<Table>> {
        let mut placed = Vec::new();
        let (y, n, config) = (&classes.index, classes.names.len(), &self.config);
        let fit = train_placed(
            ctx,
            &mut placed,
            |backend| on_device::fit_logistic(ctx.name, backend, x, y, n, config),
            || cpu_fit.unwrap_or_else(|| logistic::fit(ctx.name, x, y, n, config)),
        )?;
        let names = classes.names.clone();
        self.model(data, features, names, &fit, placed, x.rows)
    }

    /// The model table of `fit`, trained on `features` of `data`.
    fn model(
        &self,
        data: &Table,
        features: &[String],
        classes: Vec<String>,
        fit: &LogisticFit,
        placed: Vec<(&'static str, String)>,
        rows: usize,
    ) -> Result<Vec<Table>> {
        let outputs = fit.outputs();
        let layer = DenseLayer {
            inputs: features.len(),
            outputs,
            weights: fit.weights.clone(),
            bias: fit.intercepts.clone(),
        };
        let head = if outputs == 1 {
            Head::Sigmoid
        } else {
            Head::Softmax
        };
        let network = Mlp {
            layers: vec![layer],
            activation: Activation::Relu,
            head,
        };
        let mut model = Model::describe(
            "logistic_regression",
            data.schema(),
            features,
            &self.label,
            classes,
            network,
        )?;
        let params = &mut model.info.params;
        params.insert("l2".into(), self.config.l2.to_string());
        params.insert("tolerance".into(), self.config.tolerance.to_string());
        params.extend(placed.into_iter().map(|(k, v)| (k.into(), v)));
        let training = &mut model.info.training;
        training.insert("iterations".into(), fit.iterations as f64);
        training.insert("log_loss".into(), fit.log_loss);
        training.insert("gradient_norm".into(), fit.gradient_norm);
        training.insert("converged".into(), f64::from(u8::from(fit.converged)));
        training.insert("tolerance_used".into(), fit.tolerance);
        trained(model, rows)
    }
}

impl FromSpec for TrainLogistic {
    /// `label`; `features`; `l2`, `tolerance`, `max_iterations` (defaults
    /// from [`LogisticConfig::default`]).
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let (label, features) = label_and_features(spec)?;
        let defaults = LogisticConfig::default();
        let config = LogisticConfig {
            l2: spec.number("l2", Some(defaults.l2))?,
            tolerance: spec.number("tolerance", Some(defaults.tolerance))?,
            max_iterations: spec.count("max_iterations", defaults.max_iterations)?,
        };
        Ok(TrainLogistic::new(features, label, config))
    }
}

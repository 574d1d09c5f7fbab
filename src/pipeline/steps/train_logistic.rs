//! The `train_logistic` step.

use arrow_schema::SchemaRef;

use super::params::names;
use super::training::{design, label_and_features, train_placed, trained, training_step_io};
use crate::data::Table;
use crate::error::Result;
use crate::ml::design::class_target;
use crate::ml::logistic::{self, LogisticConfig};
use crate::ml::mlp::{Activation, DenseLayer, Head, Mlp};
use crate::ml::model::Model;
use crate::ml::on_device;
use crate::pipeline::step::{Step, StepContext};
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
        let mut placed = Vec::new();
        let (n, config) = (classes.names.len(), &self.config);
        let fit = train_placed(
            ctx,
            &mut placed,
            |backend| on_device::fit_logistic(ctx.name, backend, &x, &classes.index, n, config),
            || logistic::fit(ctx.name, &x, &classes.index, n, config),
        )?;
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
            &features,
            &self.label,
            classes.names,
            network,
        )?;
        model
            .info
            .params
            .insert("l2".into(), self.config.l2.to_string());
        model
            .info
            .params
            .insert("tolerance".into(), self.config.tolerance.to_string());
        model
            .info
            .training
            .insert("iterations".into(), fit.iterations as f64);
        model.info.training.insert("log_loss".into(), fit.log_loss);
        model
            .info
            .training
            .insert("gradient_norm".into(), fit.gradient_norm);
        model
            .info
            .training
            .insert("converged".into(), f64::from(u8::from(fit.converged)));
        model
            .info
            .training
            .insert("tolerance_used".into(), fit.tolerance);
        for (k, v) in placed {
            model.info.params.insert(k.into(), v);
        }
        trained(model, x.rows)
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

//! The `train_linear` step.

use arrow_schema::SchemaRef;

use super::params::names;
use super::training::{design, label_and_features, trained, training_step_io};
use crate::data::Table;
use crate::error::Result;
use crate::ml::design::regression_target;
use crate::ml::linear;
use crate::ml::mlp::{Activation, DenseLayer, Head, Mlp};
use crate::ml::model::Model;
use crate::pipeline::step::{Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Least-squares linear regression with optional L2 (`kind = "train_linear"`).
#[derive(Debug, Clone)]
pub struct TrainLinear {
    features: Vec<String>,
    label: String,
    l2: f64,
}

impl TrainLinear {
    /// Predict `label` from `features` (all numeric columns but the label when empty).
    pub fn new<S: Into<String>>(
        features: impl IntoIterator<Item = S>,
        label: impl Into<String>,
        l2: f64,
    ) -> Self {
        TrainLinear {
            features: names(features),
            label: label.into(),
            l2,
        }
    }
}

impl Step for TrainLinear {
    training_step_io!("train_linear");
    fn params(&self) -> String {
        format!(
            "label={}, features=[{}], l2={}",
            self.label,
            self.features.join(", "),
            self.l2
        )
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let data = &inputs[0];
        let (features, x) = design(ctx.name, data, &self.features, &self.label)?;
        let y = regression_target(ctx.name, data, &self.label)?;
        let fit = linear::fit(ctx.name, &x, &y, self.l2)?;
        let layer = DenseLayer {
            inputs: features.len(),
            outputs: 1,
            weights: fit.weights,
            bias: vec![fit.intercept],
        };
        let network = Mlp {
            layers: vec![layer],
            activation: Activation::Relu,
            head: Head::Identity,
        };
        let mut model = Model::describe(
            "linear_regression",
            data.schema(),
            &features,
            &self.label,
            Vec::new(),
            network,
        )?;
        model.info.params.insert("l2".into(), self.l2.to_string());
        model.info.training.insert("mse".into(), fit.mse);
        trained(model, x.rows)
    }
}

impl FromSpec for TrainLinear {
    /// `label`; `features`; `l2` (default 0).
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let (label, features) = label_and_features(spec)?;
        Ok(TrainLinear::new(
            features,
            label,
            spec.number("l2", Some(0.0))?,
        ))
    }
}

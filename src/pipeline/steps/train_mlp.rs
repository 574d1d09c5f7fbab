//! The `train_mlp` step.

use arrow_schema::SchemaRef;
use toml::Value;

use super::params::names;
use super::training::{design, label_and_features, train_placed, trained, training_step_io};
use crate::data::Table;
use crate::error::Result;
use crate::ml::design::{class_target, regression_target};
use crate::ml::mlp::{self, Activation, MlpConfig, MlpTarget};
use crate::ml::model::Model;
use crate::ml::on_device;
use crate::pipeline::step::{Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Whether an MLP predicts classes or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Class labels (bool, integer or utf8).
    Classification,
    /// A numeric target.
    Regression,
}

/// A multi-layer perceptron trained with minibatch Adam (`kind = "train_mlp"`).
#[derive(Debug, Clone)]
pub struct TrainMlp {
    features: Vec<String>,
    label: String,
    task: Task,
    config: MlpConfig,
}

impl TrainMlp {
    /// Predict `label` from `features` (all numeric columns but the label when empty).
    pub fn new<S: Into<String>>(
        features: impl IntoIterator<Item = S>,
        label: impl Into<String>,
        task: Task,
        config: MlpConfig,
    ) -> Self {
        TrainMlp {
            features: names(features),
            label: label.into(),
            task,
            config,
        }
    }
}

impl Step for TrainMlp {
    training_step_io!("train_mlp");
    fn uses_device(&self) -> bool {
        true
    }
    fn params(&self) -> String {
        let c = &self.config;
        format!(
            "label={}, task={:?}, hidden={:?}, activation={:?}, epochs={}, batch_size={}, learning_rate={}, l2={}, seed={}",
            self.label,
            self.task,
            c.hidden,
            c.activation,
            c.epochs,
            c.batch_size,
            c.learning_rate,
            c.l2,
            c.seed
        )
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let data = &inputs[0];
        let (features, x) = design(ctx.name, data, &self.features, &self.label)?;
        let mut placed = Vec::new();
        let classes = match self.task {
            Task::Regression => None,
            Task::Classification => Some(class_target(ctx.name, data, &self.label)?),
        };
        let values = match self.task {
            Task::Regression => regression_target(ctx.name, data, &self.label)?,
            Task::Classification => Vec::new(),
        };
        let target = match &classes {
            None => MlpTarget::Regression(&values),
            Some(c) => MlpTarget::Classes {
                index: &c.index,
                classes: c.names.len(),
            },
        };
        let (network, report) = train_placed(
            ctx,
            &mut placed,
            |backend| on_device::train_mlp(ctx.name, backend, &x, &target, &self.config),
            || mlp::train(ctx.name, &x, &target, &self.config),
        )?;
        let classes = classes.map(|c| c.names).unwrap_or_default();
        let mut model = Model::describe(
            "mlp",
            data.schema(),
            &features,
            &self.label,
            classes,
            network,
        )?;
        let c = &self.config;
        for (k, v) in [
            ("hidden", format!("{:?}", c.hidden)),
            ("epochs", c.epochs.to_string()),
            ("batch_size", c.batch_size.to_string()),
            ("learning_rate", c.learning_rate.to_string()),
            ("l2", c.l2.to_string()),
            ("seed", c.seed.to_string()),
        ]
        .into_iter()
        .chain(placed)
        {
            model.info.params.insert(k.into(), v);
        }
        model
            .info
            .training
            .insert("epochs".into(), report.epochs as f64);
        model.info.training.insert("loss".into(), report.loss);
        trained(model, x.rows)
    }
}

impl FromSpec for TrainMlp {
    /// `label`; `features`; `task`; `hidden`, `activation`, `epochs`,
    /// `batch_size`, `learning_rate`, `l2`, `seed` (defaults from
    /// [`MlpConfig::default`]).
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let (label, features) = label_and_features(spec)?;
        let task = spec.choice(
            "task",
            Some("classification"),
            |t| match t {
                "classification" => Some(Task::Classification),
                "regression" => Some(Task::Regression),
                _ => None,
            },
            "classification or regression",
        )?;
        let d = MlpConfig::default();
        let hidden = hidden_widths(spec)?.unwrap_or_else(|| d.hidden.clone());
        let activation = spec.choice(
            "activation",
            Some("relu"),
            |a| match a {
                "relu" => Some(Activation::Relu),
                "tanh" => Some(Activation::Tanh),
                _ => None,
            },
            "relu or tanh",
        )?;
        let config = MlpConfig {
            hidden,
            activation,
            epochs: spec.count("epochs", d.epochs)?,
            batch_size: spec.count("batch_size", d.batch_size)?,
            learning_rate: spec.number("learning_rate", Some(d.learning_rate))?,
            l2: spec.number("l2", Some(d.l2))?,
            seed: spec.integer("seed", d.seed as i64)? as u64,
        };
        Ok(TrainMlp::new(features, label, task, config))
    }
}

/// The `hidden` layer widths, if given: a list of positive integers.
fn hidden_widths(spec: &mut StepSpec) -> Result<Option<Vec<usize>>> {
    let wrong =
        |spec: &StepSpec, got: &Value| spec.wrong("hidden", "a list of positive integers", got);
    match spec.take("hidden") {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::Integer(i) if i > 0 => Ok(i as usize),
                other => Err(wrong(spec, &other)),
            })
            .collect::<Result<_>>()
            .map(Some),
        Some(other) => Err(wrong(spec, &other)),
    }
}

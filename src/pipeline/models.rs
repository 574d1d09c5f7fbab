//! Training and scoring steps.
//!
//! A training step takes a prepared table and outputs the model as a one-batch
//! Arrow table ([`Model::to_batch`]); the model keeps the lineage of its
//! feature columns, so [`Score`] applies the training-time preparation to raw
//! data by itself.

use std::sync::Arc;

use arrow_schema::SchemaRef;

use super::step::{Step, StepContext};
use crate::data::{Table, column_index};
use crate::error::{Error, Result};
use crate::ir::DType;
use crate::ml::design::{Design, class_target, regression_target};
use crate::ml::logistic::LogisticConfig;
use crate::ml::mlp::{Activation, DenseLayer, Head, Mlp, MlpConfig, MlpTarget};
use crate::ml::model::Model;
use crate::ml::score::Scorer;
use crate::ml::{linear, logistic, mlp, on_device};
use crate::pipeline::OpKind;

/// Which columns a training step uses as features.
fn feature_columns(
    step: &str,
    schema: &arrow_schema::Schema,
    features: &[String],
    label: &str,
) -> Result<Vec<String>> {
    column_index(step, schema, label)?;
    if !features.is_empty() {
        for f in features {
            column_index(step, schema, f)?;
        }
        return Ok(features.to_vec());
    }
    // No list: every numeric or boolean column except the label.
    Ok(schema
        .fields()
        .iter()
        .filter(|f| {
            f.name() != label
                && DType::from_arrow(f.data_type())
                    .is_some_and(|d| d.is_numeric() || d == DType::Bool)
        })
        .map(|f| f.name().clone())
        .collect())
}

/// The planned schema of a model output (the description is added to its
/// metadata when trained).
fn model_schema() -> SchemaRef {
    Arc::new(arrow_schema::Schema::new(crate::ml::model::layer_fields()))
}

/// Train with `on_device` (f32 passes through the backend verbs) when the
/// step's device is a GPU, else with `on_host` (f64, exactly as without a
/// device). A device failure (compile, launch, memory, a missing kernel)
/// trains on the host instead, with a note. Records in `params` where and
/// at what precision the model was trained.
fn train_placed<T>(
    ctx: StepContext,
    params: &mut Vec<(&'static str, String)>,
    on_device: impl FnOnce(&dyn crate::backend::Backend) -> Result<T>,
    on_host: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let host = |params: &mut Vec<(&'static str, String)>| {
        params.push(("device", "cpu".into()));
        params.push(("precision", "f64".into()));
    };
    if ctx.device.is_cpu() {
        host(params);
        return on_host();
    }
    match on_device(ctx.device.backend()) {
        Ok(trained) => {
            ctx.notes.add(format!(
                "trained on {} in f32 (device passes, f64 sums on the host)",
                ctx.device
            ));
            params.push(("device", ctx.device.to_string()));
            params.push(("precision", "f32".into()));
            Ok(trained)
        }
        Err(Error::Device {
            failure, message, ..
        }) => {
            ctx.notes.add(format!(
                "trained on the CPU after {} failed ({}: {message})",
                ctx.device.info().kind,
                failure.reason()
            ));
            host(params);
            on_host()
        }
        Err(other) => Err(other),
    }
}

fn model_table(model: &Model) -> Result<Table> {
    Ok(Table::from_batch(model.to_batch()?))
}

macro_rules! training_step_io {
    ($kind:literal) => {
        fn op_kind(&self) -> OpKind {
            OpKind::Train
        }
        fn kind(&self) -> &str {
            $kind
        }
        fn inputs(&self) -> &[&str] {
            &["data"]
        }
        fn outputs(&self) -> &[&str] {
            &["model"]
        }
        fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
            feature_columns(ctx.name, &inputs[0], &self.features, &self.label)?;
            Ok(vec![model_schema()])
        }
    };
}

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
            features: features.into_iter().map(Into::into).collect(),
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
        let features = feature_columns(ctx.name, data.schema(), &self.features, &self.label)?;
        let x = Design::from_table(ctx.name, data, &features)?;
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
        model.info.training.insert("rows".into(), x.rows as f64);
        Ok(vec![model_table(&model)?])
    }
}

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
            features: features.into_iter().map(Into::into).collect(),
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
        let features = feature_columns(ctx.name, data.schema(), &self.features, &self.label)?;
        let x = Design::from_table(ctx.name, data, &features)?;
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
        model.info.training.insert("rows".into(), x.rows as f64);
        for (k, v) in placed {
            model.info.params.insert(k.into(), v);
        }
        Ok(vec![model_table(&model)?])
    }
}

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
            features: features.into_iter().map(Into::into).collect(),
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
        let features = feature_columns(ctx.name, data.schema(), &self.features, &self.label)?;
        let x = Design::from_table(ctx.name, data, &features)?;
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
        model.info.training.insert("rows".into(), x.rows as f64);
        Ok(vec![model_table(&model)?])
    }
}

/// Apply a trained model to raw data (`kind = "score"`): inputs `model` and
/// `data`, output the `keep` columns followed by the score columns.
#[derive(Debug, Clone)]
pub struct Score {
    keep: Vec<String>,
}

impl Score {
    /// Score, passing the `keep` columns (e.g. ids, the label) through.
    pub fn new<S: Into<String>>(keep: impl IntoIterator<Item = S>) -> Self {
        Score {
            keep: keep.into_iter().map(Into::into).collect(),
        }
    }
}

/// The model held in a model table.
pub fn model_from_table(step: &str, table: &Table) -> Result<Model> {
    let batch = table
        .batches()
        .first()
        .ok_or_else(|| Error::InvalidParameter {
            step: step.into(),
            message: "the model input is empty".into(),
        })?;
    Model::from_batch(batch).map_err(|e| e.in_step(step))
}

impl Step for Score {
    fn op_kind(&self) -> OpKind {
        OpKind::Model
    }
    fn kind(&self) -> &str {
        "score"
    }
    fn inputs(&self) -> &[&str] {
        &["model", "data"]
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        format!("keep=[{}]", self.keep.join(", "))
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        for k in &self.keep {
            column_index(ctx.name, &inputs[1], k)?;
        }
        // The score columns depend on the trained model (its classes).
        Ok(vec![Arc::clone(&inputs[1])])
    }
    fn schema_depends_on_data(&self) -> bool {
        true
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let model = model_from_table(ctx.name, &inputs[0])?;
        let scorer =
            Scorer::on_device(ctx.name, model, inputs[1].schema(), &self.keep, ctx.device)?;
        let batches = inputs[1]
            .batches()
            .iter()
            .map(|b| scorer.score(b))
            .collect::<Result<Vec<_>>>()?;
        scorer
            .take_notes()
            .into_iter()
            .for_each(|n| ctx.notes.add(n));
        Ok(vec![Table::try_new(
            Arc::clone(scorer.output_schema()),
            batches,
        )?])
    }
}

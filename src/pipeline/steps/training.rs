//! What the training steps share: their features, the model table they
//! output, and training on the step's device with a fallback to the host.
//!
//! A training step takes a prepared table and outputs the model as a one-batch
//! Arrow table ([`Model::to_batch`]); the model keeps the lineage of its
//! feature columns, so [`Score`](super::Score) applies the training-time
//! preparation to raw data by itself.

use std::sync::Arc;

use arrow_schema::SchemaRef;

use crate::backend::Backend;
use crate::data::{Table, column_index};
use crate::error::{DeviceFailure, Result};
use crate::ir::DType;
use crate::ml::design::Design;
use crate::ml::model::Model;
use crate::pipeline::step::StepContext;
use crate::pipeline::step_spec::StepSpec;

/// Which columns a training step uses as features.
pub(crate) fn feature_columns(
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

/// The feature columns a training step uses on `data` (see
/// [`feature_columns`]) and their design matrix.
pub(crate) fn design(
    step: &str,
    data: &Table,
    features: &[String],
    label: &str,
) -> Result<(Vec<String>, Design)> {
    let features = feature_columns(step, data.schema(), features, label)?;
    let x = Design::from_table(step, data, &features)?;
    Ok((features, x))
}

/// The planned schema of a model output (the description is added to its
/// metadata when trained).
pub(crate) fn model_schema() -> SchemaRef {
    Arc::new(arrow_schema::Schema::new(crate::ml::model::layer_fields()))
}

/// Train with `on_device` (f32 passes through the backend verbs) when the
/// step's device is a GPU, else with `on_host` (f64, exactly as without a
/// device). A device failure (compile, launch, memory, a missing kernel)
/// trains on the host instead, with a note. Records in `params` where and
/// at what precision the model was trained.
pub(crate) fn train_placed<T>(
    ctx: StepContext,
    params: &mut Vec<(&'static str, String)>,
    on_device: impl FnOnce(&dyn Backend) -> Result<T>,
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
    let attempt = on_device(ctx.device.backend()).inspect(|_| {
        ctx.notes.add(format!(
            "trained on {} in f32 (device passes, f64 sums on the host)",
            ctx.device
        ));
        params.push(("device", ctx.device.to_string()));
        params.push(("precision", "f32".into()));
    });
    let failed = |failure: DeviceFailure, message: &str| {
        format!(
            "trained on the CPU after {} failed ({}: {message})",
            ctx.device.info().kind,
            failure.reason()
        )
    };
    ctx.notes.or_on_cpu(attempt, failed, || {
        host(params);
        on_host()
    })
}

/// A training step's output: the model table, with the number of rows it
/// was trained on recorded.
pub(crate) fn trained(mut model: Model, rows: usize) -> Result<Vec<Table>> {
    model.info.training.insert("rows".into(), rows as f64);
    Ok(vec![Table::from_batch(model.to_batch()?)])
}

/// The `label` and `features` keys every training step reads, in that order.
pub(crate) fn label_and_features(spec: &mut StepSpec) -> Result<(String, Vec<String>)> {
    let label = spec.string("label")?;
    Ok((label, spec.opt_strings("features")?))
}

/// The methods every training step shares: one `data` input, one `model`
/// output, and a schema check of its `features` and `label` fields.
macro_rules! training_step_io {
    ($kind:literal) => {
        $crate::pipeline::steps::ports::step_io!($kind, ["data"], ["model"]);
        fn op_kind(&self) -> $crate::pipeline::OpKind {
            $crate::pipeline::OpKind::Train
        }
        fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
            $crate::pipeline::steps::training::feature_columns(
                ctx.name,
                &inputs[0],
                &self.features,
                &self.label,
            )?;
            Ok(vec![$crate::pipeline::steps::training::model_schema()])
        }
    };
}

pub(crate) use training_step_io;

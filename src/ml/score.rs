//! Scoring: a model applied to raw record batches.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::design::Design;
use super::mlp::Head;
use super::model::Model;
use crate::backend::{Device, Kernel, Notes};
use crate::data::column_index;
use crate::error::{Error, Result};
use crate::ir::Projection;

/// Scored-schema metadata key: the model's class names, separated by [`CLASS_SEPARATOR`].
pub const CLASSES_KEY: &str = "fuseflow.classes";
/// Separator of class names in [`CLASSES_KEY`].
pub const CLASS_SEPARATOR: &str = "\u{1f}";
/// Scored-schema metadata key: the label column the model was trained on.
pub const LABEL_KEY: &str = "fuseflow.label";

/// A model bound to an input schema, ready to score batches of that schema.
///
/// Single-layer models (linear and logistic regression) run preparation and
/// model as one fused kernel; deeper networks run the preparation fused, then
/// the dense layers over the prepared block.
#[derive(Debug)]
pub struct Scorer {
    model: Model,
    kernel: Kernel,
    /// Fallbacks to the CPU while scoring.
    notes: Notes,
    fused: bool,
    keep: Vec<usize>,
    schema: SchemaRef,
}

impl Scorer {
    /// Bind `model` to batches of `input`, passing the `keep` columns through.
    ///
    /// # Errors
    /// [`Error::Schema`] naming `step` and the column when the input lacks a
    /// source column the model reads, has it with another dtype, or lacks a
    /// `keep` column.
    pub fn new(step: &str, model: Model, input: &SchemaRef, keep: &[String]) -> Result<Scorer> {
        Scorer::on_device(step, model, input, keep, &Device::cpu())
    }

    /// [`Scorer::new`] with the fused kernel compiled for `device` (falling
    /// back to the CPU per batch where the device cannot run it).
    ///
    /// # Errors
    /// As [`Scorer::new`].
    pub fn on_device(
        step: &str,
        model: Model,
        input: &SchemaRef,
        keep: &[String],
        device: &Device,
    ) -> Result<Scorer> {
        model.check_input(step, input)?;
        let keep: Vec<usize> = keep
            .iter()
            .map(|k| column_index(step, input, k))
            .collect::<Result<_>>()?;
        let (exprs, fused) = match model.fused_score_exprs()? {
            Some(exprs) => (exprs, true),
            None => (
                model
                    .feature_exprs()?
                    .into_iter()
                    .map(|(n, e)| (n, e.cast(crate::ir::DType::Float64)))
                    .collect(),
                false,
            ),
        };
        let projection = Projection::try_new(Arc::clone(input), &exprs).map_err(|e| match e {
            Error::Type { expr, message } => Error::Schema {
                step: step.into(),
                column: "<model features>".into(),
                message: format!("`{expr}`: {message}"),
            },
            other => other,
        })?;
        let mut fields: Vec<Field> = keep.iter().map(|&i| input.field(i).clone()).collect();
        for name in model.output_names() {
            let dtype = if name == "prediction" && model.network.head != Head::Identity {
                DataType::Utf8
            } else {
                DataType::Float64
            };
            fields.push(Field::new(name, dtype, true));
        }
        // Take the score columns' types from the fused projection itself.
        if fused {
            let computed = projection.output_schema();
            for f in fields.iter_mut().skip(keep.len()) {
                *f = computed.field_with_name(f.name())?.clone();
            }
        }
        // Evaluation reads the classes and label from here.
        let metadata = [
            (
                CLASSES_KEY.to_string(),
                model.info.classes.join(CLASS_SEPARATOR),
            ),
            (LABEL_KEY.to_string(), model.info.label.clone()),
        ]
        .into();
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        Ok(Scorer {
            model,
            kernel: device.kernel(projection),
            notes: Notes::default(),
            fused,
            keep,
            schema,
        })
    }

    /// Why batches were scored on the CPU rather than the chosen device, if any were.
    pub fn take_notes(&self) -> Vec<String> {
        self.notes.take()
    }

    /// The schema of scored batches: kept columns, then the score columns.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Score one batch.
    ///
    /// # Errors
    /// [`Error::Schema`] when the batch does not match the bound schema.
    pub fn score(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let computed = self.kernel.evaluate(batch, &self.notes)?;
        let mut columns: Vec<ArrayRef> = self
            .keep
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        if self.fused {
            columns.extend(computed.columns().iter().cloned());
        } else {
            columns.extend(self.forward(&computed));
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Dense layers over prepared features (deeper networks). Rows with a null
    /// feature score null.
    fn forward(&self, prepared: &RecordBatch) -> Vec<ArrayRef> {
        let rows = prepared.num_rows();
        let mut x = Vec::with_capacity(rows * prepared.num_columns());
        let mut valid = vec![true; rows];
        for column in prepared.columns() {
            let values = column
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("features are cast to f64");
            for (i, v) in values.iter().enumerate() {
                valid[i] &= v.is_some();
                x.push(v.unwrap_or(0.0));
            }
        }
        let design = Design {
            rows,
            features: self
                .model
                .info
                .features
                .iter()
                .map(|f| f.name.clone())
                .collect(),
            x,
        };
        let out = self.model.network.predict(&design);
        let width = self.model.network.layers.last().map_or(1, |l| l.outputs);
        let column = |k: usize| -> ArrayRef {
            Arc::new(
                (0..rows)
                    .map(|i| valid[i].then(|| out[i * width + k]))
                    .collect::<Float64Array>(),
            )
        };
        let classes = &self.model.info.classes;
        match self.model.network.head {
            Head::Identity => vec![column(0)],
            Head::Sigmoid => {
                let prediction: StringArray = (0..rows)
                    .map(|i| valid[i].then(|| classes[usize::from(out[i] >= 0.5)].clone()))
                    .collect();
                vec![column(0), Arc::new(prediction)]
            }
            Head::Softmax => {
                let mut cols: Vec<ArrayRef> = (0..width).map(column).collect();
                let prediction: StringArray = (0..rows)
                    .map(|i| {
                        let row = &out[i * width..(i + 1) * width];
                        let best = (0..width).fold(0, |b, k| if row[k] > row[b] { k } else { b });
                        valid[i].then(|| classes[best].clone())
                    })
                    .collect();
                cols.push(Arc::new(prediction));
                cols
            }
        }
    }
}

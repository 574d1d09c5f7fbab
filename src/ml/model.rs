//! A trained model as Arrow data, and how it scores new rows.
//!
//! Every model is a stack of dense layers ([`Mlp`]): linear regression is one
//! layer with an identity head, logistic regression one layer with a sigmoid
//! or softmax head. Beside the weights, a model keeps each feature's lineage:
//! the expression that computes it from raw source columns (the fitted
//! preparation: fill values, scaling, encodings). Scoring therefore needs only
//! raw data; for single-layer models the preparation and the model run as one
//! fused expression per chunk.
//!
//! # Arrow form
//! One record batch, one row per layer: `layer` (i32), `inputs`, `outputs`
//! (i64), `weights` (list of f64, row-major `outputs x inputs`), `bias` (list of
//! f64). Everything else (kind, features and their expressions, source columns
//! and dtypes, classes, hyper-parameters, training summary) is TOML text in the
//! schema metadata under `fuseflow.model`. Saved as an Arrow IPC file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, ListBuilder};
use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch, cast::AsArray, types};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use super::mlp::{Activation, DenseLayer, Head, Mlp};
use crate::data::Table;
use crate::data::files::MappedIpcFile;
use crate::error::{Error, Result};
use crate::ir::{DType, Expr, if_else, lit, parse_expr};

/// Schema metadata key of the model description.
pub const MODEL_KEY: &str = "fuseflow.model";

/// Schema metadata key of the BLAKE3 checksum of a model's description and
/// layers, which loading verifies (files saved before it was added load
/// without one).
pub const CHECKSUM_KEY: &str = "fuseflow.model.blake3";
/// Version of the model file layout.
pub const FORMAT_VERSION: u32 = 1;

/// A trained model.
#[derive(Clone, Debug)]
pub struct Model {
    /// Description: kind, features, sources, classes, parameters.
    pub info: ModelInfo,
    /// The network.
    pub network: Mlp,
}

/// Everything about a model except its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// `linear_regression`, `logistic_regression` or `mlp`.
    pub kind: String,
    /// The label column it was trained to predict.
    pub label: String,
    /// Features in input order, each with its expression over source columns.
    pub features: Vec<Feature>,
    /// Source columns the feature expressions read, with their dtypes.
    pub sources: Vec<Source>,
    /// Class names for classifiers (empty for regression).
    pub classes: Vec<String>,
    /// Hidden-layer activation (`relu` or `tanh`).
    pub activation: String,
    /// Output head (`identity`, `sigmoid` or `softmax`).
    pub head: String,
    /// Hyper-parameters as given.
    pub params: BTreeMap<String, String>,
    /// Training summary (iterations, loss, ...).
    pub training: BTreeMap<String, f64>,
}

/// A model input feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// The feature's column name at training time.
    pub name: String,
    /// Its expression over source columns (text).
    pub expr: String,
}

/// A raw column the model reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Column name.
    pub name: String,
    /// Its dtype at training time.
    pub dtype: String,
}

/// The columns of a model's Arrow form, one row per dense layer.
pub fn layer_fields() -> Vec<Field> {
    let list = DataType::List(Arc::new(Field::new("item", DataType::Float64, true)));
    vec![
        Field::new("layer", DataType::Int32, false),
        Field::new("inputs", DataType::Int64, false),
        Field::new("outputs", DataType::Int64, false),
        Field::new("weights", list.clone(), false),
        Field::new("bias", list, false),
    ]
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
    }
}

fn head_name(h: Head) -> &'static str {
    match h {
        Head::Identity => "identity",
        Head::Sigmoid => "sigmoid",
        Head::Softmax => "softmax",
    }
}

/// The dense layers stored in a model's batch, each checked against its
/// shape and the one before it.
fn layers_of(batch: &RecordBatch) -> Result<Vec<DenseLayer>> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| corrupt(format!("no '{name}' column")))
    };
    let int64 = |name: &str| -> Result<Vec<usize>> {
        let c = column(name)?;
        let a = c
            .as_primitive_opt::<types::Int64Type>()
            .ok_or_else(|| corrupt(format!("'{name}' is not i64")))?;
        Ok(a.values().iter().map(|&v| v.max(0) as usize).collect())
    };
    let lists = |name: &str| -> Result<Vec<Vec<f64>>> {
        let c = column(name)?;
        let a = c
            .as_list_opt::<i32>()
            .ok_or_else(|| corrupt(format!("'{name}' is not a list")))?;
        (0..a.len())
            .map(|i| {
                let v = a.value(i);
                let f = v
                    .as_primitive_opt::<types::Float64Type>()
                    .ok_or_else(|| corrupt(format!("'{name}' values are not f64")))?;
                Ok(f.values().to_vec())
            })
            .collect()
    };
    let (inputs, outputs, weights, bias) = (
        int64("inputs")?,
        int64("outputs")?,
        lists("weights")?,
        lists("bias")?,
    );
    let mut layers = Vec::with_capacity(inputs.len());
    for (i, (((inputs, outputs), weights), bias)) in inputs
        .into_iter()
        .zip(outputs)
        .zip(weights)
        .zip(bias)
        .enumerate()
    {
        if inputs.checked_mul(outputs) != Some(weights.len()) || bias.len() != outputs {
            return Err(corrupt(format!(
                "layer {i} has {} weights and {} biases for {inputs} inputs and {outputs} outputs",
                weights.len(),
                bias.len()
            )));
        }
        layers.push(DenseLayer {
            inputs,
            outputs,
            weights,
            bias,
        });
    }
    for (i, pair) in layers.windows(2).enumerate() {
        if pair[1].inputs != pair[0].outputs {
            return Err(corrupt(format!(
                "layer {} has {} inputs but layer {i} has {} outputs",
                i + 1,
                pair[1].inputs,
                pair[0].outputs
            )));
        }
    }
    Ok(layers)
}

/// The network a model's description and layers make, checked to fit its
/// features and classes.
fn network_of(info: &ModelInfo, layers: Vec<DenseLayer>) -> Result<Mlp> {
    let first = layers.first().ok_or_else(|| corrupt("no layers"))?;
    if first.inputs != info.features.len() {
        return Err(corrupt(format!(
            "{} features but the first layer has {} inputs",
            info.features.len(),
            first.inputs
        )));
    }
    let activation = match info.activation.as_str() {
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        other => return Err(corrupt(format!("unknown activation '{other}'"))),
    };
    let head = match info.head.as_str() {
        "identity" => Head::Identity,
        "sigmoid" => Head::Sigmoid,
        "softmax" => Head::Softmax,
        other => return Err(corrupt(format!("unknown head '{other}'"))),
    };
    let outputs = layers.last().map_or(0, |l| l.outputs);
    let fits = match head {
        Head::Identity => outputs == 1 && info.classes.is_empty(),
        Head::Sigmoid => outputs == 1 && info.classes.len() == 2,
        Head::Softmax => outputs == info.classes.len() && outputs > 2,
    };
    if !fits {
        return Err(corrupt(format!(
            "a {} head with {outputs} outputs does not fit {} classes",
            info.head,
            info.classes.len()
        )));
    }
    Ok(Mlp {
        layers,
        activation,
        head,
    })
}

/// BLAKE3 over a model's description text and every layer's shape and
/// values, in hex.
fn checksum(info: &str, layers: &[DenseLayer]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(info.len() as u64).to_le_bytes());
    hasher.update(info.as_bytes());
    for layer in layers {
        hasher.update(&(layer.inputs as u64).to_le_bytes());
        hasher.update(&(layer.outputs as u64).to_le_bytes());
        for values in [&layer.weights, &layer.bias] {
            hasher.update(&(values.len() as u64).to_le_bytes());
            hasher.update(bytemuck::cast_slice(values));
        }
    }
    hasher.finalize().to_hex().to_string()
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::InvalidParameter {
        step: "<model>".into(),
        message: format!("not a valid fuseflow model: {what}"),
    }
}

impl Model {
    /// The schema of the Arrow form.
    fn arrow_schema(&self) -> Result<SchemaRef> {
        let info = toml::to_string(&self.info)
            .map_err(|e| Error::Internal(format!("cannot serialize the model description: {e}")))?;
        let sum = checksum(&info, &self.network.layers);
        Ok(Arc::new(Schema::new_with_metadata(
            layer_fields(),
            [
                (MODEL_KEY.to_string(), info),
                (CHECKSUM_KEY.to_string(), sum),
            ]
            .into(),
        )))
    }

    /// The model as one Arrow record batch.
    ///
    /// # Errors
    /// Only on an internal serialization failure.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let layers = &self.network.layers;
        let list = |values: &dyn Fn(&DenseLayer) -> &[f64]| -> ArrayRef {
            let mut b = ListBuilder::new(Float64Builder::new());
            for layer in layers {
                b.values().append_slice(values(layer));
                b.append(true);
            }
            Arc::new(b.finish())
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(0..layers.len() as i32)),
            Arc::new(Int64Array::from_iter_values(
                layers.iter().map(|l| l.inputs as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                layers.iter().map(|l| l.outputs as i64),
            )),
            list(&|l| &l.weights),
            list(&|l| &l.bias),
        ];
        Ok(RecordBatch::try_new(self.arrow_schema()?, columns)?)
    }

    /// Read a model from its Arrow form.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] saying what is wrong when the batch is not a
    /// fuseflow model (missing metadata, wrong columns, inconsistent shapes).
    pub fn from_batch(batch: &RecordBatch) -> Result<Model> {
        let schema = batch.schema();
        let text = schema
            .metadata()
            .get(MODEL_KEY)
            .ok_or_else(|| corrupt(format!("no '{MODEL_KEY}' metadata")))?;
        let info: ModelInfo = toml::from_str(text).map_err(|e| corrupt(e.message().to_string()))?;
        if info.format_version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} is not supported (this fuseflow reads version {FORMAT_VERSION})",
                info.format_version
            )));
        }
        let layers = layers_of(batch)?;
        if let Some(expected) = schema.metadata().get(CHECKSUM_KEY)
            && *expected != checksum(text, &layers)
        {
            return Err(corrupt(
                "its checksum does not match its description and weights (the file is damaged)",
            ));
        }
        let network = network_of(&info, layers)?;
        Ok(Model { info, network })
    }

    /// Describe a network trained on `table`'s `features` to predict `label`.
    ///
    /// The features' lineage is read from the table's field metadata.
    ///
    /// # Errors
    /// [`Error::Schema`] when a feature column is missing.
    pub fn describe(
        kind: &str,
        table_schema: &Schema,
        features: &[String],
        label: &str,
        classes: Vec<String>,
        network: Mlp,
    ) -> Result<Model> {
        let mut sources: Vec<Source> = Vec::new();
        let mut described = Vec::with_capacity(features.len());
        for name in features {
            let field = table_schema
                .field_with_name(name)
                .map_err(|_| Error::Schema {
                    step: kind.into(),
                    column: name.clone(),
                    message: "no such column".into(),
                })?;
            let lineage = crate::data::lineage::of_field(field)?;
            for (source, dtype) in lineage.sources {
                if !sources.iter().any(|s| s.name == source) {
                    sources.push(Source {
                        name: source,
                        dtype: dtype.name().into(),
                    });
                }
            }
            described.push(Feature {
                name: name.clone(),
                expr: lineage.expr.to_string(),
            });
        }
        Ok(Model {
            info: ModelInfo {
                format_version: FORMAT_VERSION,
                kind: kind.into(),
                label: label.into(),
                features: described,
                sources,
                classes,
                activation: activation_name(network.activation).into(),
                head: head_name(network.head).into(),
                params: BTreeMap::new(),
                training: BTreeMap::new(),
            },
            network,
        })
    }

    /// Save as an Arrow IPC file (atomically).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::data::files::write_table(
            &Table::from_batch(self.to_batch()?),
            path,
            crate::data::files::FileFormat::ArrowFile,
        )
    }

    /// Load from an Arrow IPC file, read as every IPC source is: mapped,
    /// its footer checked against the file, a decoder's panic contained.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be read, is damaged or
    /// is not a fuseflow model (the message says which).
    pub fn load(path: &Path) -> Result<Model> {
        let file = MappedIpcFile::open(path)?;
        if file.num_batches() == 0 {
            return Err(Error::io(path, "the model file holds no data"));
        }
        let batch = file.batch(0)?;
        Model::from_batch(&batch).map_err(|e| Error::io_from(path, e))
    }

    /// Names of the score columns, in order: `prediction` for regression;
    /// `probability` (of the second class) and `prediction` for binary
    /// classifiers; `probability_<class>` per class and `prediction` otherwise.
    pub fn output_names(&self) -> Vec<String> {
        match self.network.head {
            Head::Identity => vec!["prediction".into()],
            Head::Sigmoid => vec!["probability".into(), "prediction".into()],
            Head::Softmax => self
                .info
                .classes
                .iter()
                .map(|c| format!("probability_{c}"))
                .chain(["prediction".to_string()])
                .collect(),
        }
    }

    /// Check that `schema` has every source column with its training-time dtype.
    ///
    /// # Errors
    /// [`Error::Schema`] naming the column that is missing or has another type.
    pub fn check_input(&self, step: &str, schema: &Schema) -> Result<()> {
        for source in &self.info.sources {
            let field = schema
                .field_with_name(&source.name)
                .map_err(|_| Error::Schema {
                    step: step.into(),
                    column: source.name.clone(),
                    message: format!(
                        "the model reads this column ({}), but the input does not have it",
                        source.dtype
                    ),
                })?;
            let found = DType::from_arrow(field.data_type())
                .map_or_else(|| field.data_type().to_string(), |d| d.name().to_string());
            if found != source.dtype {
                return Err(Error::Schema {
                    step: step.into(),
                    column: source.name.clone(),
                    message: format!(
                        "the model was trained with {} here, the input has {found}; cast it first",
                        source.dtype
                    ),
                });
            }
        }
        Ok(())
    }

    /// The feature expressions over source columns.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when a stored expression does not parse.
    pub fn feature_exprs(&self) -> Result<Vec<(String, Expr)>> {
        self.info
            .features
            .iter()
            .map(|f| {
                Ok((
                    f.name.clone(),
                    parse_expr(&f.expr)
                        .map_err(|e| corrupt(format!("feature '{}': {e}", f.name)))?,
                ))
            })
            .collect()
    }

    /// Score expressions over source columns, for single-layer models: the
    /// preparation and the model as one fused projection. `None` for deeper
    /// networks, which score prepared features with [`Mlp::predict`].
    pub fn fused_score_exprs(&self) -> Result<Option<Vec<(String, Expr)>>> {
        let [layer] = self.network.layers.as_slice() else {
            return Ok(None);
        };
        // The model computes in f64 whatever the feature types (bool, f32 one-hot indicators).
        let features: Vec<(String, Expr)> = self
            .feature_exprs()?
            .into_iter()
            .map(|(n, e)| (n, e.cast(DType::Float64)))
            .collect();
        let logits: Vec<Expr> = (0..layer.outputs)
            .map(|o| {
                let row = &layer.weights[o * layer.inputs..(o + 1) * layer.inputs];
                features
                    .iter()
                    .zip(row)
                    .fold(lit(layer.bias[o]), |acc, ((_, f), &w)| {
                        acc + lit(w) * f.clone()
                    })
            })
            .collect();
        let classes = &self.info.classes;
        let class = |i: usize| lit(classes.get(i).cloned().unwrap_or_default());
        Ok(Some(match self.network.head {
            Head::Identity => vec![("prediction".into(), logits[0].clone())],
            Head::Sigmoid => {
                let p = logits[0].clone().sigmoid();
                vec![
                    ("probability".into(), p.clone()),
                    (
                        "prediction".into(),
                        if_else(p.gt_eq(lit(0.5)), class(1), class(0)),
                    ),
                ]
            }
            Head::Softmax => {
                let max = logits
                    .iter()
                    .skip(1)
                    .fold(logits[0].clone(), |m, z| m.maximum(z.clone()));
                let exps: Vec<Expr> = logits
                    .iter()
                    .map(|z| (z.clone() - max.clone()).exp())
                    .collect();
                let total = exps
                    .iter()
                    .skip(1)
                    .fold(exps[0].clone(), |s, e| s + e.clone());
                let probs: Vec<Expr> = exps.iter().map(|e| e.clone() / total.clone()).collect();
                let best = probs
                    .iter()
                    .skip(1)
                    .fold(probs[0].clone(), |m, p| m.maximum(p.clone()));
                let prediction = (0..probs.len())
                    .rev()
                    .fold(class(probs.len() - 1), |otherwise, i| {
                        if_else(probs[i].clone().eq(best.clone()), class(i), otherwise)
                    });
                let mut out: Vec<(String, Expr)> = classes
                    .iter()
                    .zip(probs)
                    .map(|(c, p)| (format!("probability_{c}"), p))
                    .collect();
                out.push(("prediction".into(), prediction));
                out
            }
        }))
    }
}

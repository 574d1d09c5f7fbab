//! The `evaluate` step: metrics of scored data against its label.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, cast::AsArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::ports::step_io;
use crate::data::Table;
use crate::error::{Error, Result};
use crate::ml::metrics;
use crate::ml::score::{CLASS_SEPARATOR, CLASSES_KEY, LABEL_KEY};
use crate::pipeline::step::{OpKind, Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Metric names and values, in output order.
type Metrics = Vec<(String, f64)>;
/// Confusion-matrix cells: actual class, predicted class, count.
type ConfusionCells = Vec<(String, String, i64)>;

/// Compare a [`Score`](super::Score) output with its label column
/// (`kind = "evaluate"`).
///
/// The task follows the score columns: `probability` means a binary
/// classifier (accuracy, precision, recall, F1 of the second class, log-loss,
/// ROC-AUC), `probability_<class>` a multinomial one (accuracy, macro
/// precision/recall/F1, log-loss), and a numeric `prediction` alone a
/// regression (RMSE, MAE, R²). Outputs `metrics` (`metric`, `value`) and, for
/// classifiers, `confusion` (`actual`, `predicted`, `count`).
#[derive(Debug, Clone, Default)]
pub struct Evaluate {
    label: Option<String>,
}

impl Evaluate {
    /// Evaluate against the model's own label column.
    pub fn new() -> Self {
        Evaluate { label: None }
    }

    /// Evaluate against another label column.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

fn metrics_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]))
}

fn confusion_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("actual", DataType::Utf8, false),
        Field::new("predicted", DataType::Utf8, false),
        Field::new("count", DataType::Int64, false),
    ]))
}

/// Fail on a chunk of column `name` with nulls, saying how many and `advice`.
fn refuse_nulls(step: &str, name: &str, chunk: &ArrayRef, advice: &str) -> Result<()> {
    if chunk.null_count() > 0 {
        return Err(Error::Schema {
            step: step.into(),
            column: name.into(),
            message: format!("{} rows are null{advice}", chunk.null_count()),
        });
    }
    Ok(())
}

/// A column as text per row (bool, integer, float or utf8), rejecting nulls.
fn text_column(step: &str, table: &Table, name: &str) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(table.num_rows());
    for chunk in table.column(step, name)? {
        refuse_nulls(step, name, &chunk, "; filter them before evaluating")?;
        let formatter =
            arrow_cast::display::ArrayFormatter::try_new(chunk.as_ref(), &Default::default())?;
        out.extend((0..chunk.len()).map(|i| formatter.value(i).to_string()));
    }
    Ok(out)
}

/// A numeric column as f64, rejecting nulls.
fn number_column(step: &str, table: &Table, name: &str) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(table.num_rows());
    for chunk in table.column(step, name)? {
        refuse_nulls(
            step,
            name,
            &chunk,
            " (a feature was null when scoring); fill or filter them",
        )?;
        let cast = arrow_cast::cast(&chunk, &DataType::Float64)?;
        out.extend(
            cast.as_primitive::<arrow_array::types::Float64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    Ok(out)
}

impl Evaluate {
    fn class_indices(
        step: &str,
        column: &str,
        values: &[String],
        classes: &[String],
    ) -> Result<Vec<u32>> {
        values
            .iter()
            .map(|v| {
                classes
                    .iter()
                    .position(|c| c == v)
                    .map(|i| i as u32)
                    .ok_or_else(|| Error::Schema {
                        step: step.into(),
                        column: column.into(),
                        message: format!(
                            "value '{v}' is not one of the model's classes ({})",
                            classes.join(", ")
                        ),
                    })
            })
            .collect()
    }

    fn evaluate(&self, step: &str, data: &Table) -> Result<(Metrics, ConfusionCells)> {
        let schema = data.schema();
        let label = match (&self.label, schema.metadata().get(LABEL_KEY)) {
            (Some(l), _) => l.clone(),
            (None, Some(l)) => l.clone(),
            (None, None) => {
                return Err(Error::InvalidParameter {
                    step: step.into(),
                    message: "the input is not a score step's output; name the label column".into(),
                });
            }
        };
        let classes: Vec<String> = schema
            .metadata()
            .get(CLASSES_KEY)
            .filter(|c| !c.is_empty())
            .map(|c| c.split(CLASS_SEPARATOR).map(str::to_string).collect())
            .unwrap_or_default();
        let mut out = vec![("rows".to_string(), data.num_rows() as f64)];
        if classes.is_empty() {
            Self::regression(step, data, &label, &mut out)?;
            return Ok((out, Vec::new()));
        }
        let confusion = Self::classification(step, data, &label, &classes, &mut out)?;
        Ok((out, confusion))
    }

    /// The regression metrics (RMSE, MAE, R²) of `prediction` against `label`, onto `out`.
    fn regression(step: &str, data: &Table, label: &str, out: &mut Metrics) -> Result<()> {
        let numeric = data
            .schema()
            .field_with_name("prediction")
            .is_ok_and(|f| f.data_type().is_numeric());
        if !numeric {
            return Err(Error::Schema {
                step: step.into(),
                column: "prediction".into(),
                message: "needs a numeric prediction (regression) or the class list a score step records in the schema metadata; evaluate the score step's output, or a file that kept its metadata".into(),
            });
        }
        let (y, pred) = (
            number_column(step, data, label)?,
            number_column(step, data, "prediction")?,
        );
        out.push(("rmse".into(), metrics::rmse(step, &y, &pred)?));
        out.push(("mae".into(), metrics::mae(step, &y, &pred)?));
        out.push(("r2".into(), metrics::r2(step, &y, &pred)?));
        Ok(())
    }

    /// The classification metrics of `prediction` and the probabilities
    /// against `label`, onto `out`, and the confusion matrix.
    fn classification(
        step: &str,
        data: &Table,
        label: &str,
        classes: &[String],
        out: &mut Metrics,
    ) -> Result<ConfusionCells> {
        let y = Self::class_indices(step, label, &text_column(step, data, label)?, classes)?;
        let pred = Self::class_indices(
            step,
            "prediction",
            &text_column(step, data, "prediction")?,
            classes,
        )?;
        let k = classes.len();
        out.push(("accuracy".into(), metrics::accuracy(step, &y, &pred)?));
        let scores = metrics::precision_recall_f1(step, &y, &pred, k)?;
        if k == 2 {
            let p1 = number_column(step, data, "probability")?;
            out.push(("precision".into(), scores[1].precision));
            out.push(("recall".into(), scores[1].recall));
            out.push(("f1".into(), scores[1].f1));
            out.push(("log_loss".into(), metrics::binary_log_loss(step, &y, &p1)?));
            out.push((
                "roc_auc".into(),
                metrics::roc_auc(step, &y, &p1)?.unwrap_or(f64::NAN),
            ));
        } else {
            let columns: Vec<Vec<f64>> = classes
                .iter()
                .map(|c| number_column(step, data, &format!("probability_{c}")))
                .collect::<Result<_>>()?;
            let probabilities: Vec<f64> = (0..y.len())
                .flat_map(|i| columns.iter().map(move |c| c[i]))
                .collect();
            let avg = metrics::macro_average(&scores);
            out.push(("precision_macro".into(), avg.precision));
            out.push(("recall_macro".into(), avg.recall));
            out.push(("f1_macro".into(), avg.f1));
            out.push((
                "log_loss".into(),
                metrics::log_loss(step, &y, &probabilities, k)?,
            ));
        }
        let matrix = metrics::confusion_matrix(step, &y, &pred, k)?;
        Ok((0..k)
            .flat_map(|a| (0..k).map(move |p| (a, p)))
            .map(|(a, p)| (classes[a].clone(), classes[p].clone(), matrix[a][p] as i64))
            .collect())
    }
}

impl Step for Evaluate {
    fn op_kind(&self) -> OpKind {
        OpKind::Metric
    }
    step_io!("evaluate", ["data"], ["metrics", "confusion"]);
    fn params(&self) -> String {
        self.label
            .as_ref()
            .map(|l| format!("label={l}"))
            .unwrap_or_default()
    }
    fn output_schemas(&self, _: StepContext, _: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![metrics_schema(), confusion_schema()])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let (values, confusion) = self.evaluate(ctx.name, &inputs[0])?;
        let metrics = RecordBatch::try_new(
            metrics_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(values.iter().map(|(n, _)| n))) as ArrayRef,
                Arc::new(
                    values
                        .iter()
                        .map(|(_, v)| Some(*v))
                        .collect::<Float64Array>(),
                ),
            ],
        )?;
        let confusion = RecordBatch::try_new(
            confusion_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    confusion.iter().map(|c| &c.0),
                )) as ArrayRef,
                Arc::new(StringArray::from_iter_values(
                    confusion.iter().map(|c| &c.1),
                )),
                Arc::new(Int64Array::from_iter_values(confusion.iter().map(|c| c.2))),
            ],
        )?;
        Ok(vec![
            Table::from_batch(metrics),
            Table::from_batch(confusion),
        ])
    }
}

impl FromSpec for Evaluate {
    /// `label` (default: the model's).
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let evaluate = Evaluate::new();
        Ok(match spec.opt_string("label")? {
            Some(label) => evaluate.label(label),
            None => evaluate,
        })
    }
}

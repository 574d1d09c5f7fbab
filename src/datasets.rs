//! Deterministic synthetic data sets for examples, tests and benchmarks.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};

use crate::data::{Rng, Table};
use crate::ir::{DType, col};
use crate::ml::logistic::LogisticConfig;
use crate::pipeline::Pipeline;
use crate::pipeline::io::MemorySource;
use crate::pipeline::metrics::Evaluate;
use crate::pipeline::models::{Score, TrainLogistic};
use crate::pipeline::prep::{
    Derive, Encode, EncodeMethod, FillNull, FillValue, FitCategories, FitStats, Scale, ScaleMethod,
    Split, UnknownCategory,
};

/// A customer-churn-like table: `age` (f64, 2% null), `income` (f64, 5% null,
/// log-normal), `visits` (i64), `tenure` (f32, 1% null), `region` (utf8, 4
/// categories, 1% null), `premium` (bool) and a binary label `churned`
/// that depends on the features through a logistic model.
pub fn customers(rows: usize, seed: u64) -> RecordBatch {
    let mut rng = Rng::new(seed);
    const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
    let mut age = Vec::with_capacity(rows);
    let mut income = Vec::with_capacity(rows);
    let mut visits = Vec::with_capacity(rows);
    let mut tenure = Vec::with_capacity(rows);
    let mut region = Vec::with_capacity(rows);
    let mut premium = Vec::with_capacity(rows);
    let mut churned = Vec::with_capacity(rows);
    for _ in 0..rows {
        let a = (40.0 + 12.0 * rng.normal()).clamp(18.0, 90.0);
        let inc = (10.5 + 0.6 * rng.normal()).exp();
        let v = (rng.uniform() * 30.0) as i64;
        let t = (rng.uniform() * 10.0) as f32;
        let r = (rng.next_u64() % 4) as usize;
        let p = rng.uniform() < 0.3;
        let logit = -0.03 * (a - 40.0)
            - 0.4 * (inc.ln() - 10.5)
            - 0.08 * (v as f64 - 15.0)
            - 0.2 * f64::from(t)
            + if p { -0.8 } else { 0.3 }
            + [0.2, -0.1, 0.0, 0.4][r];
        churned.push(rng.uniform() < 1.0 / (1.0 + (-logit).exp()));
        age.push((rng.uniform() >= 0.02).then_some(a));
        income.push((rng.uniform() >= 0.05).then_some(inc));
        visits.push(v);
        tenure.push((rng.uniform() >= 0.01).then_some(t));
        region.push((rng.uniform() >= 0.01).then_some(REGIONS[r]));
        premium.push(p);
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("age", Arc::new(Float64Array::from(age))),
        ("income", Arc::new(Float64Array::from(income))),
        ("visits", Arc::new(Int64Array::from(visits))),
        ("tenure", Arc::new(Float32Array::from(tenure))),
        ("region", Arc::new(StringArray::from(region))),
        ("premium", Arc::new(BooleanArray::from(premium))),
        ("churned", Arc::new(BooleanArray::from(churned))),
    ];
    RecordBatch::try_from_iter(columns).expect("columns have equal length")
}

/// The churn pipeline of `examples/train_and_score.rs` over [`customers`]
/// rows: a seeded 75/25 split; on the training split derived features
/// (`income_log`, `premium` as f64), fitted statistics and categories, mean
/// filling, z-scores and one-hot regions; a logistic regression; the model
/// (which re-applies its fitted preparation) scoring the raw test split
/// (`scores`), and `evaluation` of those scores.
pub fn churn_pipeline(data: Table) -> Pipeline {
    churn_pipeline_with(data, LogisticConfig::default())
}

/// [`churn_pipeline`] with the logistic regression configured by `config`
/// (the quickstart changes its `l2` between two runs).
pub fn churn_pipeline_with(data: Table, config: LogisticConfig) -> Pipeline {
    let numeric = ["age", "income_log", "visits", "tenure"];
    let mut p = Pipeline::new("churn");
    p.add("raw", MemorySource::new(data));
    p.add("split", Split::new(0.25, 7)).input("data", "raw");
    p.add(
        "features",
        Derive::new([
            ("income_log", col("income").log1p()),
            ("premium", col("premium").cast(DType::Float64)),
        ]),
    )
    .input("data", "split.train");
    p.add("stats", FitStats::new(numeric))
        .input("data", "features");
    p.add("categories", FitCategories::new(["region"]))
        .input("data", "features");
    p.add("filled", FillNull::new(numeric, FillValue::Mean))
        .inputs(["features", "stats"]);
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["filled", "stats"]);
    p.add(
        "encoded",
        Encode::new(EncodeMethod::OneHot, UnknownCategory::Ignore),
    )
    .inputs(["scaled", "categories"]);
    let features = [
        "age",
        "income_log",
        "visits",
        "tenure",
        "premium",
        "region=east",
        "region=north",
        "region=south",
        "region=west",
    ];
    p.add("model", TrainLogistic::new(features, "churned", config))
        .input("data", "encoded");
    p.add("scores", Score::new(["churned"]))
        .inputs(["model", "split.test"]);
    p.add("evaluation", Evaluate::new()).input("data", "scores");
    p
}

//! Prepare, train, evaluate and score: a churn model end to end.
//!
//! 1. Generate 300K customer rows (and a separate 200K-row held-out file).
//! 2. The pipeline [`datasets::churn_pipeline`] splits the rows, derives
//!    features and fits fill values, scaling and categories on the training
//!    split, trains a logistic regression, scores the raw test split and
//!    evaluates it.
//! 3. The trained model (with its fitted preparation) is saved and used to
//!    score the held-out Parquet file in bounded chunks, as
//!    `fuseflow score` does.
//!
//! Run with `cargo run --release --example train_and_score`; add
//! `-- --device wgpu` (or `cuda`) to run the computing steps on a GPU.

use std::path::Path;

use fuseflow::backend::DeviceChoice;
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::exec::{Progress, ProgressMode, RunOptions, ScoreOptions, score_file};
use fuseflow::ml::model::Model;
use fuseflow::pipeline::metrics::Evaluate;
use fuseflow::pipeline::models::model_from_table;
use fuseflow::{Pipeline, Table, datasets};

fn main() -> fuseflow::Result<()> {
    let dir = Path::new("target/train_and_score");
    let data = datasets::customers(300_000, 1);
    let holdout = datasets::customers(200_000, 2);
    let holdout_path = dir.join("holdout.parquet");
    write_table(
        &Table::from_batch(holdout),
        &holdout_path,
        FileFormat::Parquet,
    )?;

    // The model re-applies the fitted preparation itself: it scores the raw test split.
    let p = datasets::churn_pipeline(Table::from_batch(data));

    // `-- --device wgpu` (or cuda) runs the steps that compute on a GPU.
    let device = DeviceChoice::from_args(std::env::args())?;
    let run = p.run_with(&RunOptions {
        device,
        ..RunOptions::default()
    })?;
    println!("pipeline ran in {:.2} s", run.duration.as_secs_f64());
    for step in &run.steps {
        println!(
            "  {:<12} {:<16} {:<6} {:>8.1} ms",
            step.name,
            step.kind,
            step.device.split([':', ' ']).next().unwrap_or_default(),
            step.duration.as_secs_f64() * 1e3
        );
    }
    let model = model_from_table("model", run.output("model")?)?;
    println!(
        "\nmodel: {} on {} features, trained in {} Newton iterations to log-loss {:.6}",
        model.info.kind,
        model.info.features.len(),
        model.info.training["iterations"],
        model.info.training["log_loss"]
    );
    for (feature, weight) in model
        .info
        .features
        .iter()
        .zip(&model.network.layers[0].weights)
    {
        println!("  {:<14} {weight:>+.4}   = {}", feature.name, feature.expr);
    }
    let metrics = run.output("evaluation.metrics")?.concat()?;
    println!(
        "\ntest-split metrics:\n{}",
        arrow_cast::pretty::pretty_format_batches(&[metrics]).map_err(fuseflow::Error::from)?
    );

    let model_path = dir.join("churn.model.arrow");
    model.save(&model_path)?;
    let model = Model::load(&model_path)?;
    let scored_path = dir.join("holdout_scores.parquet");
    let mut progress = Progress::new(ProgressMode::detect(false), "scoring holdout", None);
    let options = ScoreOptions {
        keep: vec!["churned".into()],
        chunk_rows: 32_768,
    };
    let summary = score_file(model, &holdout_path, &scored_path, &options, &mut progress)?;
    println!(
        "scored {} held-out rows in {} chunks in {:.3} s -> {}",
        summary.rows,
        summary.chunks,
        summary.duration.as_secs_f64(),
        scored_path.display()
    );

    // Evaluate the held-out scores with a second small pipeline.
    let mut eval = Pipeline::new("holdout-eval");
    eval.add("scores", fuseflow::pipeline::io::Read::new(&scored_path));
    eval.add("evaluation", Evaluate::new().label("churned"))
        .input("data", "scores");
    let evaluated = eval.run()?;
    let metrics = evaluated.output("evaluation.metrics")?.concat()?;
    println!(
        "held-out metrics:\n{}",
        arrow_cast::pretty::pretty_format_batches(&[metrics]).map_err(fuseflow::Error::from)?
    );
    Ok(())
}

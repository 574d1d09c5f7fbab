//! Quickstart: prepare a 1M-row customer table with a fuseflow pipeline.
//!
//! Generates a deterministic synthetic data set (numeric columns with nulls, a
//! categorical column, a binary label), then: split into train/test, fit
//! statistics and categories on the training rows only, fill nulls with the
//! training means, derive a log feature, z-score, one-hot encode the region,
//! and print a summary of both prepared splits.
//!
//! Run with `cargo run --release --example quickstart`; add `-- --device cuda`
//! (or `wgpu`) to run the preparation steps on a GPU. Without one, the run
//! goes on on the CPU and each step says why.

use fuseflow::backend::DeviceChoice;
use fuseflow::ir::{col, lit};
use fuseflow::pipeline::io::MemorySource;
use fuseflow::pipeline::prep::{
    Derive, Encode, EncodeMethod, FillNull, FillValue, FitCategories, FitStats, Scale, ScaleMethod,
    Split, UnknownCategory,
};
use fuseflow::{Pipeline, RunOptions, Table, datasets};

fn main() -> fuseflow::Result<()> {
    let device = DeviceChoice::from_args(std::env::args())?;
    let rows = 1_000_000;
    let data = datasets::customers(rows, 42);
    // Cut the table into 64K-row chunks as a file reader would.
    let chunks = (0..rows)
        .step_by(65_536)
        .map(|s| data.slice(s, 65_536.min(rows - s)))
        .collect();
    let table = Table::try_new(data.schema(), chunks)?;

    let numeric = ["age", "income_log", "visits", "tenure"];
    let mut p = Pipeline::new("quickstart");
    p.add("raw", MemorySource::new(table));
    p.add(
        "features",
        Derive::new([("income_log", col("income").log1p())]),
    )
    .input("data", "raw");
    p.add("split", Split::new(0.2, 7)).input("data", "features");
    p.add("stats", FitStats::new(numeric))
        .input("data", "split.train");
    p.add("categories", FitCategories::new(["region"]))
        .input("data", "split.train");
    for part in ["train", "test"] {
        let (filled, scaled, encoded) = (
            format!("filled_{part}"),
            format!("scaled_{part}"),
            format!("prepared_{part}"),
        );
        p.add(filled.as_str(), FillNull::new(numeric, FillValue::Mean))
            .input("data", &format!("split.{part}"))
            .input("stats", "stats");
        p.add(scaled.as_str(), Scale::new(ScaleMethod::ZScore))
            .input("data", &filled)
            .input("stats", "stats");
        p.add(
            encoded.as_str(),
            Encode::new(EncodeMethod::OneHot, UnknownCategory::Ignore),
        )
        .input("data", &scaled)
        .input("categories", "categories");
    }
    p.add(
        "old_customers",
        fuseflow::pipeline::prep::Filter::new(col("age").gt(lit(2.0))),
    )
    .input("data", "prepared_test");

    print!("{}", p.explain()?);
    let run = p.run_with(&RunOptions {
        device,
        ..RunOptions::default()
    })?;
    println!(
        "\nran {} steps in {:.3} s",
        run.steps.len(),
        run.duration.as_secs_f64()
    );
    for step in &run.steps {
        println!(
            "  {:<16} {:<15} {:<5} {:>8.1} ms  rows {:?}",
            step.name,
            step.kind,
            step.device.split(':').next().unwrap_or_default(),
            step.duration.as_secs_f64() * 1e3,
            step.rows
        );
        for note in &step.notes {
            println!("    note: {note}");
        }
    }

    let stats = run.output("stats")?.concat()?;
    println!(
        "\nfitted on the training split:\n{}",
        arrow_cast::pretty::pretty_format_batches(&[stats]).map_err(fuseflow::Error::from)?
    );
    for part in ["train", "test"] {
        let prepared = run.output(&format!("prepared_{part}"))?;
        let columns: Vec<&str> = prepared
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        println!(
            "{part}: {} rows, columns: {}",
            prepared.num_rows(),
            columns.join(", ")
        );
    }
    let head = run.output("prepared_test")?.concat()?.slice(0, 5);
    println!(
        "{}",
        arrow_cast::pretty::pretty_format_batches(&[head]).map_err(fuseflow::Error::from)?
    );
    println!(
        "test rows with age more than 2 std above the mean: {}",
        run.output("old_customers")?.num_rows()
    );
    Ok(())
}

//! Writes the seed corpus (`fuzz/corpus/<target>/`): small valid inputs of
//! every target, from which the fuzzer mutates. Run from `fuzz/` after a
//! change of file format or spec syntax:
//! `cargo run --release --example seed_corpus`.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, PrimitiveBuilder, StringDictionaryBuilder};
use arrow_array::types::{Float64Type, Int32Type};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::pipeline::models::model_from_table;
use fuseflow::{Table, datasets};

/// Expressions of every form the parser reads.
const EXPRESSIONS: &[&str] = &[
    "clip(fill_null(x, 0.0), -5.0, 5.0)",
    "sigmoid(0.1 + 0.2 * a - b / 3)",
    "if_else(is_null(a), 1, cast(b, f64))",
    "col(\"a name\") ** 2 >= 3 and not (c < 1 or d != 2)",
    "log1p(abs(x)) / sqrt(y) + exp(-z) - log(w)",
    "minimum(a, maximum(b, 1e-3)) == pow(c, 2.5)",
    "-x <= inf or y > -1.5e300 or is_null(z) or true",
];

fn main() -> fuseflow::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let dir = |target: &str| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory can be made");
        dir
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for spec in ["prep.toml", "train.toml", "sweep.toml"] {
        std::fs::copy(examples.join(spec), dir("spec_file").join(spec))
            .expect("the example specs are there");
    }
    for (i, text) in EXPRESSIONS.iter().enumerate() {
        std::fs::write(dir("expression").join(format!("{i}.txt")), text)
            .expect("the corpus can be written");
    }
    let table = every_kind_of_column();
    let flat = Table::from_batch(
        table
            .project(&[0, 1, 2, 3])
            .map_err(fuseflow::Error::from)?,
    );
    let table = Table::from_batch(table);
    write_table(
        &table,
        &dir("ipc_file").join("table.arrow"),
        FileFormat::ArrowFile,
    )?;
    write_table(
        &table,
        &dir("ipc_stream").join("table.arrows"),
        FileFormat::ArrowStream,
    )?;
    write_table(
        &table,
        &dir("parquet").join("table.parquet"),
        FileFormat::Parquet,
    )?;
    write_table(&flat, &dir("csv").join("table.csv"), FileFormat::Csv)?;
    std::fs::copy(
        examples.join("data/customers.csv"),
        dir("csv").join("customers.csv"),
    )
    .expect("the example data is there");

    let run = datasets::churn_pipeline(Table::from_batch(datasets::customers(400, 1))).run()?;
    model_from_table("model", run.output("model")?)?
        .save(&dir("model").join("churn.model.arrow"))?;
    Ok(())
}

/// 40 rows of floats (with NaN and nulls), integers, strings, booleans,
/// lists and dictionary-encoded strings, in two batches.
fn every_kind_of_column() -> RecordBatch {
    let rows = 40;
    let mut lists = ListBuilder::new(PrimitiveBuilder::<Float64Type>::new());
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for i in 0..rows {
        if i % 7 == 3 {
            lists.append_null();
            dict.append_null();
        } else {
            lists.values().append_slice(&vec![i as f64 * 0.5; i % 4]);
            lists.append(true);
            dict.append_value(["north", "south", "east"][i % 3]);
        }
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "x",
            Arc::new(Float64Array::from_iter((0..rows).map(|i| match i % 9 {
                0 => None,
                4 => Some(f64::NAN),
                _ => Some(i as f64 / 3.0 - 5.0),
            }))),
        ),
        (
            "n",
            Arc::new(Int64Array::from_iter_values(
                (0..rows as i64).map(|i| i * i - 50),
            )),
        ),
        (
            "label",
            Arc::new(StringArray::from_iter(
                (0..rows).map(|i| (i % 5 != 2).then(|| format!("row {i}"))),
            )),
        ),
        (
            "flag",
            Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0)))),
        ),
        ("values", Arc::new(lists.finish())),
        ("region", Arc::new(dict.finish())),
    ];
    RecordBatch::try_from_iter(columns).expect("the columns have one length")
}

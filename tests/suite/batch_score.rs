//! Streaming batch scoring: `fuseflow score` and `exec::score_file`.
//!
//! A model is trained in-process on a small sample, saved, and used to score
//! a 300K-row Parquet file through the command-line tool in bounded chunks.
//! The CLI's scores must equal scoring the whole file in one batch in-process
//! (tolerance 0), in every output format, and failures must leave no output
//! (and no temporary file) behind. Nothing here asserts on time or memory.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_schema::DataType;

use fuseflow::data::files::{BatchReader, FileFormat, write_table};
use fuseflow::exec::{Progress, ProgressMode, ScoreOptions, score_file};
use fuseflow::ml::model::Model;
use fuseflow::ml::score::Scorer;
use fuseflow::pipeline::models::model_from_table;
use fuseflow::{Error, Table, datasets};

// ------------------------------------------------------------------ helpers

/// The churn model of [`datasets::churn_pipeline`] trained on
/// `customers(20_000, 4)` (derived and cast features, mean-filled, z-scored,
/// one-hot region: f64, i64, f32 and bool sources), trained once.
fn churn_model() -> &'static Model {
    static MODEL: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let data = Table::from_batch(datasets::customers(20_000, 4));
        let run = datasets::churn_pipeline(data).run().unwrap();
        model_from_table("model", run.output("model").unwrap()).unwrap()
    })
}

fn write_parquet(batch: RecordBatch, path: &Path) {
    write_table(&Table::from_batch(batch), path, FileFormat::Parquet).unwrap();
}

/// A whole file as one batch.
fn read_all(path: &Path) -> RecordBatch {
    let reader = BatchReader::open(path, None, 1 << 20).unwrap();
    let schema = reader.schema().clone();
    let batches: Vec<RecordBatch> = reader.collect::<fuseflow::Result<_>>().unwrap();
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

fn cli(args: &[&Path], flags: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fuseflow"));
    cmd.arg("score");
    for a in args {
        cmd.arg(a);
    }
    cmd.args(flags);
    cmd.output().expect("the fuseflow binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn probability_bits(batch: &RecordBatch) -> Vec<u64> {
    let p = batch
        .column_by_name("probability")
        .expect("probability column");
    assert_eq!(p.data_type(), &DataType::Float64);
    assert_eq!(p.null_count(), 0);
    p.as_primitive::<Float64Type>()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// A column as text (bool and utf8 both read as "true"/"false").
fn as_text(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = batch.column_by_name(name).expect("column");
    let c = arrow_cast::cast(c, &DataType::Utf8).unwrap();
    common::str_values(c.as_ref())
}

fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

// ----------------------------------------------------------------- the CLI

#[test]
fn cli_scores_300k_rows_exactly_like_in_process_scoring() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("customers.parquet");
    write_parquet(datasets::customers(300_000, 3), &input);
    let model = churn_model().clone();
    let model_path = dir.path().join("churn.model.arrow");
    model.save(&model_path).unwrap();

    // The reference: the whole file scored as one batch, in-process.
    let whole = read_all(&input);
    assert_eq!(whole.num_rows(), 300_000);
    let scorer = Scorer::new("score", model, &whole.schema(), &["churned".to_string()]).unwrap();
    let expected = scorer.score(&whole).unwrap();
    let expected_bits = probability_bits(&expected);
    let expected_predictions = as_text(&expected, "prediction");
    let churned = as_text(&whole, "churned");

    for name in [
        "scores.parquet",
        "scores.arrow",
        "scores.arrows",
        "scores.csv",
    ] {
        let output = dir.path().join(name);
        let out = cli(
            &[&model_path, &input, &output],
            &["--keep", "churned", "--chunk-rows", "20000", "--quiet"],
        );
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            text(&out.stderr),
            text(&out.stdout)
        );
        assert!(
            out.stdout.is_empty(),
            "--quiet prints nothing: {}",
            text(&out.stdout)
        );
        let scored = read_all(&output);
        assert_eq!(scored.num_rows(), 300_000, "{name}");
        assert_eq!(
            column_names(&scored),
            ["churned", "probability", "prediction"],
            "{name}"
        );
        // Tolerance 0: chunked CLI scoring equals one-batch scoring bit for bit
        // (CSV floats are written in round-trip form).
        let bits = probability_bits(&scored);
        let first_diff = bits.iter().zip(&expected_bits).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "{name}: first differing row");
        assert_eq!(
            as_text(&scored, "prediction"),
            expected_predictions,
            "{name}"
        );
        assert_eq!(as_text(&scored, "churned"), churned, "{name}");
        // Probabilities are probabilities.
        assert!(
            bits.iter()
                .map(|b| f64::from_bits(*b))
                .all(|p| (0.0..=1.0).contains(&p))
        );
    }
    // Non-Parquet outputs that keep schema metadata carry the model's classes
    // and label for a later evaluation.
    let arrow = read_all(&dir.path().join("scores.arrow"));
    assert_eq!(
        arrow
            .schema()
            .metadata()
            .get(fuseflow::ml::score::LABEL_KEY),
        Some(&"churned".to_string())
    );

    // Without --quiet the summary line reports rows and chunks (15 of 20000).
    let output = dir.path().join("loud.parquet");
    let out = cli(
        &[&model_path, &input, &output],
        &["--keep", "churned", "--chunk-rows", "20000"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("scored 300000 rows in 15 chunks"),
        "{stdout}"
    );

    // Nothing but the inputs and the outputs: no temporary files.
    assert_eq!(
        listing(dir.path()),
        [
            "churn.model.arrow",
            "customers.parquet",
            "loud.parquet",
            "scores.arrow",
            "scores.arrows",
            "scores.csv",
            "scores.parquet"
        ]
    );
}

/// A small scoring setup: a trained model file and a raw input file.
fn small_setup(rows: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.arrow");
    churn_model().save(&model_path).unwrap();
    let input = dir.path().join("input.parquet");
    write_parquet(datasets::customers(rows, 8), &input);
    (dir, model_path, input)
}

#[test]
fn cli_input_missing_a_model_column_fails_and_leaves_no_output() {
    let (dir, model_path, _) = small_setup(10);
    // The customers table without `age`.
    let raw = datasets::customers(5_000, 9);
    let without_age = raw.project(&[1, 2, 3, 4, 5, 6]).unwrap();
    assert!(without_age.schema().index_of("age").is_err());
    let input = dir.path().join("no_age.parquet");
    write_parquet(without_age, &input);
    let before = listing(dir.path());

    for name in ["out.parquet", "out.arrow", "out.csv"] {
        let output = dir.path().join(name);
        let out = cli(
            &[&model_path, &input, &output],
            &["--keep", "churned", "--chunk-rows", "1000", "--quiet"],
        );
        assert!(!out.status.success(), "{name}: must fail");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("'age'") && stderr.contains("does not have it"),
            "{name}: {stderr}"
        );
        assert!(!output.exists(), "{name}: no output on failure");
        assert_eq!(listing(dir.path()), before, "{name}: no temporary files");
    }

    // An existing output is left untouched by a failed run.
    let output = dir.path().join("existing.parquet");
    std::fs::write(&output, b"previous contents").unwrap();
    let out = cli(&[&model_path, &input, &output], &["--quiet"]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&output).unwrap(), b"previous contents");

    // A `--keep` column that does not exist is named, too.
    let good_input = dir.path().join("good.parquet");
    write_parquet(datasets::customers(100, 10), &good_input);
    let output = dir.path().join("kept.parquet");
    let out = cli(
        &[&model_path, &good_input, &output],
        &["--keep", "customer_id", "--quiet"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("'customer_id'"),
        "{}",
        text(&out.stderr)
    );
    assert!(!output.exists());
}

#[test]
fn cli_reports_missing_files_by_name() {
    let (dir, model_path, input) = small_setup(50);
    let before = listing(dir.path());

    let missing_model = dir.path().join("no_such.model.arrow");
    let output = dir.path().join("out.parquet");
    let out = cli(&[&missing_model, &input, &output], &["--quiet"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no_such.model.arrow"), "{stderr}");
    assert!(!output.exists());

    // A file that is not a model.
    let out = cli(&[&input, &input, &output], &["--quiet"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("input.parquet"), "{stderr}");
    assert!(!output.exists());

    // A missing input file.
    let missing_input = dir.path().join("no_such_input.parquet");
    let out = cli(&[&model_path, &missing_input, &output], &["--quiet"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no_such_input.parquet"),
        "{}",
        text(&out.stderr)
    );

    // An output with an unknown extension.
    let odd = dir.path().join("out.xlsx");
    let out = cli(&[&model_path, &input, &odd], &["--quiet"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("out.xlsx"),
        "{}",
        text(&out.stderr)
    );
    assert!(!odd.exists());

    assert_eq!(listing(dir.path()), before);
}

// ------------------------------------------------------ exec::score_file

#[test]
fn score_file_cuts_the_input_into_bounded_chunks() {
    let (dir, model_path, input) = small_setup(100);
    let model = Model::load(&model_path).unwrap();
    // The same 100 rows as an Arrow IPC file holding one 100-row batch.
    let ipc_input = dir.path().join("input.arrow");
    write_table(
        &Table::from_batch(read_all(&input)),
        &ipc_input,
        FileFormat::ArrowFile,
    )
    .unwrap();
    let whole = read_all(&input);
    let expected = Scorer::new("score", model.clone(), &whole.schema(), &[])
        .unwrap()
        .score(&whole)
        .unwrap();

    for (source, out_name) in [(&input, "out7.parquet"), (&ipc_input, "out7.arrows")] {
        let output = dir.path().join(out_name);
        let options = ScoreOptions {
            keep: Vec::new(),
            chunk_rows: 7,
        };
        let mut progress = Progress::new(ProgressMode::Quiet, "test", None);
        let summary = score_file(model.clone(), source, &output, &options, &mut progress).unwrap();
        // 100 rows in chunks of 7: 14 full chunks and one of 2.
        assert_eq!(summary.rows, 100, "{out_name}");
        assert_eq!(summary.chunks, 15, "{out_name}");
        let scored = read_all(&output);
        assert_eq!(column_names(&scored), ["probability", "prediction"]);
        // Tolerance 0 against one-batch scoring.
        assert_eq!(
            probability_bits(&scored),
            probability_bits(&expected),
            "{out_name}"
        );
    }

    // Default options: one chunk.
    let output = dir.path().join("default.parquet");
    let mut progress = Progress::new(ProgressMode::Quiet, "test", None);
    let summary = score_file(
        model.clone(),
        &input,
        &output,
        &ScoreOptions::default(),
        &mut progress,
    )
    .unwrap();
    assert_eq!((summary.rows, summary.chunks), (100, 1));

    // Errors from score_file: the missing column is named, no output appears.
    let no_age = dir.path().join("no_age.parquet");
    write_parquet(whole.project(&[1, 2, 3, 4, 5, 6]).unwrap(), &no_age);
    let output = dir.path().join("never.parquet");
    let mut progress = Progress::new(ProgressMode::Quiet, "test", None);
    let err = score_file(
        model,
        &no_age,
        &output,
        &ScoreOptions {
            keep: Vec::new(),
            chunk_rows: 7,
        },
        &mut progress,
    )
    .expect_err("age is missing");
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "age"),
        "{err:?}"
    );
    assert!(!output.exists());
    assert!(
        !listing(dir.path()).iter().any(|n| n.contains(".tmp")),
        "{:?}",
        listing(dir.path())
    );
}

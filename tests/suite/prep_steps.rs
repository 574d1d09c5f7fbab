//! The data-preparation steps on data with nulls and edge cases: empty and
//! one-row inputs, all-null and NaN columns, hand-computed scaling, encodings
//! with unseen and null categories, and a split that is deterministic across
//! runs, chunkings and thread counts.

use std::collections::HashMap;

use crate::common::*;
use arrow_array::RecordBatch;
use arrow_schema::DataType;
use fuseflow::ir::{Scalar, col, lit};
use fuseflow::pipeline::io::MemorySource;
use fuseflow::pipeline::prep::{
    Derive, Encode, EncodeMethod, FillNull, FillValue, Filter, FitCategories, FitStats, Rename,
    Scale, ScaleMethod, Select, Split, UnknownCategory,
};
use fuseflow::pipeline::{Pipeline, Step, StepContext, Table};
use fuseflow::{Error, RunOptions};

// ================================================================ helpers

/// `data -> step` as a pipeline; the step's single output.
fn run_step(step: impl Step + 'static, data: Table) -> fuseflow::Result<Table> {
    let mut p = Pipeline::new("t");
    p.add("src", MemorySource::new(data));
    p.add("step", step).input("data", "src");
    Ok(p.run()?.output("step")?.clone())
}

/// `fit(train)` feeding `step(data, <fit port>)`.
fn run_fitted(
    fit: impl Step + 'static,
    step: impl Step + 'static,
    stats_port: &str,
    train: Table,
    data: Table,
) -> fuseflow::Result<Table> {
    let mut p = Pipeline::new("t");
    p.add("train", MemorySource::new(train));
    p.add("data", MemorySource::new(data));
    p.add("fit", fit).input("data", "train");
    p.add("step", step)
        .input("data", "data")
        .input(stats_port, "fit");
    Ok(p.run()?.output("step")?.clone())
}

/// One fitted statistics row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    count: i64,
    nulls: i64,
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
    median: Option<f64>,
    q1: Option<f64>,
    q3: Option<f64>,
}

fn fit_stats(fit: FitStats, data: Table) -> fuseflow::Result<HashMap<String, Stats>> {
    let t = run_step(fit, data)?;
    assert_eq!(
        names(&t),
        [
            "column", "count", "nulls", "mean", "std", "min", "max", "median", "q1", "q3"
        ]
    );
    let columns = str_column(&t, "column");
    let f = |name: &str| f64_column(&t, name);
    let (mean, std, min, max) = (f("mean"), f("std"), f("min"), f("max"));
    let (median, q1, q3) = (f("median"), f("q1"), f("q3"));
    let (count, nulls) = (i64_column(&t, "count"), i64_column(&t, "nulls"));
    Ok((0..t.num_rows())
        .map(|i| {
            (
                columns[i].clone().unwrap(),
                Stats {
                    count: count[i].unwrap(),
                    nulls: nulls[i].unwrap(),
                    mean: mean[i].unwrap(),
                    std: std[i].unwrap(),
                    min: min[i].unwrap(),
                    max: max[i].unwrap(),
                    median: median[i],
                    q1: q1[i],
                    q3: q3[i],
                },
            )
        })
        .collect())
}

/// Naive f64 statistics (two passes, population std) and numpy-style quartiles.
fn naive_stats(values: &[Option<f64>]) -> Stats {
    let v: Vec<f64> = values.iter().flatten().copied().collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    let mut sorted = v.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
    };
    Stats {
        count: v.len() as i64,
        nulls: (values.len() - v.len()) as i64,
        mean,
        std,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        median: Some(q(0.5)),
        q1: Some(q(0.25)),
        q3: Some(q(0.75)),
    }
}

fn assert_stats_close(actual: &Stats, expected: &Stats, what: &str) {
    assert_eq!(actual.count, expected.count, "{what}: count");
    assert_eq!(actual.nulls, expected.nulls, "{what}: nulls");
    let pairs = [
        ("mean", Some(actual.mean), Some(expected.mean)),
        ("std", Some(actual.std), Some(expected.std)),
        ("min", Some(actual.min), Some(expected.min)),
        ("max", Some(actual.max), Some(expected.max)),
        ("median", actual.median, expected.median),
        ("q1", actual.q1, expected.q1),
        ("q3", actual.q3, expected.q3),
    ];
    for (name, a, e) in pairs {
        match (a, e) {
            (Some(a), Some(e)) => assert!(close(a, e, 1e-12, 1e-12), "{what}: {name} {a} vs {e}"),
            (a, e) => assert_eq!(a, e, "{what}: {name}"),
        }
    }
}

/// The small table most tests use: x f64, n i32, f f32, s utf8, with nulls.
fn small() -> Table {
    table(vec![
        (
            "x",
            f64_array(&[Some(1.0), Some(2.0), None, Some(4.0), Some(10.0)]),
        ),
        ("n", i32_array(&[Some(3), None, Some(-1), Some(0), Some(8)])),
        (
            "f",
            f32_array(&[Some(0.5), Some(1.5), Some(2.5), None, Some(-0.5)]),
        ),
        (
            "s",
            str_array_of(&[Some("b"), None, Some("a"), Some("c"), Some("a")]),
        ),
    ])
}

fn empty_like(t: &Table) -> Table {
    Table::try_new(t.schema().clone(), vec![t.concat().unwrap().slice(0, 0)]).unwrap()
}

fn no_batches_like(t: &Table) -> Table {
    Table::empty(t.schema().clone())
}

fn first_row(t: &Table) -> Table {
    Table::from_batch(t.concat().unwrap().slice(0, 1))
}

// ========================================================= select / rename

#[test]
fn select_keeps_named_columns_in_the_given_order() {
    let out = run_step(Select::new(["s", "x"]), small()).unwrap();
    assert_eq!(names(&out), ["s", "x"]);
    assert_eq!(str_column(&out, "s"), str_column(&small(), "s"));
    assert_eq!(f64_column(&out, "x"), f64_column(&small(), "x"));

    let err = expect_err(run_step(Select::new(["x", "nope"]), small()), "select nope");
    assert!(
        matches!(&err, Error::Schema { step, column, .. } if step == "step" && column == "nope"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "'nope'", "x, n, f, s"]);

    // Empty input keeps the schema.
    let out = run_step(Select::new(["f"]), empty_like(&small())).unwrap();
    assert_eq!((names(&out), out.num_rows()), (vec!["f".to_string()], 0));
}

/// A select after row-local steps fuses into their kernel, which then
/// computes only the kept columns; the result is the unfused one.
#[test]
fn select_fuses_with_the_steps_before_it_and_keeps_only_its_columns() {
    let build = || {
        let mut p = Pipeline::new("pushdown");
        p.add("raw", MemorySource::new(small()));
        p.add(
            "wide",
            Derive::new([("y", col("x") * lit(2.0)), ("x", col("x") + lit(1.0))]),
        )
        .input("data", "raw");
        p.add("picked", Select::new(["y", "s"]))
            .input("data", "wide");
        p
    };
    // Fused on purpose, also when the suite runs with FUSEFLOW_FUSE=0.
    let fused = build()
        .run_with(&RunOptions {
            fuse: true,
            ..RunOptions::default()
        })
        .unwrap();
    let group = &fused.plan.groups;
    assert_eq!(group.len(), 1, "{}", fused.plan);
    assert_eq!(group[0].members.len(), 2, "{}", fused.plan);
    let unfused = build()
        .run_with(&RunOptions {
            fuse: false,
            ..RunOptions::default()
        })
        .unwrap();
    for run in [&fused, &unfused] {
        let out = run.output("picked").unwrap();
        assert_eq!(names(out), ["y", "s"]);
        assert_eq!(
            f64_column(out, "y"),
            vec![Some(2.0), Some(4.0), None, Some(8.0), Some(20.0)]
        );
        assert_eq!(str_column(out, "s"), str_column(&small(), "s"));
    }
    // A kept column the chain never had names the step.
    let mut p = Pipeline::new("pushdown");
    p.add("raw", MemorySource::new(small()));
    p.add("wide", Derive::new([("y", col("x") * lit(2.0))]))
        .input("data", "raw");
    p.add("picked", Select::new(["nope"])).input("data", "wide");
    let err = p.run().unwrap_err().to_string();
    assert!(err.contains("picked") && err.contains("nope"), "{err}");
}

#[test]
fn rename_renames_in_place_and_names_conflicts() {
    let out = run_step(Rename::new([("x", "price"), ("s", "kind")]), small()).unwrap();
    assert_eq!(names(&out), ["price", "n", "f", "kind"]);
    assert_eq!(f64_column(&out, "price"), f64_column(&small(), "x"));

    let err = expect_err(
        run_step(Rename::new([("missing", "y")]), small()),
        "rename missing",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "missing"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "'missing'"]);

    let err = expect_err(
        run_step(Rename::new([("x", "n")]), small()),
        "rename onto n",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "n"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "'n'", "two columns"]);

    // Swapping two names is fine.
    let out = run_step(Rename::new([("x", "n"), ("n", "x")]), small()).unwrap();
    assert_eq!(names(&out), ["n", "x", "f", "s"]);
    assert_eq!(f64_column(&out, "n"), f64_column(&small(), "x"));
}

// ================================================================ filter

#[test]
fn filter_drops_rows_where_the_predicate_is_false_or_null() {
    let data = table(vec![
        (
            "x",
            f64_array(&[
                Some(1.0),
                None,
                Some(-1.0),
                Some(f64::NAN),
                Some(3.0),
                Some(0.0),
            ]),
        ),
        (
            "id",
            i64_array(&[Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)]),
        ),
        (
            "p",
            bool_array(&[Some(true), Some(true), None, Some(false), None, Some(true)]),
        ),
    ]);
    let out = run_step(Filter::new(col("x").gt(0.0)), data.clone()).unwrap();
    assert_eq!(i64_column(&out, "id"), [Some(0), Some(4)]);
    assert_eq!(f64_column(&out, "x"), [Some(1.0), Some(3.0)]);

    // A nullable boolean column as the predicate: null rows are dropped.
    let out = run_step(Filter::new(col("p")), data.clone()).unwrap();
    assert_eq!(i64_column(&out, "id"), [Some(0), Some(1), Some(5)]);

    // Kleene: `p or x > 0` is true for row 4 although p is null there.
    let out = run_step(Filter::new(col("p").or(col("x").gt(0.0))), data.clone()).unwrap();
    assert_eq!(i64_column(&out, "id"), [Some(0), Some(1), Some(4), Some(5)]);

    // A predicate without any null (keeps everything / nothing).
    let out = run_step(Filter::new(col("id").gt_eq(0)), data.clone()).unwrap();
    assert_eq!(out.num_rows(), 6);
    let out = run_step(Filter::new(lit(false)), data.clone()).unwrap();
    assert_eq!((out.num_rows(), names(&out)), (0, names(&data)));

    // Across chunks, row order is kept.
    let big = batch(vec![(
        "v",
        i64_array(&(0..1000).map(Some).collect::<Vec<_>>()),
    )]);
    let out = run_step(
        Filter::new(col("v").lt(500).and(col("v").gt_eq(490))),
        chunked(&big, 7),
    )
    .unwrap();
    assert_eq!(
        i64_column(&out, "v"),
        (490..500).map(Some).collect::<Vec<_>>()
    );

    // Empty and one-row inputs.
    assert_eq!(
        run_step(Filter::new(col("x").gt(0.0)), empty_like(&data))
            .unwrap()
            .num_rows(),
        0
    );
    assert_eq!(
        run_step(Filter::new(col("x").gt(0.0)), no_batches_like(&data))
            .unwrap()
            .num_rows(),
        0
    );
    assert_eq!(
        run_step(Filter::new(col("x").gt(0.0)), first_row(&data))
            .unwrap()
            .num_rows(),
        1
    );

    // Non-boolean predicate.
    let err = expect_err(
        run_step(Filter::new(col("x") + 1.0), data),
        "numeric predicate",
    );
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
    assert_msg(&err, &["'step'", "boolean"]);
}

// ================================================================ derive

#[test]
fn derive_replaces_columns_in_place_and_appends_new_ones() {
    let out = run_step(
        Derive::new([
            ("n", col("n") * 2.5),
            ("sum", col("x") + col("n")),
            ("x", col("x").fill_null(-1.0)),
        ]),
        small(),
    )
    .unwrap();
    assert_eq!(names(&out), ["x", "n", "f", "s", "sum"]);
    // The replaced i32 column changes type in place.
    assert_eq!(dtype_of(&out, "n"), DataType::Float64);
    assert_eq!(
        f64_column(&out, "n"),
        [Some(7.5), None, Some(-2.5), Some(0.0), Some(20.0)]
    );
    // Every expression reads the input, not the other derived columns.
    assert_eq!(
        f64_column(&out, "sum"),
        [Some(4.0), None, None, Some(4.0), Some(18.0)]
    );
    assert_eq!(
        f64_column(&out, "x"),
        [Some(1.0), Some(2.0), Some(-1.0), Some(4.0), Some(10.0)]
    );
    // Untouched columns pass through.
    assert_eq!(str_column(&out, "s"), str_column(&small(), "s"));

    // Empty input: the planned schema, no rows.
    let out = run_step(Derive::new([("y", col("x") * 2.0)]), empty_like(&small())).unwrap();
    assert_eq!((out.num_rows(), names(&out).len()), (0, 5));

    let err = expect_err(
        run_step(Derive::new([("y", col("s") * 2.0)]), small()),
        "utf8 * 2",
    );
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
    assert_msg(&err, &["'step'", "(s * 2.0)"]);
    let err = expect_err(
        run_step(Derive::new([("y", col("zz") + 1)]), small()),
        "missing column",
    );
    assert_msg(&err, &["'step'", "zz"]);
}

// ================================================================ fit_stats

#[test]
fn fit_stats_match_hand_computed_values() {
    let stats = fit_stats(FitStats::new(["x", "n", "f"]).with_quantiles(), small()).unwrap();
    // x = 1, 2, null, 4, 10
    let x = &stats["x"];
    assert_eq!((x.count, x.nulls), (4, 1));
    assert_eq!((x.mean, x.min, x.max), (4.25, 1.0, 10.0));
    assert!(
        (x.std - 12.1875f64.sqrt()).abs() < 1e-12,
        "population std: {}",
        x.std
    );
    assert_eq!((x.median, x.q1, x.q3), (Some(3.0), Some(1.75), Some(5.5)));
    // n = 3, null, -1, 0, 8 (i32)
    let n = &stats["n"];
    assert_eq!(
        (n.count, n.nulls, n.mean, n.min, n.max),
        (4, 1, 2.5, -1.0, 8.0)
    );
    assert_eq!((n.median, n.q1, n.q3), (Some(1.5), Some(-0.25), Some(4.25)));
    // f = 0.5, 1.5, 2.5, null, -0.5 (f32)
    let f = &stats["f"];
    assert_eq!(
        (f.count, f.nulls, f.mean, f.min, f.max),
        (4, 1, 1.0, -0.5, 2.5)
    );
    assert!((f.std - 1.25f64.sqrt()).abs() < 1e-12);

    // Without quantiles the quartile columns are null.
    let stats = fit_stats(FitStats::new(["x"]), small()).unwrap();
    assert_eq!(
        (stats["x"].median, stats["x"].q1, stats["x"].q3),
        (None, None, None)
    );
    assert_eq!(stats["x"].mean, 4.25);
}

#[test]
fn fit_stats_on_many_chunks_match_a_naive_two_pass_computation() {
    let mut rng = Rng::new(42);
    let n = 10_007;
    let x: Vec<Option<f64>> = (0..n)
        .map(|_| (!rng.chance(0.1)).then(|| rng.range(-1e3, 1e3) + 1e6))
        .collect();
    let i: Vec<Option<i32>> = (0..n)
        .map(|_| (!rng.chance(0.1)).then(|| rng.below(2001) as i32 - 1000))
        .collect();
    let k: Vec<Option<i64>> = (0..n)
        .map(|_| (!rng.chance(0.1)).then(|| rng.below(1 << 40) as i64))
        .collect();
    let f: Vec<Option<f32>> = (0..n)
        .map(|_| (!rng.chance(0.1)).then(|| rng.range(0.0, 1.0) as f32))
        .collect();
    // Null for the first blocks (more than 2 kernel blocks), values after.
    let sparse: Vec<Option<f64>> = (0..n)
        .map(|r| (r >= 5000 && r % 3 != 0).then_some((r % 17) as f64 - 8.0))
        .collect();
    let b = batch(vec![
        ("x", f64_array(&x)),
        ("i", i32_array(&i)),
        ("k", i64_array(&k)),
        ("f", f32_array(&f)),
        ("sparse", f64_array(&sparse)),
    ]);
    let expected: HashMap<&str, Stats> = HashMap::from([
        ("x", naive_stats(&x)),
        ("sparse", naive_stats(&sparse)),
        (
            "i",
            naive_stats(&i.iter().map(|v| v.map(f64::from)).collect::<Vec<_>>()),
        ),
        (
            "k",
            naive_stats(&k.iter().map(|v| v.map(|v| v as f64)).collect::<Vec<_>>()),
        ),
        (
            "f",
            naive_stats(&f.iter().map(|v| v.map(f64::from)).collect::<Vec<_>>()),
        ),
    ]);
    let fit = || FitStats::new(["x", "i", "k", "f", "sparse"]).with_quantiles();
    let one = fit_stats(fit(), Table::from_batch(b.clone())).unwrap();
    let seven = fit_stats(fit(), chunked(&b, 7)).unwrap();
    // Sliced chunks: validity bitmaps that start mid-byte.
    let sliced = Table::try_new(
        b.schema(),
        vec![b.slice(0, 3), b.slice(3, 5000), b.slice(5003, 5004)],
    )
    .unwrap();
    let sliced = fit_stats(fit(), sliced).unwrap();
    for (name, e) in &expected {
        assert_stats_close(&one[*name], e, &format!("{name}, one batch"));
        assert_stats_close(&seven[*name], e, &format!("{name}, seven batches"));
        assert_stats_close(&sliced[*name], e, &format!("{name}, sliced batches"));
    }
}

#[test]
fn fit_stats_fail_on_all_null_empty_and_nan_columns_naming_them() {
    let data = table(vec![
        (
            "ok",
            f64_array(&[Some(1.0), Some(2.0), Some(3.0), Some(4.0), None]),
        ),
        ("empty", f64_array(&[None, None, None, None, None])),
        (
            "nan",
            f64_array(&[Some(1.0), Some(f64::NAN), None, Some(f64::NAN), Some(2.0)]),
        ),
    ]);
    let err = expect_err(
        fit_stats(FitStats::new(["ok", "empty"]), data.clone()),
        "all null",
    );
    assert!(
        matches!(&err, Error::Schema { step, column, .. } if step == "step" && column == "empty"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "'empty'", "no non-null values"]);

    let err = expect_err(fit_stats(FitStats::new(["nan"]), data.clone()), "NaN");
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "nan"),
        "{err:?}"
    );
    assert_msg(&err, &["'nan'", "2 of 5 values are NaN"]);

    // NaN in f32 too.
    let f = table(vec![("g", f32_array(&[Some(f32::NAN), Some(1.0)]))]);
    let err = expect_err(fit_stats(FitStats::new(["g"]), f), "f32 NaN");
    assert_msg(&err, &["'g'", "1 of 2 values are NaN"]);

    // Zero rows: nothing to fit.
    for empty in [empty_like(&data), no_batches_like(&data)] {
        let err = expect_err(fit_stats(FitStats::new(["ok"]), empty), "0 rows");
        assert!(
            matches!(&err, Error::Schema { column, .. } if column == "ok"),
            "{err:?}"
        );
        assert_msg(&err, &["'ok'", "0 rows"]);
    }

    // One row: std 0, quartiles all equal to the value.
    let one = fit_stats(FitStats::new(["ok"]).with_quantiles(), first_row(&data)).unwrap();
    let s = one["ok"];
    assert_eq!(
        (s.count, s.mean, s.std, s.min, s.max),
        (1, 1.0, 0.0, 1.0, 1.0)
    );
    assert_eq!((s.median, s.q1, s.q3), (Some(1.0), Some(1.0), Some(1.0)));

    // Validation: non-numeric, missing, or no columns.
    let err = expect_err(fit_stats(FitStats::new(["s"]), small()), "utf8");
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "s"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "'s'", "numeric"]);
    let err = expect_err(fit_stats(FitStats::new(["zz"]), small()), "missing");
    assert_msg(&err, &["'step'", "'zz'"]);
    let err = expect_err(
        fit_stats(FitStats::new(Vec::<String>::new()), small()),
        "none",
    );
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
}

// ================================================================ scale

fn scaled(
    method: ScaleMethod,
    fit: FitStats,
    train: Table,
    data: Table,
) -> fuseflow::Result<Table> {
    run_fitted(fit, Scale::new(method), "stats", train, data)
}

#[test]
fn zscore_minmax_and_robust_match_hand_computed_values() {
    let fit = || FitStats::new(["x", "n", "f"]).with_quantiles();
    let x = [Some(1.0), Some(2.0), None, Some(4.0), Some(10.0)];
    let x_of = |f: &dyn Fn(f64) -> f64| x.iter().map(|v| v.map(f)).collect::<Vec<_>>();

    // zscore: mean 4.25, population std sqrt(12.1875).
    let out = scaled(ScaleMethod::ZScore, fit(), small(), small()).unwrap();
    assert_eq!(names(&out), names(&small()));
    let std = 12.1875f64.sqrt();
    assert_f64_close(
        &f64_column(&out, "x"),
        &x_of(&|v| (v - 4.25) / std),
        "zscore x",
    );
    // i32 columns become f64; n: mean 2.5, population std 3.5.
    assert_eq!(dtype_of(&out, "n"), DataType::Float64);
    let n_std = 3.5;
    assert_f64_close(
        &f64_column(&out, "n"),
        &[
            Some(0.5 / n_std),
            None,
            Some(-3.5 / n_std),
            Some(-2.5 / n_std),
            Some(5.5 / n_std),
        ],
        "zscore n",
    );
    // f32 columns stay f32 and are computed in f32.
    assert_eq!(dtype_of(&out, "f"), DataType::Float32);
    let f_std = 1.25f64.sqrt() as f32;
    let expected_f: Vec<Option<f32>> = [Some(0.5f32), Some(1.5), Some(2.5), None, Some(-0.5)]
        .iter()
        .map(|v| v.map(|v| (v - 1.0) / f_std))
        .collect();
    let got_f = f32_column(&out, "f");
    for (g, e) in got_f.iter().zip(&expected_f) {
        match (g, e) {
            (Some(g), Some(e)) => assert!(
                close(f64::from(*g), f64::from(*e), 1e-6, 1e-6),
                "{g} vs {e}"
            ),
            _ => assert_eq!(g, e),
        }
    }
    // Unscaled columns pass through.
    assert_eq!(str_column(&out, "s"), str_column(&small(), "s"));

    // minmax: (x - 1) / 9.
    let out = scaled(ScaleMethod::MinMax, fit(), small(), small()).unwrap();
    assert_f64_close(
        &f64_column(&out, "x"),
        &x_of(&|v| (v - 1.0) / 9.0),
        "minmax x",
    );
    assert_f64_close(
        &f64_column(&out, "n"),
        &[Some(4.0 / 9.0), None, Some(0.0), Some(1.0 / 9.0), Some(1.0)],
        "minmax n",
    );

    // robust: (x - median 3) / (q3 5.5 - q1 1.75).
    let out = scaled(ScaleMethod::Robust, fit(), small(), small()).unwrap();
    assert_f64_close(
        &f64_column(&out, "x"),
        &x_of(&|v| (v - 3.0) / 3.75),
        "robust x",
    );
    // n: median 1.5, q1 -0.25, q3 4.25.
    assert_f64_close(
        &f64_column(&out, "n"),
        &[
            Some(1.5 / 4.5),
            None,
            Some(-2.5 / 4.5),
            Some(-1.5 / 4.5),
            Some(6.5 / 4.5),
        ],
        "robust n",
    );
}

#[test]
fn scale_applies_training_statistics_to_other_data() {
    let train = table(vec![("x", f64_array(&[Some(0.0), Some(10.0)]))]);
    let data = table(vec![(
        "x",
        f64_array(&[Some(5.0), None, Some(20.0), Some(f64::NAN)]),
    )]);
    let out = scaled(
        ScaleMethod::MinMax,
        FitStats::new(["x"]),
        train.clone(),
        data.clone(),
    )
    .unwrap();
    let got = f64_column(&out, "x");
    assert_eq!(&got[..3], [Some(0.5), None, Some(2.0)]);
    assert!(got[3].unwrap().is_nan(), "NaN stays NaN");

    // Empty and one-row data.
    let out = scaled(
        ScaleMethod::ZScore,
        FitStats::new(["x"]),
        train.clone(),
        empty_like(&data),
    )
    .unwrap();
    assert_eq!((out.num_rows(), names(&out)), (0, vec!["x".to_string()]));
    let out = scaled(
        ScaleMethod::ZScore,
        FitStats::new(["x"]),
        train,
        first_row(&data),
    )
    .unwrap();
    assert_eq!(f64_column(&out, "x"), [Some(0.0)]);
}

#[test]
fn scaling_a_constant_column_only_centres_it() {
    let data = table(vec![
        ("c", f64_array(&[Some(3.0), Some(3.0), None, Some(3.0)])),
        ("k", i32_array(&[Some(7), Some(7), Some(7), None])),
    ]);
    let fit = || FitStats::new(["c", "k"]).with_quantiles();
    for method in [
        ScaleMethod::ZScore,
        ScaleMethod::MinMax,
        ScaleMethod::Robust,
    ] {
        let out = scaled(method, fit(), data.clone(), data.clone()).unwrap();
        assert_eq!(
            f64_column(&out, "c"),
            [Some(0.0), Some(0.0), None, Some(0.0)],
            "{method:?}"
        );
        assert_eq!(
            f64_column(&out, "k"),
            [Some(0.0), Some(0.0), Some(0.0), None],
            "{method:?}"
        );
        // Other data is centred, not divided by zero.
        let other = table(vec![
            ("c", f64_array(&[Some(5.0)])),
            ("k", i32_array(&[Some(4)])),
        ]);
        let out = scaled(method, fit(), data.clone(), other).unwrap();
        assert_eq!(f64_column(&out, "c"), [Some(2.0)], "{method:?}");
        assert_eq!(f64_column(&out, "k"), [Some(-3.0)], "{method:?}");
    }
    // A single training row is constant too.
    let out = scaled(ScaleMethod::ZScore, fit(), first_row(&data), data.clone()).unwrap();
    assert_eq!(
        f64_column(&out, "c"),
        [Some(0.0), Some(0.0), None, Some(0.0)]
    );
}

#[test]
fn robust_scaling_without_quantiles_is_an_error() {
    let err = expect_err(
        scaled(ScaleMethod::Robust, FitStats::new(["x"]), small(), small()),
        "robust without quantiles",
    );
    assert!(
        matches!(&err, Error::InvalidParameter { step, .. } if step == "step"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "'x'", "robust", "quantiles"]);
    // zscore and minmax do not need them.
    scaled(ScaleMethod::ZScore, FitStats::new(["x"]), small(), small()).unwrap();
    scaled(ScaleMethod::MinMax, FitStats::new(["x"]), small(), small()).unwrap();
}

#[test]
fn scale_rejects_a_non_numeric_column_and_a_non_stats_input() {
    // Statistics of a numeric `x`, applied to data where `x` is a string.
    let strings = table(vec![("x", str_array_of(&[Some("a")]))]);
    let err = expect_err(
        scaled(ScaleMethod::ZScore, FitStats::new(["x"]), small(), strings),
        "scale utf8",
    );
    assert!(
        matches!(&err, Error::Schema { step, column, .. } if step == "step" && column == "x"),
        "{err:?}"
    );
    assert_msg(&err, &["numeric"]);

    // A plain table on the stats port.
    let mut p = Pipeline::new("t");
    p.add("src", MemorySource::new(small()));
    p.add("step", Scale::new(ScaleMethod::ZScore))
        .input("data", "src")
        .input("stats", "src");
    let err = expect_err(p.validate(), "stats from a plain table");
    assert_msg(&err, &["'step'", "fit_stats"]);
}

// ================================================================ fill_null

#[test]
fn fill_null_with_a_constant_keeps_types_and_nan() {
    let data = table(vec![
        ("x", f64_array(&[Some(1.0), None, Some(f64::NAN)])),
        ("n", i32_array(&[None, Some(2), None])),
        ("f", f32_array(&[None, Some(0.25), None])),
        ("s", str_array_of(&[Some("a"), None, Some("")])),
        ("p", bool_array(&[None, Some(false), Some(true)])),
    ]);
    let out = run_step(
        FillNull::new(["x", "n", "f"], FillValue::Constant(Scalar::Int(-1))),
        data.clone(),
    )
    .unwrap();
    assert_eq!(names(&out), names(&data));
    let x = f64_column(&out, "x");
    assert_eq!(&x[..2], [Some(1.0), Some(-1.0)]);
    assert!(x[2].unwrap().is_nan(), "NaN is not a null");
    assert_eq!(dtype_of(&out, "n"), DataType::Int32);
    assert_eq!(i32_column(&out, "n"), [Some(-1), Some(2), Some(-1)]);
    assert_eq!(dtype_of(&out, "f"), DataType::Float32);
    assert_eq!(f32_column(&out, "f"), [Some(-1.0), Some(0.25), Some(-1.0)]);
    assert_eq!(str_column(&out, "s"), str_column(&data, "s"), "untouched");

    let out = run_step(
        FillNull::new(["f"], FillValue::Constant(Scalar::Float(0.1))),
        data.clone(),
    )
    .unwrap();
    assert_eq!(
        f32_column(&out, "f"),
        [Some(0.1f32), Some(0.25), Some(0.1f32)]
    );

    let out = run_step(
        FillNull::new(["s"], FillValue::Constant(Scalar::Str("missing".into()))),
        data.clone(),
    )
    .unwrap();
    assert_eq!(
        str_column(&out, "s"),
        [
            Some("a".to_string()),
            Some("missing".to_string()),
            Some(String::new())
        ]
    );
    let out = run_step(
        FillNull::new(["p"], FillValue::Constant(Scalar::Bool(true))),
        data.clone(),
    )
    .unwrap();
    assert_eq!(
        bool_column(&out, "p"),
        [Some(true), Some(false), Some(true)]
    );

    // A constant that does not fit the column's type.
    let err = expect_err(
        run_step(
            FillNull::new(["s"], FillValue::Constant(Scalar::Int(0))),
            data.clone(),
        ),
        "fill utf8 with 0",
    );
    assert_msg(&err, &["'step'"]);
    let err = expect_err(
        run_step(
            FillNull::new(["zz"], FillValue::Constant(Scalar::Int(0))),
            data.clone(),
        ),
        "fill missing column",
    );
    assert_msg(&err, &["'step'", "zz"]);

    // Empty and one-row inputs.
    let fill = || FillNull::new(["n"], FillValue::Constant(Scalar::Int(0)));
    assert_eq!(run_step(fill(), empty_like(&data)).unwrap().num_rows(), 0);
    assert_eq!(
        i32_column(&run_step(fill(), first_row(&data)).unwrap(), "n"),
        [Some(0)]
    );
}

#[test]
fn fill_null_with_the_fitted_mean() {
    let train = small();
    let data = table(vec![
        ("x", f64_array(&[None, Some(7.0), None])),
        ("f", f32_array(&[None, None, Some(3.0)])),
        ("n", i32_array(&[None, Some(1), Some(2)])),
    ]);
    let out = run_fitted(
        FitStats::new(["x", "f", "n"]),
        FillNull::new(["x", "f", "n"], FillValue::Mean),
        "stats",
        train,
        data,
    )
    .unwrap();
    assert_eq!(f64_column(&out, "x"), [Some(4.25), Some(7.0), Some(4.25)]);
    assert_eq!(f32_column(&out, "f"), [Some(1.0), Some(1.0), Some(3.0)]);
    // The mean of an integer column is fractional: the column becomes f64.
    assert_eq!(dtype_of(&out, "n"), DataType::Float64);
    assert_eq!(f64_column(&out, "n"), [Some(2.5), Some(1.0), Some(2.0)]);

    // A column the statistics do not cover.
    let err = expect_err(
        run_fitted(
            FitStats::new(["x"]),
            FillNull::new(["x", "f"], FillValue::Mean),
            "stats",
            small(),
            small(),
        ),
        "mean of unfitted column",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "f"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "'f'", "fit_stats"]);

    // The stats input must be connected.
    let mut p = Pipeline::new("t");
    p.add("src", MemorySource::new(small()));
    p.add("step", FillNull::new(["x"], FillValue::Mean))
        .input("data", "src");
    let err = expect_err(p.validate(), "unconnected stats");
    assert!(
        matches!(&err, Error::MissingInput { input, .. } if input == "stats"),
        "{err:?}"
    );
}

// ========================================================== categories

fn categories_of(t: &Table) -> Vec<(String, String, i32)> {
    let (c, v, i) = (
        str_column(t, "column"),
        str_column(t, "category"),
        i32_column(t, "index"),
    );
    (0..t.num_rows())
        .map(|r| (c[r].clone().unwrap(), v[r].clone().unwrap(), i[r].unwrap()))
        .collect()
}

fn encoded(
    method: EncodeMethod,
    unknown: UnknownCategory,
    train: Table,
    data: Table,
) -> fuseflow::Result<Table> {
    run_fitted(
        FitCategories::new(["s"]),
        Encode::new(method, unknown),
        "categories",
        train,
        data,
    )
}

fn strs(v: &[Option<&str>]) -> Table {
    table(vec![
        (
            "id",
            i32_array(&(0..v.len() as i32).map(Some).collect::<Vec<_>>()),
        ),
        ("s", str_array_of(v)),
        ("z", f64_array(&vec![Some(1.0); v.len()])),
    ])
}

#[test]
fn fit_categories_sorts_categories_and_skips_nulls() {
    let data = table(vec![
        (
            "s",
            str_array_of(&[Some("b"), None, Some("a"), Some("c"), Some("a")]),
        ),
        ("t", str_array_of(&[None, None, Some("y"), None, Some("x")])),
    ]);
    let out = run_step(
        FitCategories::new(["s", "t"]),
        chunked(&data.concat().unwrap(), 3),
    )
    .unwrap();
    let owned = |c: &str, v: &str, i| (c.to_string(), v.to_string(), i);
    assert_eq!(
        categories_of(&out),
        [
            owned("s", "a", 0),
            owned("s", "b", 1),
            owned("s", "c", 2),
            owned("t", "x", 0),
            owned("t", "y", 1)
        ]
    );
    let err = expect_err(
        run_step(FitCategories::new(["x"]), small()),
        "numeric categories",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "x"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "utf8"]);
}

#[test]
fn index_encoding_with_unseen_and_null_categories() {
    let train = strs(&[Some("b"), None, Some("a"), Some("c"), Some("a")]);
    let out = encoded(
        EncodeMethod::Index,
        UnknownCategory::Error,
        train.clone(),
        train.clone(),
    )
    .unwrap();
    assert_eq!(names(&out), ["id", "s", "z"]);
    assert_eq!(dtype_of(&out, "s"), DataType::Int32);
    assert_eq!(
        i32_column(&out, "s"),
        [Some(1), None, Some(0), Some(2), Some(0)]
    );

    let test = strs(&[Some("c"), Some("zebra"), None, Some("a")]);
    let out = encoded(
        EncodeMethod::Index,
        UnknownCategory::Ignore,
        train.clone(),
        test.clone(),
    )
    .unwrap();
    assert_eq!(i32_column(&out, "s"), [Some(2), None, None, Some(0)]);

    let err = expect_err(
        encoded(
            EncodeMethod::Index,
            UnknownCategory::Error,
            train.clone(),
            test,
        ),
        "unseen with error policy",
    );
    assert!(
        matches!(&err, Error::Schema { step, column, .. } if step == "step" && column == "s"),
        "{err:?}"
    );
    assert_msg(&err, &["\"zebra\"", "not seen"]);

    // Nulls alone are not unseen categories.
    let nulls = strs(&[None, None]);
    let out = encoded(
        EncodeMethod::Index,
        UnknownCategory::Error,
        train.clone(),
        nulls,
    )
    .unwrap();
    assert_eq!(i32_column(&out, "s"), [None, None]);

    // Empty and one-row inputs.
    let out = encoded(
        EncodeMethod::Index,
        UnknownCategory::Error,
        train.clone(),
        empty_like(&train),
    )
    .unwrap();
    assert_eq!((out.num_rows(), dtype_of(&out, "s")), (0, DataType::Int32));
    let out = encoded(
        EncodeMethod::Index,
        UnknownCategory::Error,
        train.clone(),
        first_row(&train),
    )
    .unwrap();
    assert_eq!(i32_column(&out, "s"), [Some(1)]);
}

#[test]
fn one_hot_encoding_with_unseen_and_null_categories() {
    let train = strs(&[Some("b"), None, Some("a"), Some("c"), Some("a")]);
    let test = strs(&[Some("c"), Some("zebra"), None, Some("a")]);
    let out = encoded(
        EncodeMethod::OneHot,
        UnknownCategory::Ignore,
        train.clone(),
        test.clone(),
    )
    .unwrap();
    // The indicator columns replace `s` in place, in category order.
    assert_eq!(names(&out), ["id", "s=a", "s=b", "s=c", "z"]);
    for c in ["s=a", "s=b", "s=c"] {
        assert_eq!(dtype_of(&out, c), DataType::Float32);
    }
    assert_eq!(
        f32_column(&out, "s=a"),
        [Some(0.0), Some(0.0), Some(0.0), Some(1.0)]
    );
    assert_eq!(f32_column(&out, "s=b"), [Some(0.0); 4]);
    assert_eq!(
        f32_column(&out, "s=c"),
        [Some(1.0), Some(0.0), Some(0.0), Some(0.0)]
    );

    let err = expect_err(
        encoded(
            EncodeMethod::OneHot,
            UnknownCategory::Error,
            train.clone(),
            test,
        ),
        "one-hot unseen with error policy",
    );
    assert!(
        matches!(&err, Error::Schema { column, .. } if column == "s"),
        "{err:?}"
    );
    assert_msg(&err, &["'step'", "\"zebra\""]);

    // Many chunks give the same result as one.
    let mut rng = Rng::new(9);
    let many: Vec<Option<String>> = (0..3000)
        .map(|_| (!rng.chance(0.1)).then(|| rng.pick(&["a", "b", "c"]).to_string()))
        .collect();
    let many_refs: Vec<Option<&str>> = many.iter().map(|s| s.as_deref()).collect();
    let big = strs(&many_refs).concat().unwrap();
    let one = encoded(
        EncodeMethod::OneHot,
        UnknownCategory::Error,
        train.clone(),
        Table::from_batch(big.clone()),
    )
    .unwrap();
    let seven = encoded(
        EncodeMethod::OneHot,
        UnknownCategory::Error,
        train.clone(),
        chunked(&big, 7),
    )
    .unwrap();
    assert_eq!(one.concat().unwrap(), seven.concat().unwrap());
    let expected_a: Vec<Option<f32>> = many
        .iter()
        .map(|s| Some(if s.as_deref() == Some("a") { 1.0 } else { 0.0 }))
        .collect();
    assert_eq!(f32_column(&one, "s=a"), expected_a);

    // Zero rows (with and without a batch): the one-hot schema all the same.
    for empty in [empty_like(&train), no_batches_like(&train)] {
        let out = encoded(
            EncodeMethod::OneHot,
            UnknownCategory::Error,
            train.clone(),
            empty,
        )
        .unwrap();
        assert_eq!(
            (out.num_rows(), names(&out)),
            (
                0,
                vec![
                    "id".into(),
                    "s=a".into(),
                    "s=b".into(),
                    "s=c".into(),
                    "z".into()
                ]
            )
        );
    }
}

#[test]
fn steps_after_a_one_hot_encoding_see_the_fitted_columns() {
    // The one-hot schema is only known after fitting; a downstream step using
    // an indicator column must validate and run.
    let mut p = Pipeline::new("t");
    p.add(
        "src",
        MemorySource::new(strs(&[Some("a"), Some("b"), None])),
    );
    p.add("cats", FitCategories::new(["s"]))
        .input("data", "src");
    p.add(
        "enc",
        Encode::new(EncodeMethod::OneHot, UnknownCategory::Error),
    )
    .input("data", "src")
    .input("categories", "cats");
    p.add("use", Derive::new([("w", col("s=b") * 2.0)]))
        .input("data", "enc");
    p.validate().unwrap();
    let run = p.run().unwrap();
    assert_eq!(
        f32_column(run.output("use").unwrap(), "w"),
        [Some(0.0), Some(2.0), Some(0.0)]
    );

    // A downstream step naming a category that was not fitted fails at run time,
    // naming the step.
    let mut p = Pipeline::new("t");
    p.add("src", MemorySource::new(strs(&[Some("a")])));
    p.add("cats", FitCategories::new(["s"]))
        .input("data", "src");
    p.add(
        "enc",
        Encode::new(EncodeMethod::OneHot, UnknownCategory::Error),
    )
    .input("data", "src")
    .input("categories", "cats");
    p.add("use", Derive::new([("w", col("s=b") * 2.0)]))
        .input("data", "enc");
    let err = expect_err(p.run(), "unfitted indicator column");
    assert_msg(&err, &["'use'", "s=b"]);
}

#[test]
fn encode_rejects_non_string_columns() {
    let mut p = Pipeline::new("t");
    p.add("train", MemorySource::new(strs(&[Some("a")])));
    p.add(
        "data",
        MemorySource::new(table(vec![("s", f64_array(&[Some(1.0)]))])),
    );
    p.add("cats", FitCategories::new(["s"]))
        .input("data", "train");
    p.add(
        "enc",
        Encode::new(EncodeMethod::Index, UnknownCategory::Error),
    )
    .input("data", "data")
    .input("categories", "cats");
    let err = expect_err(p.validate(), "encode f64");
    assert!(
        matches!(&err, Error::Schema { step, column, .. } if step == "enc" && column == "s"),
        "{err:?}"
    );
    assert_msg(&err, &["utf8"]);
}

// ================================================================ split

fn ids(n: i64) -> RecordBatch {
    batch(vec![
        ("id", i64_array(&(0..n).map(Some).collect::<Vec<_>>())),
        (
            "v",
            f64_array(
                &(0..n)
                    .map(|i| (i % 10 != 3).then_some(i as f64))
                    .collect::<Vec<_>>(),
            ),
        ),
    ])
}

/// (train ids, test ids) from running Split as a pipeline.
fn split_pipeline(
    data: Table,
    fraction: f64,
    seed: u64,
    options: &RunOptions,
) -> (Vec<i64>, Vec<i64>) {
    let mut p = Pipeline::new("t");
    p.add("src", MemorySource::new(data));
    p.add("split", Split::new(fraction, seed))
        .input("data", "src");
    let run = p.run_with(options).unwrap();
    let get = |port: &str| -> Vec<i64> {
        i64_column(run.output(port).unwrap(), "id")
            .into_iter()
            .map(Option::unwrap)
            .collect()
    };
    (get("split.train"), get("split.test"))
}

/// (train ids, test ids) from calling the step directly inside a rayon pool.
fn split_in_pool(data: &Table, fraction: f64, seed: u64, threads: usize) -> (Vec<i64>, Vec<i64>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let out = Split::new(fraction, seed)
            .run(StepContext::new("split"), std::slice::from_ref(data))
            .unwrap();
        assert_eq!(out.len(), 2);
        let get = |t: &Table| -> Vec<i64> {
            i64_column(t, "id")
                .into_iter()
                .map(Option::unwrap)
                .collect()
        };
        (get(&out[0]), get(&out[1]))
    })
}

#[test]
fn split_is_deterministic_across_runs_chunkings_and_threads() {
    let b = ids(20_000);
    let defaults = RunOptions::default();
    let reference = split_pipeline(Table::from_batch(b.clone()), 0.25, 7, &defaults);
    assert_eq!(
        split_pipeline(Table::from_batch(b.clone()), 0.25, 7, &defaults),
        reference,
        "second run"
    );
    for parts in [2, 7, 64] {
        assert_eq!(
            split_pipeline(chunked(&b, parts), 0.25, 7, &defaults),
            reference,
            "{parts} chunks"
        );
    }
    let one_step_at_a_time = RunOptions {
        max_concurrent_steps: 1,
        ..RunOptions::default()
    };
    assert_eq!(
        split_pipeline(chunked(&b, 7), 0.25, 7, &one_step_at_a_time),
        reference
    );
    for threads in [1, 2] {
        assert_eq!(
            split_in_pool(&Table::from_batch(b.clone()), 0.25, 7, threads),
            reference,
            "{threads} threads"
        );
        assert_eq!(
            split_in_pool(&chunked(&b, 7), 0.25, 7, threads),
            reference,
            "{threads} threads, 7 chunks"
        );
    }
    // The public per-row rule is the one applied.
    let rule = Split::new(0.25, 7);
    let test_ids: Vec<i64> = (0..20_000).filter(|&i| rule.is_test(i as u64)).collect();
    assert_eq!(reference.1, test_ids);
    // Another seed gives another split.
    assert_ne!(
        split_pipeline(Table::from_batch(b), 0.25, 8, &defaults).1,
        reference.1
    );
}

#[test]
fn split_partitions_rows_in_order_with_the_requested_fraction() {
    let n = 100_000;
    let b = ids(n);
    let (train, test) = split_pipeline(chunked(&b, 5), 0.2, 123, &RunOptions::default());
    assert_eq!(train.len() + test.len(), n as usize);
    assert!(
        train.windows(2).all(|w| w[0] < w[1]),
        "train keeps row order"
    );
    assert!(test.windows(2).all(|w| w[0] < w[1]), "test keeps row order");
    let mut all: Vec<i64> = train.iter().chain(&test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "every row exactly once");
    let fraction = test.len() as f64 / n as f64;
    // Binomial sd is ~0.0013 here; 0.01 is > 7 sd.
    assert!((fraction - 0.2).abs() < 0.01, "test fraction {fraction}");

    // Nulls in other columns travel with their rows.
    let mut p = Pipeline::new("t");
    p.add("src", MemorySource::new(Table::from_batch(ids(1000))));
    p.add("split", Split::new(0.5, 1)).input("data", "src");
    let run = p.run().unwrap();
    for port in ["split.train", "split.test"] {
        let t = run.output(port).unwrap();
        for (id, v) in i64_column(t, "id").iter().zip(f64_column(t, "v")) {
            let id = id.unwrap();
            assert_eq!(v, (id % 10 != 3).then_some(id as f64));
        }
    }

    // Fractions 0 and 1, and zero / one row.
    assert_eq!(
        split_pipeline(Table::from_batch(ids(500)), 0.0, 3, &RunOptions::default())
            .1
            .len(),
        0
    );
    assert_eq!(
        split_pipeline(Table::from_batch(ids(500)), 1.0, 3, &RunOptions::default())
            .0
            .len(),
        0
    );
    assert_eq!(
        split_pipeline(Table::from_batch(ids(0)), 0.5, 3, &RunOptions::default()),
        (vec![], vec![])
    );
    let (tr, te) = split_pipeline(Table::from_batch(ids(1)), 0.5, 3, &RunOptions::default());
    assert_eq!(tr.len() + te.len(), 1);
}

#[test]
fn split_rejects_a_fraction_outside_zero_to_one() {
    for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let mut p = Pipeline::new("t");
        p.add("src", MemorySource::new(Table::from_batch(ids(10))));
        p.add("split", Split::new(bad, 1)).input("data", "src");
        let err = expect_err(p.validate(), "bad fraction");
        assert!(
            matches!(&err, Error::InvalidParameter { step, .. } if step == "split"),
            "{bad}: {err:?}"
        );
        assert_msg(&err, &["'split'", "test_fraction", "between 0 and 1"]);
    }
}

//! fuseflow's UDFs inside DataFusion against fuseflow's own evaluation of
//! the same rows: projections bit for bit on any partitioning (nulls, NaN,
//! batch boundaries, sliced batches), statistics bit for bit on one
//! partition of block-aligned batches and within 1e-12 otherwise.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext, col};
use fuseflow::backend::{ColumnStats, CpuKernel, column_stats};
use fuseflow::data::Rng;
use fuseflow::ir::{Projection, parse_expr};
use fuseflow_datafusion::{FitStats, FusedProjection};

const ROWS: usize = 50_011;

/// `id`, `x` (f64: 3% null, 1% NaN, a few infinities), `y` (f32, 5% null),
/// `k` (i32).
fn table() -> RecordBatch {
    let mut rng = Rng::new(20261207);
    let x: Float64Array = (0..ROWS)
        .map(|_| match rng.next_u64() % 100 {
            0..=2 => None,
            3 => Some(f64::NAN),
            4 if rng.next_u64().is_multiple_of(20) => Some(f64::INFINITY),
            _ => Some((rng.next_u64() % 20_000) as f64 / 1000.0 - 10.0),
        })
        .collect();
    let y: Float32Array = (0..ROWS)
        .map(|_| {
            (!rng.next_u64().is_multiple_of(20)).then(|| (rng.next_u64() % 1000) as f32 / 100.0)
        })
        .collect();
    let k: Int32Array = (0..ROWS)
        .map(|_| Some((rng.next_u64() % 7) as i32 - 3))
        .collect();
    let id = Int64Array::from_iter_values(0..ROWS as i64);
    RecordBatch::try_from_iter([
        ("id", Arc::new(id) as ArrayRef),
        ("x", Arc::new(x)),
        ("y", Arc::new(y)),
        ("k", Arc::new(k)),
    ])
    .unwrap()
}

/// `batch` cut into `partitions` partitions of slices of odd lengths.
fn partitioned(batch: &RecordBatch, partitions: usize, lengths: &[usize]) -> Vec<Vec<RecordBatch>> {
    let mut out = vec![Vec::new(); partitions];
    let (mut at, mut i) = (0, 0);
    while at < batch.num_rows() {
        let n = lengths[i % lengths.len()].min(batch.num_rows() - at);
        out[i % partitions].push(batch.slice(at, n));
        (at, i) = (at + n, i + 1);
    }
    out
}

fn context(partitions: usize) -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions))
}

/// The values' bits and validity, for comparing floats exactly (NaN too).
fn bits(array: &dyn Array) -> Vec<Option<u64>> {
    let array = arrow_cast::cast(
        &array.slice(0, array.len()),
        &arrow_schema::DataType::Float64,
    )
    .unwrap();
    let values = array.as_primitive::<Float64Type>();
    (0..values.len())
        .map(|i| values.is_valid(i).then(|| values.value(i).to_bits()))
        .collect()
}

const EXPRESSIONS: [&str; 4] = [
    "sigmoid(0.1 + 0.3 * clip(fill_null(x, 0.5), -5.0, 5.0) - 0.2 * cast(y, f64))",
    "if_else(is_null(y), log1p(abs(x)), sqrt(abs(x)) * cast(k, f64))",
    "pow(clip(x, -2.0, 2.0), 2.0) + exp(-abs(cast(y, f64)))",
    "cast(k, f64) * 2.5 + 1.0",
];

#[tokio::test]
async fn projections_equal_fuseflows_own_evaluation_bit_for_bit() {
    let batch = table();
    for text in EXPRESSIONS {
        let expr = parse_expr(text).unwrap();
        let outputs = [("out".to_string(), expr.clone())];
        let projection = Projection::try_new(batch.schema(), &outputs).unwrap();
        let want = CpuKernel::compile(projection).evaluate(&batch).unwrap();
        for (partitions, lengths) in [
            (1, &[ROWS][..]),
            (3, &[8192, 777, 1][..]),
            (4, &[5003, 12_000][..]),
        ] {
            let table = MemTable::try_new(batch.schema(), partitioned(&batch, partitions, lengths))
                .unwrap();
            let ctx = context(partitions);
            let udf = FusedProjection::new("out", &batch.schema(), &expr).unwrap();
            let got = ctx
                .read_table(Arc::new(table))
                .unwrap()
                .select(vec![col("id"), udf.into_expr()])
                .unwrap()
                .sort(vec![col("id").sort(true, false)])
                .unwrap()
                .collect()
                .await
                .unwrap();
            let got = arrow_select::concat::concat_batches(&got[0].schema(), &got).unwrap();
            assert_eq!(got.num_rows(), ROWS);
            assert_eq!(
                got.schema().field(1).data_type(),
                want.schema().field(0).data_type(),
                "{text}"
            );
            assert!(
                bits(got.column(1).as_ref()) == bits(want.column(0).as_ref()),
                "{text} on {partitions} partitions"
            );
        }
    }
}

#[test]
fn a_projection_over_a_missing_column_names_it() {
    let batch = table();
    let err =
        FusedProjection::new("out", &batch.schema(), &parse_expr("z * 2.0").unwrap()).unwrap_err();
    assert!(err.to_string().contains("'z'"), "{err}");
}

/// The statistics DataFusion's aggregate gives for `column`.
async fn aggregated(
    batch: &RecordBatch,
    column: &str,
    partitions: usize,
    lengths: &[usize],
) -> ColumnStats {
    let table = MemTable::try_new(batch.schema(), partitioned(batch, partitions, lengths)).unwrap();
    let out = context(partitions)
        .read_table(Arc::new(table))
        .unwrap()
        .aggregate(
            vec![],
            vec![FitStats::udaf().call(vec![col(column)]).alias("s")],
        )
        .unwrap()
        .collect()
        .await
        .unwrap();
    let row = out[0].column(0).as_struct();
    let count = |name: &str| {
        row.column_by_name(name)
            .unwrap()
            .as_primitive::<UInt64Type>()
            .value(0)
    };
    let moment = |name: &str| {
        row.column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0)
    };
    let stats = ColumnStats {
        count: count("count"),
        nulls: count("nulls"),
        nans: count("nans"),
        mean: moment("mean"),
        m2: moment("m2"),
        min: moment("min"),
        max: moment("max"),
    };
    assert_eq!(moment("std").to_bits(), stats.std().to_bits());
    stats
}

#[tokio::test]
async fn statistics_merge_across_partitions_as_fuseflow_merges_blocks() {
    let batch = table();
    for column in ["x", "y", "k"] {
        let want = column_stats(&[(
            column.to_string(),
            vec![batch.column_by_name(column).unwrap().clone()],
        )])
        .unwrap()[0];
        // One partition, batches of whole blocks: the same blocks merged in
        // the same order.
        let same = aggregated(&batch, column, 1, &[8192, 16_384]).await;
        assert_eq!(format!("{same:?}"), format!("{want:?}"), "{column}");
        for (partitions, lengths) in [(2, &[1000, 3][..]), (4, &[8192, 999][..])] {
            let got = aggregated(&batch, column, partitions, lengths).await;
            assert_eq!(
                (got.count, got.nulls, got.nans),
                (want.count, want.nulls, want.nans),
                "{column}"
            );
            assert_eq!(
                (got.min.to_bits(), got.max.to_bits()),
                (want.min.to_bits(), want.max.to_bits()),
                "{column}"
            );
            for (g, w) in [(got.mean, want.mean), (got.m2, want.m2)] {
                let close = (g == w)
                    || (g.is_nan() && w.is_nan())
                    || ((g - w).abs() <= 1e-12 * w.abs().max(1.0));
                assert!(
                    close,
                    "{column} on {partitions} partitions: {got:?} against {want:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn fit_stats_refuses_a_text_column() {
    let ctx = SessionContext::new();
    let batch = arrow_array::record_batch!(("s", Utf8, ["a", "b"])).unwrap();
    let err = ctx
        .read_batch(batch)
        .unwrap()
        .aggregate(vec![], vec![FitStats::udaf().call(vec![col("s")])])
        .unwrap_err();
    assert!(err.to_string().contains("numeric"), "{err}");
}

//! Helpers shared by the integration tests: a seeded PRNG (the library's
//! SplitMix64), random column generators with nulls and special values,
//! Arrow array builders and extractors, and error-message assertions.
//!
//! Every test file uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::DataType;

use fuseflow::pipeline::Table;

/// The library's SplitMix64 stream with the draws the tests use.
#[derive(Clone, Debug)]
pub struct Rng(fuseflow::data::Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(fuseflow::data::Rng::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Fraction of nulls in generated columns.
pub const NULL_RATE: f64 = 0.1;

/// f64 values: mostly moderate, some NaN / ±inf / ±0 / huge / tiny, ~10% null.
pub fn gen_f64(rng: &mut Rng, n: usize) -> Vec<Option<f64>> {
    (0..n)
        .map(|_| {
            if rng.chance(NULL_RATE) {
                return None;
            }
            Some(if rng.chance(0.08) {
                *rng.pick(&[
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    0.0,
                    -0.0,
                    1e300,
                    -1e300,
                    1e-300,
                    1.0,
                    -1.0,
                ])
            } else if rng.chance(0.5) {
                // Small integers make exact ties and equalities common.
                (rng.below(21) as f64) - 10.0
            } else {
                rng.range(-50.0, 50.0)
            })
        })
        .collect()
}

/// f32 values, with the same mix as [`gen_f64`] at f32 scale.
pub fn gen_f32(rng: &mut Rng, n: usize) -> Vec<Option<f32>> {
    (0..n)
        .map(|_| {
            if rng.chance(NULL_RATE) {
                return None;
            }
            Some(if rng.chance(0.08) {
                *rng.pick(&[
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    0.0,
                    -0.0,
                    1e30,
                    -1e30,
                    1e-30,
                    1.0,
                    -1.0,
                ])
            } else if rng.chance(0.5) {
                (rng.below(21) as f32) - 10.0
            } else {
                rng.range(-50.0, 50.0) as f32
            })
        })
        .collect()
}

/// i32 values: mostly small, some extremes (to exercise wrapping), ~10% null.
pub fn gen_i32(rng: &mut Rng, n: usize) -> Vec<Option<i32>> {
    (0..n)
        .map(|_| {
            if rng.chance(NULL_RATE) {
                return None;
            }
            Some(if rng.chance(0.05) {
                *rng.pick(&[i32::MIN, i32::MAX, 0, -1, 1, 1 << 20])
            } else if rng.chance(0.05) {
                rng.next_u64() as i32
            } else {
                rng.below(41) as i32 - 20
            })
        })
        .collect()
}

/// i64 values: mostly small, some extremes, ~10% null.
pub fn gen_i64(rng: &mut Rng, n: usize) -> Vec<Option<i64>> {
    (0..n)
        .map(|_| {
            if rng.chance(NULL_RATE) {
                return None;
            }
            Some(if rng.chance(0.05) {
                *rng.pick(&[i64::MIN, i64::MAX, 0, -1, 1, 1 << 40])
            } else if rng.chance(0.05) {
                rng.next_u64() as i64
            } else {
                rng.below(41) as i64 - 20
            })
        })
        .collect()
}

pub fn gen_bool(rng: &mut Rng, n: usize) -> Vec<Option<bool>> {
    (0..n)
        .map(|_| (!rng.chance(NULL_RATE)).then(|| rng.chance(0.5)))
        .collect()
}

/// Strings from a small vocabulary (so equal values are common), including
/// the empty string, a prefix pair and non-ASCII text.
pub const WORDS: [&str; 8] = [
    "",
    "apple",
    "apple pie",
    "Banana",
    "cherry",
    "zebra",
    "é",
    "日本",
];

pub fn gen_str(rng: &mut Rng, n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|_| (!rng.chance(NULL_RATE)).then(|| rng.pick(&WORDS).to_string()))
        .collect()
}

// ------------------------------------------------------------------ arrays

pub fn f64_array(v: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}
pub fn f32_array(v: &[Option<f32>]) -> ArrayRef {
    Arc::new(Float32Array::from(v.to_vec()))
}
pub fn i32_array(v: &[Option<i32>]) -> ArrayRef {
    Arc::new(Int32Array::from(v.to_vec()))
}
pub fn i64_array(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}
pub fn bool_array(v: &[Option<bool>]) -> ArrayRef {
    Arc::new(BooleanArray::from(v.to_vec()))
}
pub fn str_array(v: &[Option<String>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}
pub fn str_array_of(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

/// A batch from named columns (all nullable).
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("valid batch")
}

pub fn table(columns: Vec<(&str, ArrayRef)>) -> Table {
    Table::from_batch(batch(columns))
}

/// Cut a batch into `parts` consecutive chunks of near-equal size (some may be empty).
pub fn chunked(batch: &RecordBatch, parts: usize) -> Table {
    let n = batch.num_rows();
    let mut batches = Vec::new();
    let mut start = 0;
    for p in 0..parts {
        let end = n * (p + 1) / parts;
        batches.push(batch.slice(start, end - start));
        start = end;
    }
    Table::try_new(batch.schema(), batches).expect("same schema")
}

// ------------------------------------------------------------- extractors

pub fn f64_values(a: &dyn Array) -> Vec<Option<f64>> {
    a.as_primitive::<Float64Type>().iter().collect()
}
pub fn f32_values(a: &dyn Array) -> Vec<Option<f32>> {
    a.as_primitive::<Float32Type>().iter().collect()
}
pub fn i32_values(a: &dyn Array) -> Vec<Option<i32>> {
    a.as_primitive::<Int32Type>().iter().collect()
}
pub fn i64_values(a: &dyn Array) -> Vec<Option<i64>> {
    a.as_primitive::<Int64Type>().iter().collect()
}
pub fn bool_values(a: &dyn Array) -> Vec<Option<bool>> {
    a.as_boolean().iter().collect()
}
pub fn str_values(a: &dyn Array) -> Vec<Option<String>> {
    a.as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

/// A whole column of a table (all chunks), by name.
pub fn column(t: &Table, name: &str) -> ArrayRef {
    let b = t.concat().expect("concat");
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", b.schema()))
        .clone()
}

pub fn f64_column(t: &Table, name: &str) -> Vec<Option<f64>> {
    f64_values(column(t, name).as_ref())
}
pub fn f32_column(t: &Table, name: &str) -> Vec<Option<f32>> {
    f32_values(column(t, name).as_ref())
}
pub fn i32_column(t: &Table, name: &str) -> Vec<Option<i32>> {
    i32_values(column(t, name).as_ref())
}
pub fn i64_column(t: &Table, name: &str) -> Vec<Option<i64>> {
    i64_values(column(t, name).as_ref())
}
pub fn bool_column(t: &Table, name: &str) -> Vec<Option<bool>> {
    bool_values(column(t, name).as_ref())
}
pub fn str_column(t: &Table, name: &str) -> Vec<Option<String>> {
    str_values(column(t, name).as_ref())
}

/// Column names of a table, in order.
pub fn names(t: &Table) -> Vec<String> {
    t.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

pub fn dtype_of(t: &Table, name: &str) -> DataType {
    t.schema()
        .field_with_name(name)
        .expect("column exists")
        .data_type()
        .clone()
}

// ---------------------------------------------------------------- floats

/// `|x - y| <= max(rel * |x + y|, abs)`, with NaN equal to NaN and infinities
/// equal only to themselves.
pub fn close(x: f64, y: f64, rel: f64, abs: f64) -> bool {
    if x.is_nan() || y.is_nan() {
        return x.is_nan() && y.is_nan();
    }
    if x == y {
        return true;
    }
    if x.is_infinite() || y.is_infinite() {
        return false;
    }
    (x - y).abs() <= (rel * (x + y).abs()).max(abs)
}

/// Assert two f64 columns agree to 1e-9 (nulls must match exactly).
pub fn assert_f64_close(actual: &[Option<f64>], expected: &[Option<f64>], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let ok = match (a, e) {
            (Some(a), Some(e)) => close(*a, *e, 1e-9, 1e-9),
            (None, None) => true,
            _ => false,
        };
        assert!(ok, "{what}: row {i}: got {a:?}, expected {e:?}");
    }
}

// ---------------------------------------------------------------- errors

/// The error of a result that must fail, with a readable panic otherwise.
pub fn expect_err<T: std::fmt::Debug>(r: fuseflow::Result<T>, what: &str) -> fuseflow::Error {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// Assert that an error's message contains every fragment.
pub fn assert_msg(err: &fuseflow::Error, fragments: &[&str]) {
    let msg = err.to_string();
    for f in fragments {
        assert!(
            msg.contains(f),
            "error message {msg:?} should contain {f:?} (error: {err:?})"
        );
    }
}
/// The name libtest gives test `name` of the module whose `module_path!()`
/// is `module` (the path less the binary's crate name), for a test that runs
/// one test of this binary in a child process with `--exact`.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

pub mod devices;
pub mod faulty;
pub mod projections;
pub mod steps;

/// Assert that `err` is a device error of kind `want`, showing it otherwise.
#[track_caller]
pub fn assert_device_failure(err: &fuseflow::Error, want: fuseflow::DeviceFailure) {
    assert!(
        matches!(err, fuseflow::Error::Device { failure, .. } if *failure == want),
        "expected a {want:?} device error, got: {err}"
    );
}

/// Compare `actual` with the snapshot `tests/snapshots/NAME`, or write it
/// there when `UPDATE_SNAPSHOTS=1`. The path is relative: cargo runs tests in
/// the package root, and so does `scripts/gpu-check.sh` with packaged binaries.
#[track_caller]
pub fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new("tests/snapshots").join(name);
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all("tests/snapshots").unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "the output differs from {}; if the change is intended, rerun with UPDATE_SNAPSHOTS=1",
        path.display()
    );
}

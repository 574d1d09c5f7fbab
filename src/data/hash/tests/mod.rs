//! Hash guarantees: chunking and slicing leave it unchanged, any change of content changes it.

use std::collections::HashMap;

use arrow_array::builder::{Int64Builder, MapBuilder, StringBuilder};
use arrow_array::types::{Float32Type, Float64Type, Int32Type};
use arrow_array::{
    BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, FixedSizeBinaryArray,
    FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array, LargeListArray,
    LargeStringArray, ListArray, ListViewArray, NullArray, RecordBatch, RunArray, StringArray,
    StringViewArray, TimestampMicrosecondArray,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::Field;

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, MapArray, StructArray, UInt32Array, UnionArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Fields, TimeUnit, UnionFields};

use super::columns::BLOCK_ROWS;
use super::*;
use crate::data::Rng;

/// Seeded random rows, turned into fresh (offset 0) batches for any row range.
struct Rows {
    i32s: Vec<Option<i32>>,
    i64s: Vec<Option<i64>>,
    f32s: Vec<Option<f32>>,
    f64s: Vec<Option<f64>>,
    bools: Vec<Option<bool>>,
    strs: Vec<Option<String>>,
}

impl Rows {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let maybe = |p: f64, rng: &mut Rng| rng.uniform() >= p;
        let mut r = Rows {
            i32s: vec![],
            i64s: vec![],
            f32s: vec![],
            f64s: vec![],
            bools: vec![],
            strs: vec![],
        };
        for _ in 0..n {
            let x = rng.next_u64();
            r.i32s.push(maybe(0.1, &mut rng).then_some(x as i32));
            r.i64s.push(Some(x as i64 >> 3));
            r.f32s
                .push(maybe(0.03, &mut rng).then_some(rng.normal() as f32));
            let f = if x.is_multiple_of(17) {
                f64::NAN
            } else {
                rng.normal()
            };
            r.f64s.push(maybe(0.2, &mut rng).then_some(f));
            r.bools
                .push(maybe(0.05, &mut rng).then_some(x.is_multiple_of(3)));
            let len = (x % 7) as usize;
            r.strs
                .push(maybe(0.1, &mut rng).then(|| "héllo, wörld".chars().take(len).collect()));
        }
        r
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Int64, false),
            Field::new("c", DataType::Float32, true),
            Field::new("d", DataType::Float64, true),
            Field::new("e", DataType::Boolean, true),
            Field::new("f", DataType::Utf8, true),
            Field::new("g", DataType::LargeUtf8, true),
        ]))
    }

    fn batch(&self, r: Range<usize>) -> RecordBatch {
        let strs = || self.strs[r.clone()].iter().map(|s| s.as_deref());
        RecordBatch::try_new(
            Self::schema(),
            vec![
                Arc::new(Int32Array::from(self.i32s[r.clone()].to_vec())),
                Arc::new(Int64Array::from(self.i64s[r.clone()].to_vec())),
                Arc::new(Float32Array::from(self.f32s[r.clone()].to_vec())),
                Arc::new(Float64Array::from(self.f64s[r.clone()].to_vec())),
                Arc::new(BooleanArray::from(self.bools[r.clone()].to_vec())),
                Arc::new(strs().collect::<StringArray>()),
                Arc::new(strs().collect::<LargeStringArray>()),
            ],
        )
        .unwrap()
    }

    fn table(&self) -> Table {
        Table::from_batch(self.batch(0..self.i32s.len()))
    }
}

fn h(t: &Table) -> ContentHash {
    hash_table(t).unwrap()
}

fn tables(batches: Vec<RecordBatch>) -> Table {
    Table::try_new(Rows::schema(), batches).unwrap()
}

fn one_column(name: &str, array: ArrayRef) -> Table {
    let field = Field::new(name, array.data_type().clone(), true);
    let schema = Arc::new(Schema::new(vec![field]));
    Table::from_batch(RecordBatch::try_new(schema, vec![array]).unwrap())
}

#[test]
fn slices_hash_like_fresh_arrays() {
    let rows = Rows::new(1020, 1);
    let big = rows.batch(0..1020);
    for (offset, len) in [(3, 1000), (13, 990), (64, 100), (1019, 1)] {
        let sliced = Table::from_batch(big.slice(offset, len));
        let fresh = Table::from_batch(rows.batch(offset..offset + len));
        assert_eq!(h(&sliced), h(&fresh), "slice at {offset}, {len} rows");
    }
}

#[test]
fn rechunking_keeps_the_hash() {
    // Long enough to cross several BLOCK_ROWS boundaries at varying places.
    let n = 3 * BLOCK_ROWS + 777;
    let rows = Rows::new(n, 2);
    let whole = h(&rows.table());
    let cuts = tables(vec![
        rows.batch(0..100),
        rows.batch(100..BLOCK_ROWS + 13),
        rows.batch(BLOCK_ROWS + 13..BLOCK_ROWS + 13),
        rows.batch(BLOCK_ROWS + 13..n),
    ]);
    assert_eq!(h(&cuts), whole);
    let big = rows.batch(0..n);
    let slices = tables(vec![
        big.slice(0, 3),
        big.slice(3, 2 * BLOCK_ROWS + 5),
        big.slice(2 * BLOCK_ROWS + 8, n - 2 * BLOCK_ROWS - 8),
    ]);
    assert_eq!(h(&slices), whole);
}

#[test]
fn any_logical_change_changes_the_hash() {
    let rows = Rows::new(500, 3);
    let base = h(&rows.table());
    let mut changed = Rows::new(500, 3);
    changed.i64s[250] = changed.i64s[250].map(|v| v + 1);
    assert_ne!(h(&changed.table()), base, "one value");
    let mut changed = Rows::new(500, 3);
    let row = changed.f32s.iter().position(Option::is_some).unwrap();
    changed.f32s[row] = None;
    assert_ne!(h(&changed.table()), base, "one null");
    let mut changed = Rows::new(500, 3);
    let row = changed
        .strs
        .iter()
        .position(|s| s.as_deref() == Some(""))
        .unwrap();
    changed.strs[row] = None;
    assert_ne!(h(&changed.table()), base, "an empty string became null");
    let mut changed = Rows::new(500, 3);
    let row = changed
        .bools
        .iter()
        .position(|b| *b == Some(false))
        .unwrap();
    changed.bools[row] = None;
    assert_ne!(h(&changed.table()), base, "false became null");
    assert_ne!(
        h(&Table::from_batch(rows.batch(0..499))),
        base,
        "one row fewer"
    );
}

#[test]
fn schema_changes_change_the_hash() {
    let ints = [1, 2, 3, 4];
    let i32s = h(&one_column("x", Arc::new(Int32Array::from(ints.to_vec()))));
    let i64s = ints.iter().map(|&v| i64::from(v)).collect::<Vec<_>>();
    assert_ne!(
        h(&one_column("x", Arc::new(Int64Array::from(i64s)))),
        i32s,
        "dtype"
    );
    assert_ne!(
        h(&one_column("y", Arc::new(Int32Array::from(ints.to_vec())))),
        i32s,
        "column name"
    );

    let table = one_column("x", Arc::new(Int32Array::from(ints.to_vec())));
    let with = |field: Field, meta: HashMap<String, String>| {
        let schema = Arc::new(Schema::new_with_metadata(vec![field], meta));
        let column = Arc::clone(table.batches()[0].column(0));
        let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
        h(&Table::from_batch(batch))
    };
    let field = Field::new("x", DataType::Int32, true);
    assert_eq!(with(field.clone(), HashMap::new()), i32s);
    let meta = HashMap::from([("unit".to_string(), "kg".to_string())]);
    let tagged = field.clone().with_metadata(meta.clone());
    assert_ne!(with(tagged, HashMap::new()), i32s, "field metadata");
    assert_ne!(with(field.clone(), meta), i32s, "schema metadata");
    let strict = Field::new("x", DataType::Int32, false);
    assert_ne!(with(strict, HashMap::new()), i32s, "nullability");
}

#[test]
fn metadata_order_does_not_matter() {
    let pairs = [("a", "1"), ("b", "2"), ("c", "3")];
    let meta = |order: &[usize]| -> HashMap<String, String> {
        order
            .iter()
            .map(|&i| (pairs[i].0.to_string(), pairs[i].1.to_string()))
            .collect()
    };
    let table = |m: HashMap<String, String>| {
        let field = Field::new("x", DataType::Int32, true).with_metadata(m.clone());
        let schema = Arc::new(Schema::new_with_metadata(vec![field], m));
        let col: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
        Table::from_batch(RecordBatch::try_new(schema, vec![col]).unwrap())
    };
    assert_eq!(h(&table(meta(&[0, 1, 2]))), h(&table(meta(&[2, 0, 1]))));
}

#[test]
fn garbage_under_nulls_is_ignored() {
    let nulls = NullBuffer::from(vec![true, false, true, false, true]);
    let ints = |v: Vec<i32>| -> ArrayRef {
        Arc::new(Int32Array::new(ScalarBuffer::from(v), Some(nulls.clone())))
    };
    assert_eq!(
        h(&one_column("x", ints(vec![1, 0, 3, 0, 5]))),
        h(&one_column("x", ints(vec![1, 99, 3, -7, 5])))
    );
    let floats = |v: Vec<f64>| -> ArrayRef {
        Arc::new(Float64Array::new(
            ScalarBuffer::from(v),
            Some(nulls.clone()),
        ))
    };
    assert_eq!(
        h(&one_column("x", floats(vec![1.0, 0.0, 3.0, 0.0, 5.0]))),
        h(&one_column("x", floats(vec![1.0, f64::NAN, 3.0, 8.5, 5.0])))
    );
    let bools =
        |v: Vec<bool>| -> ArrayRef { Arc::new(BooleanArray::new(v.into(), Some(nulls.clone()))) };
    assert_eq!(
        h(&one_column(
            "x",
            bools(vec![true, false, false, false, true])
        )),
        h(&one_column("x", bools(vec![true, true, false, true, true])))
    );
    // The null slots (rows 1 and 3) cover bytes "zz" and "q" in the second array.
    let strs = |offsets: Vec<i32>, data: &str| -> ArrayRef {
        Arc::new(StringArray::new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            data.as_bytes().to_vec().into(),
            Some(nulls.clone()),
        ))
    };
    assert_eq!(
        h(&one_column("x", strs(vec![0, 1, 1, 3, 3, 4], "abcd"))),
        h(&one_column("x", strs(vec![0, 1, 3, 5, 6, 7], "azzbcqd")))
    );
}

#[test]
fn missing_and_all_valid_validity_hash_alike() {
    let values = ScalarBuffer::from(vec![1i64, 2, 3]);
    let bare: ArrayRef = Arc::new(Int64Array::new(values.clone(), None));
    let valid: ArrayRef = Arc::new(Int64Array::new(values, Some(NullBuffer::new_valid(3))));
    assert_eq!(h(&one_column("x", bare)), h(&one_column("x", valid)));
}

#[test]
fn empty_tables() {
    let schema = Rows::schema();
    let none = Table::empty(Arc::clone(&schema));
    let one_empty = Table::from_batch(RecordBatch::new_empty(Arc::clone(&schema)));
    assert_eq!(h(&none), h(&one_empty));
    let other = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
    assert_ne!(h(&none), h(&Table::empty(other)));
}

#[test]
fn nan_is_a_value_like_any_other() {
    let col = |v: f32| -> ArrayRef { Arc::new(Float32Array::from(vec![1.0, v])) };
    let nan = h(&one_column("x", col(f32::NAN)));
    assert_eq!(nan, h(&one_column("x", col(f32::NAN))));
    assert_ne!(nan, h(&one_column("x", col(0.0))));
    let null: ArrayRef = Arc::new(Float32Array::from(vec![Some(1.0), None]));
    assert_ne!(nan, h(&one_column("x", null)));
}

mod every_type;

#[test]
fn type_names_are_unambiguous() {
    let list = |name: &str, nullable: bool| {
        DataType::List(Arc::new(Field::new(name, DataType::Float64, nullable)))
    };
    let names = [
        type_name(&list("item", true)),
        type_name(&list("item", false)),
        type_name(&list("element", true)),
        type_name(&DataType::LargeList(Arc::new(Field::new(
            "item",
            DataType::Float64,
            true,
        )))),
        type_name(&DataType::Timestamp(TimeUnit::Microsecond, None)),
        type_name(&DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )),
        type_name(&DataType::Timestamp(TimeUnit::Nanosecond, None)),
        type_name(&DataType::Decimal128(12, 2)),
        type_name(&DataType::Decimal128(12, 3)),
    ];
    let distinct: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:#?}");
    // The flat types keep the names their hashes were first made with.
    assert_eq!(type_name(&DataType::Float32), "f32");
    assert_eq!(type_name(&DataType::LargeUtf8), "large_utf8");
}

#[test]
fn hex_round_trip_and_parse_errors() {
    let hash = h(&Rows::new(10, 4).table());
    let hex = hash.to_string();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    );
    assert_eq!(hex.parse::<ContentHash>().unwrap(), hash);
    assert_eq!(hex.to_uppercase().parse::<ContentHash>().unwrap(), hash);
    assert_eq!(hash.short(), hex[..12]);
    let short = hex[..63].parse::<ContentHash>().unwrap_err().to_string();
    assert!(short.contains("expected 64 hex digits"), "{short}");
    let bad = format!("{}g", &hex[..63])
        .parse::<ContentHash>()
        .unwrap_err();
    assert!(bad.to_string().contains("'g' is not a hex digit"), "{bad}");
    let multibyte = format!("{}é", &hex[..62])
        .parse::<ContentHash>()
        .unwrap_err();
    assert!(matches!(multibyte, Error::CacheParse { .. }), "{multibyte}");
}

#[test]
fn file_hash_is_blake3_of_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        hash_file(&path).unwrap(),
        ContentHash::from(blake3::hash(&bytes))
    );
    let missing = dir.path().join("missing.csv");
    match hash_file(&missing) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected Io, got {other:?}"),
    }
}

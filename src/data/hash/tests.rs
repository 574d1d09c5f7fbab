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

/// One column of every kind of Arrow type that is not in [`Rows`], 300
/// seeded rows each, with nulls (also under nested parents).
fn every_kind_of_column() -> Vec<(&'static str, ArrayRef)> {
    let n = 300;
    let mut rng = Rng::new(11);
    let mut valid = |p: f64| rng.uniform() >= p;
    let mask: Vec<bool> = (0..n).map(|_| valid(0.15)).collect();
    let ints: Vec<Option<i64>> = (0..n)
        .map(|i| mask[i].then_some(i as i64 * 7 - 40))
        .collect();
    let mut columns = flat_columns(&mask, &ints);
    columns.extend(nested_and_encoded_columns(&mask, &ints));
    columns
}

/// Columns of the flat types (null, f16, dates, timestamps, decimals, binary, views).
fn flat_columns(mask: &[bool], ints: &[Option<i64>]) -> Vec<(&'static str, ArrayRef)> {
    let n = mask.len();
    let maybe = |i: usize| mask[i];
    let ints = ints.to_vec();
    let halves = Float32Array::from(
        (0..n)
            .map(|i| maybe(i).then_some(i as f32 / 8.0))
            .collect::<Vec<_>>(),
    );
    vec![
        ("null", Arc::new(NullArray::new(n)) as ArrayRef),
        (
            "f16",
            arrow_cast::cast(&halves, &DataType::Float16).unwrap(),
        ),
        (
            "date",
            Arc::new(Date32Array::from(
                (0..n)
                    .map(|i| maybe(i).then_some(i as i32))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(ints.clone()).with_timezone("UTC")),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(ints.iter().map(|v| v.map(i128::from)).collect::<Vec<_>>())
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
        ),
        (
            "bin",
            Arc::new(BinaryArray::from_iter(
                (0..n).map(|i| maybe(i).then(|| vec![i as u8; i % 5])),
            )),
        ),
        (
            "fixed_bin",
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    (0..n).map(|i| maybe(i).then_some([i as u8, 1, 2])),
                    3,
                )
                .unwrap(),
            ),
        ),
        (
            "view",
            Arc::new(
                (0..n)
                    .map(|i| maybe(i).then(|| format!("a string longer than twelve bytes {i}")))
                    .collect::<StringViewArray>(),
            ),
        ),
    ]
}

/// Columns of the nested types (lists, structs, maps, unions) and the
/// encoded ones (dictionaries, run ends), nulls also under nested parents.
fn nested_and_encoded_columns(
    mask: &[bool],
    ints: &[Option<i64>],
) -> Vec<(&'static str, ArrayRef)> {
    let n = mask.len();
    let maybe = |i: usize| mask[i];
    let ints = ints.to_vec();
    let lists = || {
        (0..n).map(|i| {
            maybe(i).then(|| {
                (0..i % 4)
                    .map(|k| (k != 2).then_some(i as f64 + k as f64))
                    .collect::<Vec<_>>()
            })
        })
    };
    let list = ListArray::from_iter_primitive::<Float64Type, _, _>(lists());
    let words = (0..n).map(|i| maybe(i).then(|| ["north", "south", "east"][i % 3]));
    vec![
        ("list", Arc::new(list.clone())),
        (
            "large_list",
            Arc::new(LargeListArray::from_iter_primitive::<Float64Type, _, _>(
                lists(),
            )),
        ),
        ("list_view", Arc::new(ListViewArray::from(list))),
        (
            "fixed_list",
            Arc::new(FixedSizeListArray::from_iter_primitive::<Int32Type, _, _>(
                (0..n).map(|i| maybe(i).then(|| vec![Some(i as i32), None, Some(1)])),
                3,
            )),
        ),
        ("struct", Arc::new(struct_column(mask, &ints))),
        ("map", Arc::new(map_column(mask))),
        (
            "dict",
            Arc::new(words.collect::<DictionaryArray<Int32Type>>()),
        ),
        ("union", Arc::new(union_column(&ints))),
        ("runs", Arc::new(run_column(n))),
    ]
}

/// A struct of an i64 and a utf8 child, its own nulls over the children's.
fn struct_column(mask: &[bool], ints: &[Option<i64>]) -> StructArray {
    let n = mask.len();
    let maybe = |i: usize| mask[i];
    let ints = ints.to_vec();
    let struct_nulls = NullBuffer::from((0..n).map(|i| i % 5 != 0).collect::<Vec<_>>());
    StructArray::try_new(
        Fields::from(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]),
        vec![
            Arc::new(Int64Array::from(ints.clone())),
            Arc::new(
                (0..n)
                    .map(|i| maybe(i).then(|| format!("s{}", i % 9)))
                    .collect::<StringArray>(),
            ),
        ],
        Some(struct_nulls),
    )
    .unwrap()
}

/// A map of utf8 keys to nullable i64 values, 0 to 2 entries a row.
fn map_column(mask: &[bool]) -> MapArray {
    let n = mask.len();
    let maybe = |i: usize| mask[i];
    let mut maps = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
    for i in 0..n {
        for k in 0..i % 3 {
            maps.keys().append_value(format!("k{k}"));
            maps.values()
                .append_option(maybe((i + k) % n).then_some(k as i64));
        }
        maps.append(maybe(i)).unwrap();
    }
    maps.finish()
}

/// A sparse union alternating an i64 and an f32 child.
fn union_column(ints: &[Option<i64>]) -> UnionArray {
    let n = ints.len();
    let ints = ints.to_vec();
    let union_ids: Vec<i8> = (0..n).map(|i| (i % 2) as i8).collect();
    UnionArray::try_new(
        UnionFields::try_new(
            vec![0, 1],
            vec![
                Field::new("i", DataType::Int64, true),
                Field::new("f", DataType::Float32, true),
            ],
        )
        .unwrap(),
        union_ids.into(),
        None,
        vec![
            Arc::new(Int64Array::from(ints.clone())),
            Arc::new(Float32Array::from(
                (0..n).map(|i| i as f32 / 3.0).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// Run-end encoded i64 values in runs of three, some null.
fn run_column(n: usize) -> RunArray<Int32Type> {
    RunArray::<Int32Type>::try_new(
        &Int32Array::from((1..=n as i32 / 3).map(|r| r * 3).collect::<Vec<_>>()),
        &Int64Array::from(
            (0..n as i64 / 3)
                .map(|r| (r % 4 != 1).then_some(r))
                .collect::<Vec<_>>(),
        ),
    )
    .unwrap()
}

#[test]
fn every_type_hashes_by_its_rows_whatever_the_slicing() {
    for (name, column) in every_kind_of_column() {
        let n = column.len();
        let whole = h(&one_column(name, Arc::clone(&column)));
        for (offset, len) in [(0, n), (3, 200), (13, 190), (64, 100), (n - 1, 1), (7, 0)] {
            let sliced = column.slice(offset, len);
            let rows = UInt32Array::from_iter_values(offset as u32..(offset + len) as u32);
            let fresh = arrow_select::take::take(column.as_ref(), &rows, None).unwrap();
            assert_eq!(
                h(&one_column(name, sliced)),
                h(&one_column(name, fresh)),
                "{name}: slice at {offset}, {len} rows"
            );
        }
        let field = Arc::new(Field::new(name, column.data_type().clone(), true));
        let schema = Arc::new(Schema::new(vec![field]));
        let batch = |offset, len| {
            RecordBatch::try_new(Arc::clone(&schema), vec![column.slice(offset, len)]).unwrap()
        };
        let chunked = Table::try_new(
            Arc::clone(&schema),
            vec![batch(0, 101), batch(101, 0), batch(101, n - 101)],
        )
        .unwrap();
        assert_eq!(h(&chunked), whole, "{name}: re-chunked");
        // One row fewer, or the rows in another order, is other content.
        assert_ne!(
            h(&one_column(name, column.slice(0, n - 1))),
            whole,
            "{name}: one row fewer"
        );
        if name != "null" {
            let reversed = UInt32Array::from_iter_values((0..n as u32).rev());
            let reversed = arrow_select::take::take(column.as_ref(), &reversed, None).unwrap();
            assert_ne!(
                h(&one_column(name, reversed)),
                whole,
                "{name}: rows reversed"
            );
        }
    }
}

#[test]
fn nested_values_nulls_and_types_change_the_hash() {
    let list = |rows: Vec<Option<Vec<Option<f64>>>>| -> ArrayRef {
        Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(rows))
    };
    let base = h(&one_column(
        "w",
        list(vec![Some(vec![Some(1.0), Some(2.0)]), Some(vec![])]),
    ));
    let changed = [
        list(vec![Some(vec![Some(1.0), Some(2.5)]), Some(vec![])]),
        list(vec![Some(vec![Some(1.0), None]), Some(vec![])]),
        list(vec![Some(vec![Some(1.0)]), Some(vec![Some(2.0)])]),
        list(vec![Some(vec![Some(1.0), Some(2.0)]), None]),
    ];
    for (i, c) in changed.into_iter().enumerate() {
        assert_ne!(h(&one_column("w", c)), base, "change {i}");
    }
    let f32s: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
        Some(vec![Some(1.0f32), Some(2.0)]),
        Some(vec![]),
    ]));
    assert_ne!(h(&one_column("w", f32s)), base, "child type");

    // Child values under a null list row are not part of the content.
    let values = Float64Array::from(vec![1.0, 2.0, 9.0, 9.0]);
    let item = Arc::new(Field::new("item", DataType::Float64, true));
    let with_garbage = ListArray::new(
        Arc::clone(&item),
        OffsetBuffer::new(ScalarBuffer::from(vec![0, 2, 4])),
        Arc::new(values),
        Some(NullBuffer::from(vec![true, false])),
    );
    let clean = list(vec![Some(vec![Some(1.0), Some(2.0)]), None]);
    assert_eq!(
        h(&one_column("w", Arc::new(with_garbage))),
        h(&one_column("w", clean))
    );

    // A dictionary hashes by its values, not by how they are encoded,
    // but is not the same column as its plain values.
    let dict_a: DictionaryArray<Int32Type> = vec!["x", "y", "x"].into_iter().collect();
    let dict_b = DictionaryArray::<Int32Type>::try_new(
        Int32Array::from(vec![1, 0, 1]),
        Arc::new(StringArray::from(vec!["y", "x"])),
    )
    .unwrap();
    let dict_hash = h(&one_column("c", Arc::new(dict_a)));
    assert_eq!(dict_hash, h(&one_column("c", Arc::new(dict_b))));
    let plain: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "x"]));
    assert_ne!(dict_hash, h(&one_column("c", plain)));
}

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

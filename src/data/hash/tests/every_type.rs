//! Every kind of Arrow type hashes by its rows, whatever the slicing, and
//! any change of a nested value, null or type changes the hash.

use super::*;

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

//! Reading and writing files: round trips of every dtype with nulls through
//! Parquet, Arrow IPC (file and stream) and CSV, chunked reads, corrupt,
//! truncated and missing files, unknown extensions, type normalization, and
//! files streamed through pipelines (equal results; bounded memory is
//! `tests/peak_rss.rs`, in a process of its own).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::*;
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int8Array, Int16Array, LargeStringArray, RecordBatch,
    UInt8Array, UInt16Array, UInt32Array, types::Int32Type,
};
use arrow_schema::DataType;
use fuseflow::Error;
use fuseflow::data::files::{FileFormat, write_table};
use fuseflow::ir::col;
use fuseflow::pipeline::io::{MemorySource, Read, Write};
use fuseflow::pipeline::prep::{Derive, FillNull, FillValue, FitStats, Scale, ScaleMethod, Select};
use fuseflow::pipeline::{Pipeline, Table};
use fuseflow::{CachePolicy, RunOptions, Workspace};

/// A table with every dtype, ~10% nulls in every column, in `chunks` batches.
/// `csv_safe` avoids values CSV cannot carry unchanged (NaN, inf, the empty
/// string, which reads back as null, and integral floats, inferred as integers).
pub(crate) fn all_types(n: usize, chunks: usize, seed: u64, csv_safe: bool) -> Table {
    let mut rng = Rng::new(seed);
    let mut f64s = if csv_safe {
        (0..n)
            .map(|_| (!rng.chance(0.1)).then(|| rng.range(-100.0, 100.0)))
            .collect()
    } else {
        gen_f64(&mut rng, n)
    };
    let mut f32s = if csv_safe {
        (0..n)
            .map(|_| (!rng.chance(0.1)).then(|| rng.range(-100.0, 100.0) as f32))
            .collect()
    } else {
        gen_f32(&mut rng, n)
    };
    let mut strs = gen_str(&mut rng, n);
    if csv_safe {
        for s in strs.iter_mut().flatten() {
            if s.is_empty() {
                *s = "empty".into();
            }
        }
    }
    if n > 0 {
        // At least one non-integral value so CSV infers floats.
        f64s[0] = Some(0.25);
        f32s[0] = Some(0.5);
    }
    let b = batch(vec![
        ("flag", bool_array(&gen_bool(&mut rng, n))),
        ("small", i32_array(&gen_i32(&mut rng, n))),
        ("big", i64_array(&gen_i64(&mut rng, n))),
        ("single", f32_array(&f32s)),
        ("double", f64_array(&f64s)),
        ("text", str_array(&strs)),
    ]);
    chunked(&b, chunks)
}

/// Column-by-column equality with NaN equal to NaN; integers may have been
/// widened (CSV) and floats narrowed back to the original type for comparison.
pub(crate) fn assert_same_values(actual: &Table, expected: &Table, what: &str) {
    let (a, e) = (actual.concat().unwrap(), expected.concat().unwrap());
    assert_eq!(a.num_rows(), e.num_rows(), "{what}: rows");
    let names_a: Vec<&str> = a
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let names_e: Vec<&str> = e
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names_a, names_e, "{what}: columns");
    for (i, name) in names_e.iter().enumerate() {
        let (x, y) = (a.column(i).as_ref(), e.column(i).as_ref());
        let ctx = format!("{what}: column {name}");
        match (x.data_type(), y.data_type()) {
            (DataType::Boolean, DataType::Boolean) => {
                assert_eq!(bool_values(x), bool_values(y), "{ctx}")
            }
            (DataType::Utf8, DataType::Utf8) => assert_eq!(str_values(x), str_values(y), "{ctx}"),
            (DataType::Int32, DataType::Int32) => assert_eq!(i32_values(x), i32_values(y), "{ctx}"),
            (DataType::Int64, DataType::Int64) => assert_eq!(i64_values(x), i64_values(y), "{ctx}"),
            (DataType::Int64, DataType::Int32) => {
                let widened: Vec<Option<i64>> = i32_values(y)
                    .into_iter()
                    .map(|v| v.map(i64::from))
                    .collect();
                assert_eq!(i64_values(x), widened, "{ctx}");
            }
            (DataType::Float64, DataType::Float64) => {
                let same = f64_values(x)
                    .iter()
                    .zip(f64_values(y))
                    .all(|(p, q)| match (p, q) {
                        (Some(p), Some(q)) => p == &q || (p.is_nan() && q.is_nan()),
                        (p, q) => p.is_none() && q.is_none(),
                    });
                assert!(same, "{ctx}: {:?} vs {:?}", f64_values(x), f64_values(y));
            }
            (DataType::Float32, DataType::Float32) | (DataType::Float64, DataType::Float32) => {
                let narrowed: Vec<Option<f32>> = match x.data_type() {
                    DataType::Float32 => f32_values(x),
                    _ => f64_values(x)
                        .into_iter()
                        .map(|v| v.map(|v| v as f32))
                        .collect(),
                };
                let same = narrowed
                    .iter()
                    .zip(f32_values(y))
                    .all(|(p, q)| match (p, q) {
                        (Some(p), Some(q)) => p == &q || (p.is_nan() && q.is_nan()),
                        (p, q) => p.is_none() && q.is_none(),
                    });
                assert!(same, "{ctx}");
            }
            (got, want) => panic!("{ctx}: read back as {got}, written as {want}"),
        }
    }
}

/// Read `path` with a pipeline `Read` step.
pub(crate) fn read(step: Read) -> fuseflow::Result<Table> {
    let mut p = Pipeline::new("read");
    p.add("read", step);
    Ok(p.run()?.output("read")?.clone())
}

fn types(t: &Table) -> Vec<DataType> {
    t.schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}

/// The error must be `Error::Io` for `path`, with the path in its message.
fn assert_io_error(err: &Error, path: &Path, fragments: &[&str]) {
    match err {
        Error::Io { path: p, .. } => assert_eq!(p, path, "{err}"),
        other => panic!("expected Error::Io for {}, got {other:?}", path.display()),
    }
    assert_msg(err, &[&path.display().to_string()]);
    assert_msg(err, fragments);
}

// ================================================================ round trips

#[test]
fn binary_formats_round_trip_every_dtype_with_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let original = all_types(2500, 3, 1, false);
    for (file, format) in [
        ("t.parquet", FileFormat::Parquet),
        ("t.pq", FileFormat::Parquet),
        ("t.arrow", FileFormat::ArrowFile),
        ("t.feather", FileFormat::ArrowFile),
        ("t.ipc", FileFormat::ArrowFile),
        ("t.arrows", FileFormat::ArrowStream),
    ] {
        let path = dir.path().join(file);
        assert_eq!(FileFormat::from_path(&path).unwrap(), format);
        write_table(&original, &path, format).unwrap();
        let back = read(Read::new(&path)).unwrap();
        assert_eq!(types(&back), types(&original), "{file}: dtypes kept");
        assert_same_values(&back, &original, file);
        // No temporary file is left beside the target.
        let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    // An empty table round-trips with its schema.
    let empty = Table::empty(original.schema().clone());
    for (file, format) in [
        ("e.parquet", FileFormat::Parquet),
        ("e.arrow", FileFormat::ArrowFile),
        ("e.arrows", FileFormat::ArrowStream),
    ] {
        let path = dir.path().join(file);
        write_table(&empty, &path, format).unwrap();
        let back = read(Read::new(&path)).unwrap();
        assert_eq!(
            (back.num_rows(), types(&back)),
            (0, types(&original)),
            "{file}"
        );
    }
}

/// An IPC stream is read a few MiB of the file at a time (so that damage
/// cannot make the reader allocate more than the file holds): batches that
/// span those reads, and the first batch read with the schema, come back
/// whole and in order.
#[test]
fn an_ipc_stream_larger_than_one_read_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let original = all_types(300_000, 9, 2, false);
    let path = dir.path().join("big.arrows");
    write_table(&original, &path, FileFormat::ArrowStream).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 8 << 20, "the stream spans several reads: {len} bytes");
    let back = read(Read::new(&path)).unwrap();
    assert_eq!(back.num_rows(), original.num_rows());
    assert_same_values(&back, &original, "big.arrows");
}

#[test]
fn csv_round_trips_values_with_inferred_types() {
    let dir = tempfile::tempdir().unwrap();
    let original = all_types(1500, 2, 2, true);
    let path = dir.path().join("t.csv");
    write_table(&original, &path, FileFormat::Csv).unwrap();
    let back = read(Read::new(&path)).unwrap();
    assert_eq!(
        types(&back),
        [
            DataType::Boolean,
            DataType::Int64,
            DataType::Int64,
            DataType::Float64,
            DataType::Float64,
            DataType::Utf8
        ]
    );
    assert_same_values(&back, &original, "csv");
}

#[test]
fn write_and_read_steps_in_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let original = all_types(777, 2, 3, false);
    for file in ["nested/dir/out.parquet", "out.arrow", "out.arrows"] {
        let path = dir.path().join(file);
        let mut p = Pipeline::new("write");
        p.add("src", MemorySource::new(original.clone()));
        p.add("write", Write::new(&path)).input("data", "src");
        let run = p.run().unwrap();
        assert!(
            run.output_names().iter().all(|k| k.starts_with("src.")),
            "a write step has no outputs: {:?}",
            run.output_names()
        );
        assert!(path.exists(), "{file} written (parent directories created)");

        let mut p = Pipeline::new("read");
        p.add("read", Read::new(&path));
        p.add("use", Derive::new([("twice", col("double") * 2.0)]))
            .input("data", "read");
        let run = p.run().unwrap();
        assert_same_values(run.output("read").unwrap(), &original, file);
        assert_eq!(run.output("use").unwrap().num_rows(), 777);
    }

    // Overwriting replaces the content.
    let path = dir.path().join("out.arrow");
    let smaller = all_types(5, 1, 4, false);
    write_table(&smaller, &path, FileFormat::ArrowFile).unwrap();
    assert_eq!(read(Read::new(&path)).unwrap().num_rows(), 5);

    // An explicit format overrides the extension; IPC files and streams are
    // told apart by content.
    let odd = dir.path().join("data.bin");
    write_table(&smaller, &odd, FileFormat::Parquet).unwrap();
    assert_same_values(
        &read(Read::new(&odd).format(FileFormat::Parquet)).unwrap(),
        &smaller,
        "data.bin",
    );
    let stream_named_file = dir.path().join("stream.arrow");
    write_table(&smaller, &stream_named_file, FileFormat::ArrowStream).unwrap();
    assert_same_values(
        &read(Read::new(&stream_named_file)).unwrap(),
        &smaller,
        "stream in .arrow",
    );
}

// ================================================================ chunking

#[test]
fn parquet_and_csv_are_read_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let n = 10_007;
    let original = all_types(n, 1, 5, true);
    for (file, format) in [
        ("big.parquet", FileFormat::Parquet),
        ("big.csv", FileFormat::Csv),
    ] {
        let path = dir.path().join(file);
        write_table(&original, &path, format).unwrap();
        let back = read(Read::new(&path).batch_rows(1000)).unwrap();
        let sizes: Vec<usize> = back.batches().iter().map(RecordBatch::num_rows).collect();
        assert!(sizes.len() >= 11, "{file}: {sizes:?}");
        assert!(sizes.iter().all(|&s| s <= 1000), "{file}: {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), n, "{file}");
        assert_same_values(&back, &original, file);
        // The default chunk size holds all of it in one batch.
        assert_eq!(read(Read::new(&path)).unwrap().batches().len(), 1, "{file}");
    }
}

// ================================================================ bad files

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "missing.parquet",
        "missing.arrow",
        "missing.arrows",
        "missing.csv",
    ] {
        let path = dir.path().join(file);
        let mut p = Pipeline::new("read");
        p.add("read", Read::new(&path));
        // Found while validating, before anything runs.
        let err = expect_err(p.validate(), file);
        assert_io_error(&err, &path, &["cannot open"]);
        let err = expect_err(p.run(), file);
        assert_io_error(&err, &path, &[]);
    }
}

#[test]
fn io_errors_keep_the_underlying_error_as_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.parquet");
    let mut p = Pipeline::new("read");
    p.add("read", Read::new(&missing));
    let err = expect_err(p.validate(), "missing");
    let source = std::error::Error::source(&err).expect("the cause is kept");
    let io = source.downcast_ref::<std::io::Error>();
    assert_eq!(
        io.map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound),
        "{err}"
    );
    // The message already quotes the cause, so a person reads one line.
    assert_eq!(err.chain(), vec![err.to_string()]);

    let random = dir.path().join("random.parquet");
    std::fs::write(&random, [7u8; 64]).unwrap();
    let err = expect_err(read(Read::new(&random)), "random parquet");
    let source = std::error::Error::source(&err).expect("the cause is kept");
    assert!(
        source
            .downcast_ref::<parquet::errors::ParquetError>()
            .is_some(),
        "{err}: {source:?}"
    );
}

#[test]
fn corrupt_and_truncated_files_are_io_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(7);
    let noise: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();

    let random = dir.path().join("random.parquet");
    std::fs::write(&random, &noise).unwrap();
    let err = expect_err(read(Read::new(&random)), "random parquet");
    assert_io_error(&err, &random, &["parquet"]);

    let random_ipc = dir.path().join("random.arrow");
    std::fs::write(&random_ipc, &noise).unwrap();
    let err = expect_err(read(Read::new(&random_ipc)), "random arrow");
    assert_io_error(&err, &random_ipc, &[]);

    let empty = dir.path().join("empty.parquet");
    std::fs::write(&empty, b"").unwrap();
    let err = expect_err(read(Read::new(&empty)), "empty parquet");
    assert_io_error(&err, &empty, &[]);

    // Valid files cut short.
    let original = all_types(3000, 3, 8, false);
    for (file, format) in [
        ("cut.arrow", FileFormat::ArrowFile),
        ("cut.parquet", FileFormat::Parquet),
        ("cut.arrows", FileFormat::ArrowStream),
    ] {
        let path = dir.path().join(file);
        write_table(&original, &path, format).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // Cut inside the data, away from any message boundary at the end.
        std::fs::write(&path, &bytes[..bytes.len() * 2 / 3 + 1]).unwrap();
        let err = expect_err(read(Read::new(&path)), file);
        assert_io_error(&err, &path, &[]);
    }

    // A CSV row with the wrong number of fields.
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3\n4,5\n").unwrap();
    let err = expect_err(read(Read::new(&ragged)), "ragged csv");
    assert_io_error(&err, &ragged, &["csv"]);
}

/// CSV's edge cases, each read or refused naming the file: an empty file
/// (no header to name the columns), a header alone (no rows of those
/// columns), invalid UTF-8 and a ragged row (naming the line).
#[test]
fn csv_edge_cases_are_read_or_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    let err = expect_err(read(Read::new(&empty)), "empty csv");
    assert_io_error(&err, &empty, &["empty", "header"]);

    let header = dir.path().join("header.csv");
    std::fs::write(&header, "a,b,c\n").unwrap();
    let table = read(Read::new(&header)).unwrap();
    assert_eq!(table.num_rows(), 0);
    let names: Vec<&str> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);

    let latin1 = dir.path().join("latin1.csv");
    std::fs::write(&latin1, b"name,x\ncaf\xe9,1\n").unwrap();
    let err = expect_err(read(Read::new(&latin1)), "latin-1 csv");
    assert_io_error(&err, &latin1, &["UTF-8", "line"]);

    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3,4\n5\n").unwrap();
    let err = expect_err(read(Read::new(&ragged)), "ragged csv");
    assert_io_error(&err, &ragged, &["line 4"]);
}

/// The mapped IPC reader checks what the footer declares before trusting it:
/// a footer claiming more bytes than the file, a block outside the file, and
/// seeded random byte flips all over a valid file end as an I/O error naming
/// the file (or read fine), never as a panic or a giant allocation.
#[test]
fn damaged_ipc_files_are_refused_by_the_mapped_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.arrow");
    let original = all_types(2000, 4, 21, false);
    write_table(&original, &path, FileFormat::ArrowFile).unwrap();
    let good = std::fs::read(&path).unwrap();
    let n = good.len();
    let footer_len = i32::from_le_bytes(good[n - 10..n - 6].try_into().unwrap()) as usize;

    let damaged = dir.path().join("damaged.arrow");
    let refused = |bytes: &[u8], what: &str, fragments: &[&str]| {
        std::fs::write(&damaged, bytes).unwrap();
        let err = expect_err(read(Read::new(&damaged)), what);
        assert_io_error(&err, &damaged, fragments);
    };
    let mut huge_footer = good.clone();
    huge_footer[n - 10..n - 6].copy_from_slice(&i32::MAX.to_le_bytes());
    refused(
        &huge_footer,
        "a footer longer than the file",
        &["damaged", "footer"],
    );
    refused(&good[..12], "a stub", &["damaged"]);

    let mut rng = fuseflow::data::Rng::new(5);
    let mut outcomes = [0usize; 2];
    for round in 0..200 {
        let mut bytes = good.clone();
        // Half the rounds hit the footer (offsets, lengths, schema), half anywhere.
        let (lo, span) = if round % 2 == 0 {
            (n - 10 - footer_len, footer_len)
        } else {
            (0, n)
        };
        for _ in 0..1 + rng.next_u64() % 4 {
            let at = lo + (rng.next_u64() as usize) % span;
            bytes[at] ^= 1 << (rng.next_u64() % 8);
        }
        std::fs::write(&damaged, &bytes).unwrap();
        match read(Read::new(&damaged)) {
            Ok(_) => outcomes[0] += 1,
            Err(err) => {
                assert_io_error(&err, &damaged, &[]);
                outcomes[1] += 1;
            }
        }
    }
    assert!(outcomes[1] > 0, "no flip was refused: {outcomes:?}");
}

/// A Parquet file without columns can declare any row count, and nothing
/// in it backs the count: a reader that believed the 2^40 rows of this
/// footer would produce empty batches for hours. It is refused at once,
/// naming the file.
#[test]
fn a_parquet_file_without_columns_is_refused() {
    use parquet::file::metadata::{
        FileMetaData, ParquetMetaData, ParquetMetaDataWriter, RowGroupMetaData,
    };
    use parquet::schema::types::{SchemaDescriptor, Type};

    let root = Type::group_type_builder("schema").build().unwrap();
    let schema = Arc::new(SchemaDescriptor::new(Arc::new(root)));
    let rows = 1i64 << 40;
    let group = RowGroupMetaData::builder(Arc::clone(&schema))
        .set_num_rows(rows)
        .build()
        .unwrap();
    let file = FileMetaData::new(1, rows, None, None, schema, None);
    let mut bytes = b"PAR1".to_vec();
    ParquetMetaDataWriter::new(&mut bytes, &ParquetMetaData::new(file, vec![group]))
        .finish()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_columns.parquet");
    std::fs::write(&path, bytes).unwrap();
    let started = std::time::Instant::now();
    let err = expect_err(read(Read::new(&path)), "a file without columns");
    assert_io_error(&err, &path, &["damaged", "holds no column"]);
    assert!(
        started.elapsed().as_secs() < 5,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn an_unknown_extension_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["data.txt", "data", "data.json"] {
        let path = dir.path().join(file);
        std::fs::write(&path, "x\n1\n").unwrap();
        let err = expect_err(read(Read::new(&path)), file);
        assert_io_error(&err, &path, &["unknown file format", ".parquet", ".csv"]);
        let err = expect_err(FileFormat::from_path(&path), file);
        assert_io_error(&err, &path, &["unknown file format"]);

        // Writing too: rejected while validating.
        let mut p = Pipeline::new("write");
        p.add("src", MemorySource::new(all_types(3, 1, 9, false)));
        p.add("write", Write::new(dir.path().join(format!("out-{file}"))))
            .input("data", "src");
        let err = expect_err(p.validate(), file);
        assert_msg(&err, &["unknown file format"]);
    }
    // Extensions are case-insensitive; format names parse.
    assert_eq!(
        FileFormat::from_path(Path::new("X.PARQUET")).unwrap(),
        FileFormat::Parquet
    );
    assert_eq!(FileFormat::parse("arrows"), Some(FileFormat::ArrowStream));
    assert_eq!(FileFormat::parse("xlsx"), None);
}

#[test]
fn an_unwritable_target_is_an_io_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let target = blocker.join("out.parquet");
    let err = expect_err(
        write_table(&all_types(3, 1, 10, false), &target, FileFormat::Parquet),
        "write under a file",
    );
    assert_io_error(&err, &target, &["cannot write"]);
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "only the blocking file remains");
}

// ================================================================ normalization

#[test]
fn memory_sources_normalize_narrow_and_large_types() {
    let b = batch(vec![
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(-128), None, Some(127)])) as ArrayRef,
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![Some(-300), Some(5), None])) as ArrayRef,
        ),
        (
            "u8",
            Arc::new(UInt8Array::from(vec![Some(255), None, Some(0)])) as ArrayRef,
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![None, Some(65535), Some(1)])) as ArrayRef,
        ),
        (
            "u32",
            Arc::new(UInt32Array::from(vec![Some(u32::MAX), None, Some(7)])) as ArrayRef,
        ),
        (
            "large",
            Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("ccc")])) as ArrayRef,
        ),
        (
            "dict",
            Arc::new(
                vec![Some("x"), None, Some("x")]
                    .into_iter()
                    .collect::<DictionaryArray<Int32Type>>(),
            ) as ArrayRef,
        ),
    ]);
    let mut p = Pipeline::new("normalize");
    p.add("src", MemorySource::new(Table::from_batch(b)));
    p.add("sum", Derive::new([("total", col("i8") + col("u16"))]))
        .input("data", "src");
    // The planned schema is already normalized.
    let text = p.explain().unwrap();
    assert!(
        text.contains(
            "out out: (i8: i32, i16: i32, u8: i32, u16: i32, u32: i64, large: utf8, dict: utf8)"
        ),
        "{text}"
    );
    let run = p.run().unwrap();
    let out = run.output("src").unwrap();
    assert_eq!(
        types(out),
        [
            DataType::Int32,
            DataType::Int32,
            DataType::Int32,
            DataType::Int32,
            DataType::Int64,
            DataType::Utf8,
            DataType::Utf8
        ]
    );
    assert_eq!(i32_column(out, "i8"), [Some(-128), None, Some(127)]);
    assert_eq!(i32_column(out, "i16"), [Some(-300), Some(5), None]);
    assert_eq!(i32_column(out, "u8"), [Some(255), None, Some(0)]);
    assert_eq!(i32_column(out, "u16"), [None, Some(65535), Some(1)]);
    assert_eq!(i64_column(out, "u32"), [Some(4294967295), None, Some(7)]);
    assert_eq!(
        str_column(out, "large"),
        [Some("a".to_string()), None, Some("ccc".to_string())]
    );
    assert_eq!(
        str_column(out, "dict"),
        [Some("x".to_string()), None, Some("x".to_string())]
    );
    // Downstream steps compute on the normalized types.
    let sum = run.output("sum").unwrap();
    assert_eq!(dtype_of(sum, "total"), DataType::Int32);
    assert_eq!(i32_column(sum, "total"), [None, None, Some(128)]);
}

#[test]
fn files_with_narrow_types_are_normalized_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(1), None, Some(-3)])) as ArrayRef,
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![Some(60000), Some(2), None])) as ArrayRef,
        ),
        (
            "large",
            Arc::new(LargeStringArray::from(vec![None, Some("b"), Some("c")])) as ArrayRef,
        ),
    ]);
    for (file, format) in [
        ("narrow.parquet", FileFormat::Parquet),
        ("narrow.arrow", FileFormat::ArrowFile),
        ("narrow.arrows", FileFormat::ArrowStream),
    ] {
        let path = dir.path().join(file);
        write_table(&Table::from_batch(b.clone()), &path, format).unwrap();
        let back = read(Read::new(&path)).unwrap();
        assert_eq!(
            types(&back),
            [DataType::Int32, DataType::Int32, DataType::Utf8],
            "{file}"
        );
        assert_eq!(i32_column(&back, "i8"), [Some(1), None, Some(-3)], "{file}");
        assert_eq!(
            i32_column(&back, "u16"),
            [Some(60000), Some(2), None],
            "{file}"
        );
        assert_eq!(
            str_column(&back, "large")[1],
            Some("b".to_string()),
            "{file}"
        );
        assert!(back.column("t", "large").unwrap()[0].is_null(0));
    }
}

// ================================================================ streaming

/// Three f32 columns with 5% nulls in chunks of odd sizes (an empty one
/// among them).
fn scoring_input(seed: u64) -> Table {
    let mut rng = Rng::new(seed);
    let field = |name| arrow_schema::Field::new(name, DataType::Float32, true);
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        field("a"),
        field("b"),
        field("c"),
    ]));
    let batches: Vec<RecordBatch> = [1000, 1, 17, 4097, 0, 3000]
        .into_iter()
        .map(|n| {
            let mut column = || {
                let values: Vec<Option<f32>> = (0..n)
                    .map(|_| (!rng.chance(0.05)).then(|| rng.range(-10.0, 10.0) as f32))
                    .collect();
                f32_array(&values)
            };
            let columns = vec![column(), column(), column()];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        })
        .collect();
    Table::try_new(schema, batches).unwrap()
}

/// The e2e pipeline's shape over `source`: fit, fill nulls with the mean,
/// z-score, derive a score, keep it, write it to `out`.
fn scoring(source: impl fuseflow::Step + 'static, out: &Path) -> Pipeline {
    let columns = ["a", "b", "c"];
    let mut p = Pipeline::new("stream");
    p.add("raw", source);
    p.add("stats", FitStats::new(columns)).input("data", "raw");
    p.add("filled", FillNull::new(columns, FillValue::Mean))
        .inputs(["raw", "stats"]);
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["filled", "stats"]);
    p.add(
        "scored",
        Derive::new([("score", col("a") * 0.5 + col("b") - col("c"))]),
    )
    .input("data", "scaled");
    p.add("selected", Select::new(["score"]))
        .input("data", "scored");
    p.add("save", Write::new(out)).input("data", "selected");
    p
}

#[test]
fn a_streamed_pipeline_equals_the_same_pipeline_on_a_table_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let input = scoring_input(11);
    let n = input.num_rows();
    for (file, format) in [
        ("in.arrow", FileFormat::ArrowFile),
        ("in.parquet", FileFormat::Parquet),
    ] {
        let source = dir.path().join(file);
        write_table(&input, &source, format).unwrap();
        // The reference: the file read whole, then the same steps on the table.
        let whole = read(Read::new(&source)).unwrap();
        let expected_out = dir.path().join("expected.arrow");
        let expected = scoring(MemorySource::new(whole), &expected_out)
            .run()
            .unwrap();
        let expected_scores = read(Read::new(&expected_out)).unwrap();

        let policies = [
            None,
            Some(CachePolicy::Materialized),
            Some(CachePolicy::EveryStep),
        ];
        for policy in policies {
            let what = format!("{file}, workspace {policy:?}");
            let out = dir.path().join("out.arrow");
            let ws_dir = tempfile::tempdir().unwrap();
            let mut options = RunOptions::default();
            if let Some(policy) = policy {
                let ws = Workspace::open(ws_dir.path()).unwrap();
                options = options.with_workspace(Arc::new(ws));
                options.cache = policy;
            }
            let run = scoring(Read::new(&source), &out)
                .run_with(&options)
                .unwrap();
            assert_same_values(&read(Read::new(&out)).unwrap(), &expected_scores, &what);
            assert_same_values(
                run.output("stats").unwrap(),
                expected.output("stats").unwrap(),
                &what,
            );
            // The chain's output was never held, yet can be fetched from
            // this run: it is computed again.
            assert_same_values(run.output("selected").unwrap(), &expected_scores, &what);
            let report = |name: &str| run.steps.iter().find(|s| s.name == name).unwrap();
            assert_eq!(report("raw").rows, vec![n], "{what}");
            if policy == Some(CachePolicy::EveryStep) {
                // Every table is stored, so nothing is fused.
                assert_eq!(report("selected").rows, vec![n], "{what}");
            } else {
                assert!(
                    report("save")
                        .notes
                        .iter()
                        .any(|note| note.contains("batch by batch")),
                    "{what}: {:?}",
                    report("save").notes
                );
                assert_eq!(report("scaled").rows, vec![n], "{what}: rows streamed");
            }
        }
    }
}

#[test]
fn a_streamed_read_reports_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.parquet");
    write_table(&scoring_input(12), &source, FileFormat::Parquet).unwrap();
    let pipeline = scoring(Read::new(&source), &dir.path().join("out.arrow"));
    // Damaged after planning would read its footer: the run fails naming it.
    std::fs::write(&source, b"PAR1 not really parquet PAR1").unwrap();
    let err = pipeline.run().unwrap_err();
    assert_io_error(&err, &source, &["parquet"]);
    assert!(
        !dir.path().join("out.arrow").exists(),
        "nothing half written"
    );
}

#[test]
fn a_parquet_source_decodes_only_the_columns_a_step_reads() {
    use fuseflow::pipeline::step::SourceFile;
    use fuseflow::pipeline::{Step, StepContext, Stream};

    let dir = tempfile::tempdir().unwrap();
    let input = scoring_input(13);
    let source = dir.path().join("wide.parquet");
    write_table(&input, &source, FileFormat::Parquet).unwrap();
    let file = SourceFile {
        path: source.clone(),
        format: None,
        batch_rows: 1000,
    };
    let stream = fuseflow::pipeline::io::source_stream(&file, u64::MAX)
        .unwrap()
        .unwrap();
    let nulls_of = |s: &Stream, column: usize| -> (usize, usize) {
        let t = s.collect().unwrap();
        let chunks = t.column("test", t.schema().field(column).name()).unwrap();
        (chunks.iter().map(|c| c.null_count()).sum(), t.num_rows())
    };
    // Whole: 'c' has values. Narrowed to 'a' and 'b': 'c' comes as nulls
    // (not decoded), its field nullable, and 'a' and 'b' as they are.
    let (c_nulls, rows) = nulls_of(&stream, 2);
    assert!(c_nulls < rows / 2, "{c_nulls} of {rows}");
    let narrowed = stream.reading_only(&[true, true, false]).unwrap();
    assert_eq!(nulls_of(&narrowed, 2), (rows, rows));
    let (whole, narrow) = (stream.collect().unwrap(), narrowed.collect().unwrap());
    for name in ["a", "b"] {
        assert_eq!(
            whole.column("t", name).unwrap(),
            narrow.column("t", name).unwrap()
        );
    }

    /// Reads only 'a', and records the null count of 'c' it was given.
    #[derive(Debug, Default)]
    struct OnlyA(std::sync::Mutex<Option<(usize, usize)>>);
    impl Step for OnlyA {
        fn kind(&self) -> &str {
            "only_a"
        }
        fn inputs(&self) -> &[&str] {
            &["data"]
        }
        fn outputs(&self) -> &[&str] {
            &[]
        }
        fn params(&self) -> String {
            String::new()
        }
        fn output_schemas(
            &self,
            _: StepContext,
            _: &[arrow_schema::SchemaRef],
        ) -> fuseflow::Result<Vec<arrow_schema::SchemaRef>> {
            Ok(vec![])
        }
        fn run(&self, _: StepContext, _: &[Table]) -> fuseflow::Result<Vec<Table>> {
            unreachable!("it streams")
        }
        fn streams_input(&self) -> bool {
            true
        }
        fn columns_read(&self) -> Option<Vec<String>> {
            Some(vec!["a".into()])
        }
        fn run_stream(
            &self,
            _: StepContext,
            data: &Stream,
            _: &[Table],
        ) -> fuseflow::Result<Vec<Table>> {
            let t = data.collect()?;
            let c: usize = t
                .column("only_a", "c")?
                .iter()
                .map(|c| c.null_count())
                .sum();
            *self.0.lock().unwrap() = Some((c, t.num_rows()));
            Ok(vec![])
        }
    }
    let step = std::sync::Arc::new(OnlyA::default());
    let mut p = Pipeline::new("narrow");
    p.add("raw", Read::new(&source));
    p.add_shared("use", step.clone()).input("data", "raw");
    p.run().unwrap();
    assert_eq!(
        *step.0.lock().unwrap(),
        Some((rows, rows)),
        "the scheduler narrowed its input"
    );
    // The same pipeline's fused chain reads only what its kept output needs,
    // with results equal to those over the whole table.
    let out = dir.path().join("kept.arrow");
    let mut p = Pipeline::new("chain");
    p.add("raw", Read::new(&source));
    p.add("stats", FitStats::new(["a"])).input("data", "raw");
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["raw", "stats"]);
    p.add("kept", Select::new(["a"])).input("data", "scaled");
    p.add("save", Write::new(&out)).input("data", "kept");
    let run = p.run().unwrap();
    let mut q = Pipeline::new("expected");
    q.add("raw", MemorySource::new(whole));
    q.add("stats", FitStats::new(["a"])).input("data", "raw");
    q.add("scaled", Scale::new(ScaleMethod::ZScore))
        .inputs(["raw", "stats"]);
    q.add("kept", Select::new(["a"])).input("data", "scaled");
    let expected = q.run().unwrap();
    assert_same_values(
        &read(Read::new(&out)).unwrap(),
        expected.output("kept").unwrap(),
        "kept",
    );
    // A member before the select, fetched from the run, is whole: computed
    // again from the whole input, not the narrowed one.
    assert_same_values(
        run.output("scaled").unwrap(),
        expected.output("scaled").unwrap(),
        "scaled",
    );
}

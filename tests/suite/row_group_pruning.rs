//! Row-group pruning by statistics: a `filter` reading a Parquet file skips
//! the row groups whose footer statistics prove that no row satisfies its
//! predicate, and its output equals filtering the whole file.

use std::path::Path;

use arrow_array::{ArrayRef, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::common::{self, batch, bool_array, f32_array, f64_array, i64_array};
use crate::workspace_processes::{fuseflow_in, ok, read_then_spec};

use fuseflow::Pipeline;
use fuseflow::ir::parse_expr;
use fuseflow::pipeline::io::{MemorySource, Read};
use fuseflow::pipeline::prep::Filter;

/// Rows per row group, and row groups, of the test file.
const GROUP_ROWS: usize = 100;
const GROUPS: usize = 10;

/// 1000 rows, sorted by `id`, so that each group of 100 covers its own
/// range: `id` (i64), `f0 = id / 100` (f32), `nul` (f64: groups 0-2 all
/// null, then `id` with every 7th row of the odd groups null), `x_nan` (f64:
/// group 0 all NaN, then `id / 100` with every 10th row NaN), `nostats`
/// (f64, written without statistics), `flag` (bool, true from row 900).
fn rows() -> RecordBatch {
    let n = GROUP_ROWS * GROUPS;
    let ids: Vec<i64> = (0..n as i64).collect();
    let group = |i: i64| i as usize / GROUP_ROWS;
    let nul: Vec<Option<f64>> = ids
        .iter()
        .map(|&i| (group(i) >= 3 && !(group(i) % 2 == 1 && i % 7 == 0)).then_some(i as f64))
        .collect();
    let nan: Vec<Option<f64>> = ids
        .iter()
        .map(|&i| {
            Some(if group(i) == 0 || i % 10 == 0 {
                f64::NAN
            } else {
                i as f64 / 100.0
            })
        })
        .collect();
    let wrap = |v: Vec<i64>| i64_array(&v.into_iter().map(Some).collect::<Vec<_>>());
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", wrap(ids.clone())),
        (
            "f0",
            f32_array(
                &ids.iter()
                    .map(|&i| Some(i as f32 / 100.0))
                    .collect::<Vec<_>>(),
            ),
        ),
        ("nul", f64_array(&nul)),
        ("x_nan", f64_array(&nan)),
        (
            "nostats",
            f64_array(&ids.iter().map(|&i| Some(i as f64)).collect::<Vec<_>>()),
        ),
        (
            "flag",
            bool_array(&ids.iter().map(|&i| Some(i >= 900)).collect::<Vec<_>>()),
        ),
    ];
    batch(columns)
}

/// `rows()` written to `path` in row groups of [`GROUP_ROWS`], `nostats`
/// without statistics.
fn write_file(path: &Path) -> RecordBatch {
    let rows = rows();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(GROUP_ROWS))
        .set_column_statistics_enabled(ColumnPath::from("nostats"), EnabledStatistics::None)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, rows.schema(), Some(props)).unwrap();
    writer.write(&rows).unwrap();
    writer.close().unwrap();
    rows
}

/// The test file in a temporary directory, and its rows.
fn fixture() -> (tempfile::TempDir, std::path::PathBuf, RecordBatch) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.parquet");
    let rows = write_file(&path);
    (dir, path, rows)
}

/// `read -> filter(predicate)` over `path`: the filtered rows and the
/// filter's notes.
fn filtered_file(path: &Path, predicate: &str) -> (RecordBatch, Vec<String>) {
    let mut p = Pipeline::new("pruned");
    p.add("src", Read::new(path));
    p.add("recent", Filter::new(parse_expr(predicate).unwrap()))
        .input("data", "src");
    let run = p.run().unwrap();
    let out = run.output("recent").unwrap().concat().unwrap();
    let report = run.steps.iter().find(|s| s.name == "recent").unwrap();
    (out, report.notes.clone())
}

/// The same filter over the whole table in memory (nothing to prune).
fn filtered_whole(rows: &RecordBatch, predicate: &str) -> RecordBatch {
    let mut p = Pipeline::new("whole");
    p.add("src", MemorySource::new(common::chunked(rows, 3)));
    p.add("recent", Filter::new(parse_expr(predicate).unwrap()))
        .input("data", "src");
    p.run().unwrap().output("recent").unwrap().concat().unwrap()
}

/// The rows as text: equal batches print alike, NaN included (which
/// `==` on arrays would call unequal to itself).
fn text(batch: &RecordBatch) -> String {
    arrow_cast::pretty::pretty_format_batches(std::slice::from_ref(batch))
        .unwrap()
        .to_string()
}

/// The filter over the file equals the filter over the whole table, and
/// the notes say `pruned` row groups were skipped (no note: `None`).
#[track_caller]
fn check(path: &Path, rows: &RecordBatch, predicate: &str, pruned: Option<usize>) -> usize {
    let (got, notes) = filtered_file(path, predicate);
    let want = filtered_whole(rows, predicate);
    let names = |b: &RecordBatch| -> Vec<(String, arrow_schema::DataType)> {
        let schema = b.schema();
        let fields = schema.fields().iter();
        fields
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    assert_eq!(names(&got), names(&want), "{predicate}: schema");
    assert_eq!(text(&got), text(&want), "{predicate}: rows");
    let note = notes
        .iter()
        .find(|n| n.contains("row groups by statistics"));
    match pruned {
        Some(k) => assert_eq!(
            note.map(String::as_str),
            Some(format!("pruned {k} of {GROUPS} row groups by statistics").as_str()),
            "{predicate}: {notes:?}"
        ),
        None => assert_eq!(note, None, "{predicate}: nothing to prune by"),
    }
    got.num_rows()
}

#[test]
fn a_filter_on_a_sorted_column_skips_the_groups_out_of_range() {
    let (_dir, path, rows) = fixture();
    assert_eq!(check(&path, &rows, "f0 >= 7.0", Some(7)), 300);
    assert_eq!(check(&path, &rows, "f0 > 2.5", Some(2)), 749);
    assert_eq!(check(&path, &rows, "id >= 300 and id < 500", Some(8)), 200);
    assert_eq!(check(&path, &rows, "flag", Some(9)), 100);
}

#[test]
fn literals_on_the_left_and_equality() {
    let (_dir, path, rows) = fixture();
    assert_eq!(check(&path, &rows, "250 > id", Some(7)), 250);
    assert_eq!(check(&path, &rows, "7.0 <= f0", Some(7)), 300);
    assert_eq!(check(&path, &rows, "id == 555", Some(9)), 1);
    assert_eq!(check(&path, &rows, "555 == id and f0 > 0", Some(9)), 1);
}

#[test]
fn a_predicate_true_everywhere_prunes_nothing() {
    let (_dir, path, rows) = fixture();
    assert_eq!(check(&path, &rows, "id >= 0", Some(0)), 1000);
    assert_eq!(check(&path, &rows, "id >= 0 or id < -5", Some(0)), 1000);
}

#[test]
fn a_predicate_false_everywhere_prunes_everything_and_keeps_the_schema() {
    let (_dir, path, rows) = fixture();
    assert_eq!(check(&path, &rows, "id > 5000", Some(GROUPS)), 0);
    let (out, _) = filtered_file(&path, "id < 0 and f0 > 1");
    let names: Vec<&str> = rows
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let got: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(got, names);
}

#[test]
fn nulls_satisfy_no_comparison_and_null_tests_use_null_counts() {
    let (_dir, path, rows) = fixture();
    // Groups 0-2 are all null, groups 4-9 start at 400.
    assert_eq!(check(&path, &rows, "nul < 350.0", Some(9)), 50 - 7);
    // Only the odd groups from 3 have nulls besides groups 0-2.
    check(&path, &rows, "is_null(nul)", Some(3));
    check(&path, &rows, "not is_null(nul)", Some(3));
    check(&path, &rows, "is_null(nul) and id > 700", Some(8));
}

#[test]
fn nan_in_a_float_column_never_prunes_wrongly() {
    let (_dir, path, rows) = fixture();
    // Group 0 is all NaN: its statistics bound nothing, so it is read (and
    // filtered out); NaN rows elsewhere sit outside the recorded bounds.
    check(&path, &rows, "x_nan < 1.5", Some(8));
    check(&path, &rows, "x_nan > 0.5", Some(0));
    check(&path, &rows, "x_nan == 4.5", Some(8));
    check(&path, &rows, "x_nan >= 9.0 or x_nan < 0.0", Some(8));
    check(&path, &rows, "not is_null(x_nan)", Some(0));
}

#[test]
fn a_column_without_statistics_prunes_nothing() {
    let (_dir, path, rows) = fixture();
    assert_eq!(check(&path, &rows, "nostats > 500.0", Some(0)), 499);
    // The other side of an `and` still prunes.
    check(&path, &rows, "nostats > 500.0 and id < 600", Some(4));
}

#[test]
fn a_predicate_on_an_expression_or_a_cast_is_not_analysed() {
    let (_dir, path, rows) = fixture();
    assert_eq!(check(&path, &rows, "f0 * 2 > 3", None), 849);
    check(&path, &rows, "id > 2.5", None);
    check(&path, &rows, "cast(id, f64) > 100", None);
    check(&path, &rows, "id != 3", None);
    check(&path, &rows, "not (id > 3)", None);
}

#[test]
fn a_reused_read_is_pruned_for_a_changed_filter() {
    let (dir, path, rows) = fixture();
    let ws = std::sync::Arc::new(fuseflow::Workspace::open(dir.path().join("ws")).unwrap());
    let options = fuseflow::RunOptions::default().with_workspace(ws);
    let run = |predicate: &str| {
        let mut p = Pipeline::new("pruned");
        p.add("src", Read::new(&path));
        p.add("recent", Filter::new(parse_expr(predicate).unwrap()))
            .input("data", "src");
        p.run_with(&options).unwrap()
    };
    run("f0 >= 7.0");
    let second = run("250 > id");
    let report = |name: &str| second.steps.iter().find(|s| s.name == name).unwrap();
    assert!(matches!(
        report("src").cache,
        fuseflow::CacheUse::Hit { .. }
    ));
    assert_eq!(report("recent").cache, fuseflow::CacheUse::Miss);
    assert!(
        report("recent")
            .notes
            .contains(&"pruned 7 of 10 row groups by statistics".to_string()),
        "{:?}",
        report("recent").notes
    );
    let out = second.output("recent").unwrap().concat().unwrap();
    assert_eq!(text(&out), text(&filtered_whole(&rows, "250 > id")));
}

/// The rows of a file `fuseflow output` wrote.
fn read_back(path: &Path) -> RecordBatch {
    let mut p = Pipeline::new("back");
    p.add("t", Read::new(path));
    p.run().unwrap().output("t").unwrap().concat().unwrap()
}

/// The stdout of `fuseflow ARGS` run in `dir` (its default workspace
/// `dir/.fuseflow`), which must succeed.
fn cli(dir: &Path, args: &[&str]) -> String {
    ok(fuseflow_in(dir, args))
}

#[test]
fn the_cli_reports_pruning_and_a_warm_run_hits_every_step() {
    let (dir, _, rows) = fixture();
    let spec = read_then_spec(
        dir.path(),
        "recent",
        "data.parquet",
        "name = \"recent\"\nkind = \"filter\"\ninput = \"raw\"\npredicate = \"f0 >= 7.0\"\n",
    );
    let spec = spec.to_str().unwrap();
    let cold = cli(dir.path(), &["run", spec]);
    assert!(
        cold.contains("note: pruned 7 of 10 row groups by statistics"),
        "{cold}"
    );
    let line = |out: &str, step: &str| -> String {
        let found = out.lines().find(|l| l.starts_with(&format!("{step} ")));
        found
            .unwrap_or_else(|| panic!("no line for {step}: {out}"))
            .to_string()
    };
    assert!(line(&cold, "recent").contains(" 300 "), "{cold}");
    assert!(line(&cold, "recent").ends_with("miss"), "{cold}");
    let shown = cli(dir.path(), &["show", "latest"]);
    assert!(shown.contains("pruned 7 of 10 row groups"), "{shown}");

    let warm = cli(dir.path(), &["run", spec]);
    for step in ["raw", "recent"] {
        assert!(line(&warm, step).contains("hit ("), "{step}: {warm}");
    }
    // The stored output is the filtered rows, not a pruned read of the file.
    let arrow = dir.path().join("recent.arrow");
    cli(
        dir.path(),
        &["output", "latest", "recent", "-o", arrow.to_str().unwrap()],
    );
    let back = read_back(&arrow);
    assert_eq!(text(&back), text(&filtered_whole(&rows, "f0 >= 7.0")));
    let src = dir.path().join("raw.arrow");
    cli(
        dir.path(),
        &["output", "latest", "raw", "-o", src.to_str().unwrap()],
    );
    let whole = read_back(&src);
    assert_eq!(
        whole.num_rows(),
        GROUPS * GROUP_ROWS,
        "the read is the whole file"
    );
}

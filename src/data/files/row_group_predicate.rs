//! [`RowGroupPredicate`]: what a filter asks of a row group, checked against
//! the column statistics in a Parquet footer (min, max, null count) so that
//! a scan can skip the row groups in which no row can satisfy it.
//!
//! The check is conservative by construction: [`RowGroupPredicate::may_match`]
//! answers `false` only when the statistics prove that no row satisfies the
//! predicate. Missing statistics, NaN bounds, a column that is nested, absent
//! or of another type than the literal, and an empty conjunction all answer
//! `true` (keep the group). The filter still evaluates its whole predicate on
//! the rows that are read, so skipping changes what is decoded, never the
//! result.
//!
//! The predicate is plain data here; the pipeline builds it from a filter's
//! typed expression (`pipeline::pruning`), so this floor needs no step.

use std::cmp::Ordering;

use arrow_schema::{DataType, Schema};
use parquet::file::metadata::{ColumnChunkMetaData, RowGroupMetaData};
use parquet::file::statistics::Statistics;

/// A comparison of a column (on the left) with a literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// `column == literal`.
    Eq,
    /// `column < literal`.
    Lt,
    /// `column <= literal`.
    LtEq,
    /// `column > literal`.
    Gt,
    /// `column >= literal`.
    GtEq,
}

impl Comparison {
    /// The same comparison with its operands swapped: `literal < column` is
    /// `column > literal`.
    pub fn flipped(self) -> Self {
        match self {
            Comparison::Eq => Comparison::Eq,
            Comparison::Lt => Comparison::Gt,
            Comparison::LtEq => Comparison::GtEq,
            Comparison::Gt => Comparison::Lt,
            Comparison::GtEq => Comparison::LtEq,
        }
    }
}

/// A literal in the type its column is compared in (the filter's kernel
/// compares in that type too: an f32 column against `0.1` compares with
/// `0.1f32`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A boolean (`false < true`).
    Bool(bool),
    /// A 32-bit integer.
    Int32(i32),
    /// A 64-bit integer.
    Int64(i64),
    /// A 32-bit float.
    Float32(f32),
    /// A 64-bit float.
    Float64(f64),
}

impl Value {
    /// The Arrow type a file's column must have for its statistics to be
    /// compared with this value.
    pub fn arrow_type(self) -> DataType {
        match self {
            Value::Bool(_) => DataType::Boolean,
            Value::Int32(_) => DataType::Int32,
            Value::Int64(_) => DataType::Int64,
            Value::Float32(_) => DataType::Float32,
            Value::Float64(_) => DataType::Float64,
        }
    }

    /// How `self` orders against `other`: `None` across types or when
    /// either is NaN (which no comparison bounds).
    fn compare(self, other: Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(&b)),
            (Value::Int32(a), Value::Int32(b)) => Some(a.cmp(&b)),
            (Value::Int64(a), Value::Int64(b)) => Some(a.cmp(&b)),
            (Value::Float32(a), Value::Float32(b)) => a.partial_cmp(&b),
            (Value::Float64(a), Value::Float64(b)) => a.partial_cmp(&b),
            _ => None,
        }
    }
}

/// A condition on a row that column statistics can refute for a whole row
/// group: comparisons of a top-level column with a literal, null tests, and
/// `and` / `or` of those. A null never satisfies a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum RowGroupPredicate {
    /// `column op value`.
    Compare {
        /// The column's name (a top-level field of the file).
        column: String,
        /// The comparison, the column on the left.
        op: Comparison,
        /// The literal, in the column's type.
        value: Value,
    },
    /// `is_null(column)`.
    IsNull(String),
    /// `not is_null(column)`.
    IsNotNull(String),
    /// Every one holds (an empty list always holds).
    And(Vec<RowGroupPredicate>),
    /// At least one holds (an empty list never holds).
    Or(Vec<RowGroupPredicate>),
}

impl RowGroupPredicate {
    /// Whether some row of `group` may satisfy the predicate, judging by its
    /// statistics alone; `schema` is the file's Arrow schema. `false` is a
    /// proof that none does; anything unknown answers `true`.
    pub fn may_match(&self, schema: &Schema, group: &RowGroupMetaData) -> bool {
        let rows = u64::try_from(group.num_rows()).unwrap_or(0);
        if rows == 0 {
            return false;
        }
        let nulls = |column: &str| {
            chunk(group, column)
                .and_then(ColumnChunkMetaData::statistics)
                .and_then(Statistics::null_count_opt)
        };
        match self {
            RowGroupPredicate::Compare { column, op, value } => {
                may_compare(schema, group, rows, column, *op, *value)
            }
            RowGroupPredicate::IsNull(column) => nulls(column).is_none_or(|n| n > 0),
            RowGroupPredicate::IsNotNull(column) => nulls(column).is_none_or(|n| n < rows),
            RowGroupPredicate::And(all) => all.iter().all(|p| p.may_match(schema, group)),
            RowGroupPredicate::Or(any) => any.iter().any(|p| p.may_match(schema, group)),
        }
    }
}

/// The chunk of top-level column `name` in `group` (none for a nested or
/// missing column).
fn chunk<'a>(group: &'a RowGroupMetaData, name: &str) -> Option<&'a ColumnChunkMetaData> {
    group
        .columns()
        .iter()
        .find(|c| matches!(c.column_path().parts(), [only] if only == name))
}

/// Whether some row of a group of `rows` rows may have `column op value`.
fn may_compare(
    schema: &Schema,
    group: &RowGroupMetaData,
    rows: u64,
    column: &str,
    op: Comparison,
    value: Value,
) -> bool {
    let typed = schema
        .field_with_name(column)
        .is_ok_and(|f| *f.data_type() == value.arrow_type());
    let stats = chunk(group, column).and_then(ColumnChunkMetaData::statistics);
    let Some(stats) = stats.filter(|_| typed) else {
        return true;
    };
    // A null satisfies no comparison: a group of nulls has no match.
    if stats.null_count_opt() == Some(rows) {
        return false;
    }
    let Some((min, max)) = bounds(stats) else {
        return true;
    };
    let (Some(low), Some(high)) = (min.compare(value), max.compare(value)) else {
        return true;
    };
    match op {
        Comparison::Eq => low != Ordering::Greater && high != Ordering::Less,
        Comparison::Lt => low == Ordering::Less,
        Comparison::LtEq => low != Ordering::Greater,
        Comparison::Gt => high == Ordering::Greater,
        Comparison::GtEq => high != Ordering::Less,
    }
}

/// The minimum and maximum a chunk's statistics record, for the physical
/// types a [`Value`] can be compared with. (Parquet writers leave NaN out
/// of float bounds; a NaN bound, from an older writer, fails to compare and
/// so keeps the group.)
fn bounds(stats: &Statistics) -> Option<(Value, Value)> {
    fn pair<T: Copy>(
        min: Option<&T>,
        max: Option<&T>,
        value: fn(T) -> Value,
    ) -> Option<(Value, Value)> {
        Some((value(*min?), value(*max?)))
    }
    match stats {
        Statistics::Boolean(s) => pair(s.min_opt(), s.max_opt(), Value::Bool),
        Statistics::Int32(s) => pair(s.min_opt(), s.max_opt(), Value::Int32),
        Statistics::Int64(s) => pair(s.min_opt(), s.max_opt(), Value::Int64),
        Statistics::Float(s) => pair(s.min_opt(), s.max_opt(), Value::Float32),
        Statistics::Double(s) => pair(s.min_opt(), s.max_opt(), Value::Float64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch};
    use arrow_schema::Field;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ArrowReaderMetadata;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::schema::types::ColumnPath;

    use super::*;

    /// One row group holding `x` (i32) and `f` (f64), its metadata and the
    /// file's Arrow schema; `stats` false writes no statistics for `f`.
    fn group(x: Vec<Option<i32>>, f: Vec<Option<f64>>, stats: bool) -> (Schema, RowGroupMetaData) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int32, true),
            Field::new("f", DataType::Float64, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(x)),
            Arc::new(Float64Array::from(f)),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let mut props = WriterProperties::builder();
        if !stats {
            props =
                props.set_column_statistics_enabled(ColumnPath::from("f"), EnabledStatistics::None);
        }
        let mut file = tempfile::tempfile().unwrap();
        let mut writer =
            ArrowWriter::try_new(file.try_clone().unwrap(), schema, Some(props.build())).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        file.flush().unwrap();
        let metadata = ArrowReaderMetadata::load(&file, Default::default()).unwrap();
        let group = metadata.metadata().row_group(0).clone();
        (metadata.schema().as_ref().clone(), group)
    }

    fn compare(column: &str, op: Comparison, value: Value) -> RowGroupPredicate {
        RowGroupPredicate::Compare {
            column: column.into(),
            op,
            value,
        }
    }

    #[test]
    fn comparisons_are_refuted_only_outside_the_bounds() {
        let (schema, g) = group(vec![Some(3), Some(7)], vec![Some(1.0), Some(2.0)], true);
        let may = |op, v| compare("x", op, Value::Int32(v)).may_match(&schema, &g);
        assert!(may(Comparison::Gt, 6) && !may(Comparison::Gt, 7));
        assert!(may(Comparison::GtEq, 7) && !may(Comparison::GtEq, 8));
        assert!(may(Comparison::Lt, 4) && !may(Comparison::Lt, 3));
        assert!(may(Comparison::LtEq, 3) && !may(Comparison::LtEq, 2));
        assert!(may(Comparison::Eq, 5) && !may(Comparison::Eq, 8) && !may(Comparison::Eq, 2));
    }

    #[test]
    fn unknowns_keep_the_group() {
        let (schema, g) = group(vec![Some(3), None], vec![Some(1.0), Some(2.0)], false);
        // No statistics for f; a literal of another type than x; no such column.
        assert!(compare("f", Comparison::Gt, Value::Float64(9.0)).may_match(&schema, &g));
        assert!(compare("x", Comparison::Gt, Value::Int64(9)).may_match(&schema, &g));
        assert!(compare("y", Comparison::Gt, Value::Int32(9)).may_match(&schema, &g));
        assert!(!compare("x", Comparison::Gt, Value::Int32(9)).may_match(&schema, &g));
        // A NaN literal or bound never refutes.
        let (schema, g) = group(vec![Some(1)], vec![Some(f64::NAN)], true);
        assert!(compare("f", Comparison::Lt, Value::Float64(f64::NAN)).may_match(&schema, &g));
        assert!(RowGroupPredicate::And(vec![]).may_match(&schema, &g));
        assert!(!RowGroupPredicate::Or(vec![]).may_match(&schema, &g));
    }

    #[test]
    fn nulls_satisfy_no_comparison_and_are_counted() {
        let (schema, g) = group(vec![None, None], vec![Some(1.0), None], true);
        assert!(!compare("x", Comparison::Gt, Value::Int32(i32::MIN)).may_match(&schema, &g));
        assert!(RowGroupPredicate::IsNull("x".into()).may_match(&schema, &g));
        assert!(!RowGroupPredicate::IsNotNull("x".into()).may_match(&schema, &g));
        assert!(RowGroupPredicate::IsNotNull("f".into()).may_match(&schema, &g));
        let (schema, g) = group(vec![Some(1)], vec![Some(1.0)], true);
        assert!(!RowGroupPredicate::IsNull("x".into()).may_match(&schema, &g));
    }

    #[test]
    fn and_needs_every_part_or_needs_one() {
        let (schema, g) = group(vec![Some(3), Some(7)], vec![Some(1.0), Some(2.0)], true);
        let yes = compare("x", Comparison::Gt, Value::Int32(5));
        let no = compare("f", Comparison::Gt, Value::Float64(2.0));
        let and = RowGroupPredicate::And(vec![yes.clone(), no.clone()]);
        let or = RowGroupPredicate::Or(vec![yes, no]);
        assert!(!and.may_match(&schema, &g));
        assert!(or.may_match(&schema, &g));
    }

    #[test]
    fn flipping_swaps_the_direction() {
        assert_eq!(Comparison::Lt.flipped(), Comparison::Gt);
        assert_eq!(Comparison::GtEq.flipped(), Comparison::LtEq);
        assert_eq!(Comparison::Eq.flipped(), Comparison::Eq);
    }
}

//! The stable names column types are hashed under.

use arrow_schema::{DataType, FieldRef, IntervalUnit, TimeUnit, UnionMode};

/// The stable name a column type is hashed under. Names are fuseflow's own,
/// not Arrow's `Display`, so an Arrow upgrade that renders types differently
/// cannot change hashes; the fields of nested types are written with length
/// prefixes, so no two types share a name.
pub fn type_name(dtype: &DataType) -> String {
    let mut out = String::new();
    write_type(&mut out, dtype);
    out
}

fn write_type(out: &mut String, dtype: &DataType) {
    use std::fmt::Write as _;
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    };
    // `write!` into a String cannot fail.
    let _ = match dtype {
        DataType::Null => write!(out, "null"),
        DataType::Boolean => write!(out, "bool"),
        DataType::Int8 => write!(out, "i8"),
        DataType::Int16 => write!(out, "i16"),
        DataType::Int32 => write!(out, "i32"),
        DataType::Int64 => write!(out, "i64"),
        DataType::UInt8 => write!(out, "u8"),
        DataType::UInt16 => write!(out, "u16"),
        DataType::UInt32 => write!(out, "u32"),
        DataType::UInt64 => write!(out, "u64"),
        DataType::Float16 => write!(out, "f16"),
        DataType::Float32 => write!(out, "f32"),
        DataType::Float64 => write!(out, "f64"),
        DataType::Utf8 => write!(out, "utf8"),
        DataType::LargeUtf8 => write!(out, "large_utf8"),
        DataType::Utf8View => write!(out, "utf8_view"),
        DataType::Binary => write!(out, "binary"),
        DataType::LargeBinary => write!(out, "large_binary"),
        DataType::BinaryView => write!(out, "binary_view"),
        DataType::FixedSizeBinary(n) => write!(out, "fixed_binary[{n}]"),
        DataType::Date32 => write!(out, "date32"),
        DataType::Date64 => write!(out, "date64"),
        DataType::Time32(u) => write!(out, "time32[{}]", unit(u)),
        DataType::Time64(u) => write!(out, "time64[{}]", unit(u)),
        DataType::Duration(u) => write!(out, "duration[{}]", unit(u)),
        DataType::Timestamp(u, None) => write!(out, "timestamp[{}]", unit(u)),
        DataType::Timestamp(u, Some(tz)) => {
            write!(out, "timestamp[{},{}:{tz}]", unit(u), tz.len())
        }
        DataType::Interval(u) => write!(
            out,
            "interval[{}]",
            match u {
                IntervalUnit::YearMonth => "year_month",
                IntervalUnit::DayTime => "day_time",
                IntervalUnit::MonthDayNano => "month_day_nano",
            }
        ),
        DataType::Decimal32(p, s) => write!(out, "decimal32({p},{s})"),
        DataType::Decimal64(p, s) => write!(out, "decimal64({p},{s})"),
        DataType::Decimal128(p, s) => write!(out, "decimal128({p},{s})"),
        DataType::Decimal256(p, s) => write!(out, "decimal256({p},{s})"),
        DataType::List(f) => nested(out, "list", [f]),
        DataType::LargeList(f) => nested(out, "large_list", [f]),
        DataType::ListView(f) => nested(out, "list_view", [f]),
        DataType::LargeListView(f) => nested(out, "large_list_view", [f]),
        DataType::FixedSizeList(f, n) => nested(out, &format!("fixed_list[{n}]"), [f]),
        DataType::Map(f, sorted) => nested(out, &format!("map[sorted={sorted}]"), [f]),
        DataType::Struct(fields) => nested(out, "struct", fields.iter()),
        DataType::Union(fields, mode) => {
            let ids: Vec<String> = fields.iter().map(|(id, _)| id.to_string()).collect();
            let mode = match mode {
                UnionMode::Sparse => "sparse",
                UnionMode::Dense => "dense",
            };
            let name = format!("union[{mode};{}]", ids.join(","));
            nested(out, &name, fields.iter().map(|(_, f)| f))
        }
        DataType::Dictionary(key, value) => {
            let _ = write!(out, "dictionary<");
            write_type(out, key);
            let _ = write!(out, ",");
            write_type(out, value);
            write!(out, ">")
        }
        DataType::RunEndEncoded(ends, values) => nested(out, "run_end_encoded", [ends, values]),
    };
}

/// `name<n:field;...>` where each field is its length-prefixed name, its
/// nullability, its type and its metadata (sorted, length-prefixed).
fn nested<'f>(
    out: &mut String,
    name: &str,
    fields: impl IntoIterator<Item = &'f FieldRef>,
) -> std::fmt::Result {
    use std::fmt::Write as _;
    let fields: Vec<&FieldRef> = fields.into_iter().collect();
    let _ = write!(out, "{name}<{}:", fields.len());
    for f in fields {
        let _ = write!(
            out,
            "{}:{}:{}:",
            f.name().len(),
            f.name(),
            u8::from(f.is_nullable())
        );
        write_type(out, f.data_type());
        let mut meta: Vec<_> = f.metadata().iter().collect();
        meta.sort();
        let _ = write!(out, "{{{}", meta.len());
        for (k, v) in meta {
            let _ = write!(out, ":{}:{k}={}:{v}", k.len(), v.len());
        }
        let _ = write!(out, "}};");
    }
    write!(out, ">")
}

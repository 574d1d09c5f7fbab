//! Content hashes of Arrow tables and source files.
//!
//! [`hash_table`] hashes a table's *logical* content: the schema, then each
//! column as one stream of rows, whatever the chunking. A column's digest is
//! built from separate streams (values, validity, and for strings lengths and
//! bytes), each fed in row order across all batches, so a slice that starts at
//! row 3 of a buffer, or at bit 13 of a validity bitmap, feeds the same bytes as
//! the same rows in a fresh, aligned array.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    BinaryType, BinaryViewType, ByteArrayType, ByteViewType, LargeBinaryType, LargeUtf8Type,
    StringViewType, Utf8Type,
};
use arrow_array::{
    Array, ArrayRef, GenericListArray, GenericListViewArray, MapArray, OffsetSizeTrait,
    StructArray, UInt32Array, UnionArray,
};
use arrow_buffer::bit_chunk_iterator::BitChunks;
use arrow_buffer::{ArrowNativeType, BooleanBuffer, NullBuffer};
use arrow_schema::{
    DataType, FieldRef, Fields, IntervalUnit, Schema, TimeUnit, UnionFields, UnionMode,
};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::pipeline::Table;

// Fixed-width values are hashed straight from Arrow's buffers, which hold
// them in the target's byte order; the encoding is little-endian.
#[cfg(target_endian = "big")]
compile_error!("content hashes assume a little-endian target (x86-64, AArch64, RISC-V)");

/// Version tag of the table encoding; bump it when the encoding changes so
/// old hashes can never be confused with new ones.
const TABLE_TAG: &[u8] = b"fuseflow.table.v1";
/// Version tag of one column's digest.
const COLUMN_TAG: &[u8] = b"fuseflow.column.v1";
/// Rows per block when values are copied to canonicalise null slots: small
/// enough that the copy stays in L2 cache while it is hashed.
const BLOCK_ROWS: usize = 32 * 1024;
/// Bytes gathered before they are handed to the hasher (fewer, larger updates
/// let BLAKE3 use its wide SIMD paths).
const FLUSH_BYTES: usize = 64 * 1024;
/// Contiguous runs at least this long are hashed with BLAKE3's own
/// multithreading, which pays off only for large inputs.
const RAYON_BYTES: usize = 1 << 20;

/// Defines a 32-byte BLAKE3 digest newtype with hex `Display`/`FromStr`,
/// `short()` and serde as a hex string. Shared by [`ContentHash`] and
/// [`CacheKey`](super::CacheKey) so the two cannot drift apart.
macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The digest from its 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The 32 raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first 12 hex digits: enough to tell objects apart in listings.
            pub fn short(&self) -> String {
                let mut s = self.to_string();
                s.truncate(12);
                s
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(h: blake3::Hash) -> Self {
                $name(*h.as_bytes())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::Error;

            /// Parse 64 hex digits (either case).
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                $crate::cache::hash::parse_hex32(s, $what).map($name)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(super) use digest_type;

digest_type!(
    /// BLAKE3 digest of a table's logical content ([`hash_table`]) or of a
    /// file's bytes ([`hash_file`]). Displays as 64 lowercase hex digits.
    ContentHash,
    "content hash"
);

/// Parse 64 hex digits into 32 bytes; `what` names the thing in the error.
pub(super) fn parse_hex32(s: &str, what: &str) -> Result<[u8; 32]> {
    let bad = |message: String| Error::CacheParse {
        what: format!("{what} `{s}`"),
        message,
    };
    if s.len() != 64 {
        return Err(bad(format!(
            "expected 64 hex digits, found {} characters",
            s.chars().count()
        )));
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        let digit = |c: u8| {
            (c as char)
                .to_digit(16)
                .ok_or_else(|| bad(format!("'{}' is not a hex digit", c as char)))
        };
        out[i] = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
    }
    Ok(out)
}

/// Writes a canonical, length-prefixed encoding into a BLAKE3 hasher: every
/// variable-length item is preceded by its length, so no two different
/// sequences of items produce the same bytes.
pub(super) struct Encoder<'a>(pub(super) &'a mut blake3::Hasher);

impl Encoder<'_> {
    pub(super) fn u8(&mut self, v: u8) {
        self.0.update(&[v]);
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.0.update(&v.to_le_bytes());
    }

    pub(super) fn u64(&mut self, v: u64) {
        self.0.update(&v.to_le_bytes());
    }

    pub(super) fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.update(b);
    }

    pub(super) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A string map, sorted by key so insertion order does not matter.
    fn map(&mut self, map: &std::collections::HashMap<String, String>) {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort();
        self.len(entries.len());
        for (k, v) in entries {
            self.str(k);
            self.str(v);
        }
    }
}

/// BLAKE3 of a file's bytes, memory-mapped and hashed on all cores a window
/// at a time, each window's pages released once hashed: hashing a file
/// larger than memory keeps one window resident.
///
/// # Errors
/// [`Error::Io`] naming the file when it cannot be opened or read.
pub fn hash_file(path: &Path) -> Result<ContentHash> {
    const WINDOW: usize = 64 << 20;
    let unreadable =
        |e: std::io::Error| Error::io(path, format!("cannot read to hash its content: {e}"));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    let mut hasher = blake3::Hasher::new();
    if len == 0 {
        return Ok(hasher.finalize().into());
    }
    // SAFETY: read-only; a file changed while it is hashed gives a hash that
    // no later read verifies against, never undefined behaviour in safe code
    // that reads the bytes as bytes.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
    for start in (0..map.len()).step_by(WINDOW) {
        let end = map.len().min(start + WINDOW);
        hasher.update_rayon(&map[start..end]);
        // SAFETY: `start..end` lies in the mapping and nothing borrows it any
        // more; dropping the pages of a read-only file mapping only means a
        // later read faults them in again.
        unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        }
        .map_err(unreadable)?;
    }
    Ok(hasher.finalize().into())
}

/// The content hash of a table: BLAKE3 over a canonical encoding of its schema
/// and the logical values and validity of every column.
///
/// Every Arrow type has an encoding: fixed-width values (numbers, dates,
/// times, timestamps, durations, intervals, decimals, fixed-size binary) by
/// their bytes, booleans by bit, strings and binary by length and bytes,
/// lists, maps and structs by their shape and their children's digests
/// (only the child rows that valid parent rows reach), unions by type id and
/// children. Dictionary and run-end encoded columns hash by the values they
/// decode to (so two batches with different dictionaries but equal rows
/// agree), under a type name that still tells them from plain columns.
///
/// Re-chunking or slicing that leaves the rows unchanged leaves the hash
/// unchanged; a different value, null, data type, column name, nullability or
/// metadata entry changes it. Floats are hashed by bit pattern, so `0.0` and
/// `-0.0` (or two NaNs with different payloads) are different values.
///
/// # Errors
/// [`Error::Internal`] only when Arrow cannot decode a dictionary or run-end
/// encoded column, or gather a union's rows, of an array it accepted.
pub fn hash_table(table: &Table) -> Result<ContentHash> {
    let schema = table.schema();
    let columns: Vec<blake3::Hash> = (0..schema.fields().len())
        .into_par_iter()
        .map(|c| {
            let chunks: Vec<ArrayRef> = table
                .batches()
                .iter()
                .map(|b| Arc::clone(b.column(c)))
                .collect();
            hash_column(schema.field(c).data_type(), &chunks)
        })
        .collect::<Result<_>>()?;

    let mut hasher = blake3::Hasher::new();
    let mut enc = Encoder(&mut hasher);
    enc.bytes(TABLE_TAG);
    encode_schema(&mut enc, schema);
    enc.len(table.num_rows());
    for digest in &columns {
        enc.0.update(digest.as_bytes());
    }
    Ok(hasher.finalize().into())
}

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

fn encode_schema(enc: &mut Encoder<'_>, schema: &Schema) {
    enc.len(schema.fields().len());
    for field in schema.fields() {
        enc.str(field.name());
        enc.str(&type_name(field.data_type()));
        enc.u8(u8::from(field.is_nullable()));
        enc.map(field.metadata());
    }
    enc.map(schema.metadata());
}

/// Digest of one column given as its chunks (all of type `dtype`).
fn hash_column(dtype: &DataType, chunks: &[ArrayRef]) -> Result<blake3::Hash> {
    // Encoded columns hash as the values they decode to.
    let decoded_type = match dtype {
        DataType::Dictionary(_, value) => Some(value.as_ref().clone()),
        DataType::RunEndEncoded(_, value) => Some(value.data_type().clone()),
        _ => None,
    };
    if let Some(value) = decoded_type {
        let decoded = chunks
            .iter()
            .map(|a| arrow_cast::cast(a, &value))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::Internal(format!("cannot decode a {dtype} column to hash it: {e}"))
            })?;
        return hash_column(&value, &decoded);
    }
    let rows: usize = chunks.iter().map(|a| a.len()).sum();
    let nulls: usize = chunks.iter().map(|a| a.null_count()).sum();
    // A column without nulls has no validity stream at all, so a missing
    // validity buffer and an all-valid one hash the same.
    let mut validity = (nulls > 0).then(BitStream::new);
    if let Some(v) = validity.as_mut() {
        for a in chunks {
            match a.nulls() {
                Some(n) => v.push_bits(n.inner()),
                None => v.push_ones(a.len()),
            }
        }
    }
    let streams: Vec<blake3::Hash> = match dtype {
        // Every row of a null column is null: the row count says it all.
        DataType::Null => vec![],
        DataType::Boolean => vec![hash_bools(chunks)],
        DataType::Utf8 => hash_bytes::<Utf8Type>(chunks),
        DataType::LargeUtf8 => hash_bytes::<LargeUtf8Type>(chunks),
        DataType::Binary => hash_bytes::<BinaryType>(chunks),
        DataType::LargeBinary => hash_bytes::<LargeBinaryType>(chunks),
        DataType::Utf8View => hash_views::<StringViewType>(chunks),
        DataType::BinaryView => hash_views::<BinaryViewType>(chunks),
        DataType::FixedSizeBinary(width) => vec![hash_fixed_width(chunks, *width as usize)],
        DataType::List(f) => hash_lists::<i32>(f, chunks)?,
        DataType::LargeList(f) => hash_lists::<i64>(f, chunks)?,
        DataType::ListView(f) => hash_list_views::<i32>(f, chunks)?,
        DataType::LargeListView(f) => hash_list_views::<i64>(f, chunks)?,
        DataType::FixedSizeList(f, _) => hash_fixed_lists(f, chunks)?,
        DataType::Map(f, _) => hash_maps(f, chunks)?,
        DataType::Struct(fields) => hash_structs(fields, chunks)?,
        DataType::Union(fields, _) => hash_unions(fields, chunks)?,
        other => match other.primitive_width() {
            Some(width) => vec![hash_fixed_width(chunks, width)],
            None => {
                return Err(Error::Internal(format!(
                    "type {other} has no column encoding"
                )));
            }
        },
    };

    let mut hasher = blake3::Hasher::new();
    let mut enc = Encoder(&mut hasher);
    enc.bytes(COLUMN_TAG);
    enc.len(rows);
    enc.len(nulls);
    for s in &streams {
        enc.0.update(s.as_bytes());
    }
    if let Some(v) = validity {
        enc.0.update(v.finish().as_bytes());
    }
    Ok(hasher.finalize())
}

/// Fixed-width values (`width` bytes each) as their little-endian bytes,
/// null slots as zero.
fn hash_fixed_width(chunks: &[ArrayRef], width: usize) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    let mut scratch: Vec<u8> = Vec::new();
    for a in chunks {
        let data = a.to_data();
        let start = data.offset() * width;
        let values = &data.buffers()[0].as_slice()[start..start + data.len() * width];
        let Some(nulls) = data.nulls().filter(|n| n.null_count() > 0) else {
            update(&mut hasher, values);
            continue;
        };
        for first in (0..data.len()).step_by(BLOCK_ROWS) {
            let len = BLOCK_ROWS.min(data.len() - first);
            let block = &values[first * width..(first + len) * width];
            let valid = nulls.inner().slice(first, len);
            if valid.count_set_bits() == len {
                hasher.update(block);
                continue;
            }
            // Only blocks with nulls are copied, to overwrite whatever the
            // writer left under the null slots.
            scratch.clear();
            scratch.extend_from_slice(block);
            for_each_unset(&valid, |i| scratch[i * width..(i + 1) * width].fill(0));
            hasher.update(&scratch);
        }
    }
    hasher.finalize()
}

/// Feed `bytes`, with BLAKE3's own multithreading when they are many.
fn update(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() >= RAYON_BYTES {
        hasher.update_rayon(bytes);
    } else {
        hasher.update(bytes);
    }
}

/// Call `f` with the index of every unset bit, 64 bits at a time.
fn for_each_unset(bits: &BooleanBuffer, mut f: impl FnMut(usize)) {
    let chunks = bits.bit_chunks();
    let mut visit = |base: usize, mut unset: u64| {
        while unset != 0 {
            f(base + unset.trailing_zeros() as usize);
            unset &= unset - 1;
        }
    };
    for (k, word) in chunks.iter().enumerate() {
        visit(k * 64, !word);
    }
    let rem = chunks.remainder_len();
    if rem > 0 {
        visit(
            chunks.chunk_len() * 64,
            !chunks.remainder_bits() & low_bits(rem),
        );
    }
}

/// Booleans as one bit per row, null slots as 0.
fn hash_bools(chunks: &[ArrayRef]) -> blake3::Hash {
    let mut stream = BitStream::new();
    for a in chunks {
        let a = a.as_boolean();
        match a.nulls().filter(|n| n.null_count() > 0) {
            None => stream.push_bits(a.values()),
            Some(nulls) => stream.push_bits(&(a.values() & nulls.inner())),
        }
    }
    stream.finish()
}

/// Strings and binary as two streams: each row's byte length as a u64 (0
/// for nulls), and the bytes of all valid rows back to back. Together they
/// hold exactly the (length, bytes) sequence of the rows, but the bytes of a
/// run of rows without nulls can be hashed straight from the Arrow buffer.
fn hash_bytes<T: ByteArrayType>(chunks: &[ArrayRef]) -> Vec<blake3::Hash> {
    let mut lengths = blake3::Hasher::new();
    let mut data = blake3::Hasher::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(FLUSH_BYTES);
    let mut gathered: Vec<u8> = Vec::new();
    for a in chunks {
        let a = a.as_bytes::<T>();
        let offsets = a.value_offsets();
        let values = a.value_data();
        let nulls = a.nulls().filter(|n| n.null_count() > 0);
        for start in (0..a.len()).step_by(BLOCK_ROWS) {
            let end = a.len().min(start + BLOCK_ROWS);
            let valid = nulls.map(|n| n.inner().slice(start, end - start));
            scratch.clear();
            match &valid {
                Some(valid) if valid.count_set_bits() < end - start => {
                    gathered.clear();
                    for (i, is_valid) in (start..end).zip(valid.iter()) {
                        let (lo, hi) = (offsets[i].as_usize(), offsets[i + 1].as_usize());
                        let len = if is_valid { hi - lo } else { 0 };
                        scratch.extend_from_slice(&(len as u64).to_le_bytes());
                        if is_valid {
                            gathered.extend_from_slice(&values[lo..hi]);
                        }
                    }
                    data.update(&gathered);
                }
                _ => {
                    for w in offsets[start..=end].windows(2) {
                        let len = (w[1] - w[0]).as_usize() as u64;
                        scratch.extend_from_slice(&len.to_le_bytes());
                    }
                    update(
                        &mut data,
                        &values[offsets[start].as_usize()..offsets[end].as_usize()],
                    );
                }
            }
            lengths.update(&scratch);
        }
    }
    vec![lengths.finalize(), data.finalize()]
}

/// String and binary views as the same two streams as [`hash_bytes`], so
/// the encoding is the one of the bytes, not of the views.
fn hash_views<T: ByteViewType>(chunks: &[ArrayRef]) -> Vec<blake3::Hash> {
    let mut lengths = blake3::Hasher::new();
    let mut data = blake3::Hasher::new();
    for a in chunks {
        let a = a.as_byte_view::<T>();
        for i in 0..a.len() {
            let bytes: &[u8] = if a.is_valid(i) {
                a.value(i).as_ref()
            } else {
                &[]
            };
            lengths.update(&(bytes.len() as u64).to_le_bytes());
            data.update(bytes);
        }
    }
    vec![lengths.finalize(), data.finalize()]
}

/// Each maximal run `start..end` of valid rows of an array of `len` rows.
fn valid_runs(len: usize, nulls: Option<&NullBuffer>) -> Vec<Range<usize>> {
    let Some(nulls) = nulls.filter(|n| n.null_count() > 0) else {
        return (len > 0).then_some(0..len).into_iter().collect();
    };
    nulls
        .inner()
        .set_slices()
        .map(|(start, end)| start..end)
        .collect()
}

/// Lengths of variable-size rows as a stream of u64 (0 for null rows), and
/// the digest of the child rows they reach, gathered from `children`.
fn shape_and_child(
    lengths: impl Iterator<Item = u64>,
    child: &FieldRef,
    children: &[ArrayRef],
) -> Result<Vec<blake3::Hash>> {
    let mut hasher = blake3::Hasher::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(FLUSH_BYTES);
    for len in lengths {
        scratch.extend_from_slice(&len.to_le_bytes());
        if scratch.len() >= FLUSH_BYTES {
            hasher.update(&scratch);
            scratch.clear();
        }
    }
    hasher.update(&scratch);
    Ok(vec![
        hasher.finalize(),
        hash_column(child.data_type(), children)?,
    ])
}

/// The row lengths of a list-like array: its sizes where valid, 0 where null.
fn row_lengths<'a>(
    sizes: impl Iterator<Item = usize> + 'a,
    nulls: Option<&'a NullBuffer>,
) -> impl Iterator<Item = u64> + 'a {
    sizes.enumerate().map(move |(i, n)| {
        if nulls.is_some_and(|v| v.is_null(i)) {
            0
        } else {
            n as u64
        }
    })
}

/// Lists as their row lengths and the child rows of valid rows.
fn hash_lists<O: OffsetSizeTrait>(
    child: &FieldRef,
    chunks: &[ArrayRef],
) -> Result<Vec<blake3::Hash>> {
    let lists: Vec<&GenericListArray<O>> = chunks.iter().map(|a| a.as_list::<O>()).collect();
    let children = lists
        .iter()
        .flat_map(|l| {
            let offsets = l.value_offsets();
            valid_runs(l.len(), l.nulls()).into_iter().map(move |r| {
                let (lo, hi) = (offsets[r.start].as_usize(), offsets[r.end].as_usize());
                l.values().slice(lo, hi - lo)
            })
        })
        .collect::<Vec<_>>();
    let lengths = lists.iter().flat_map(|l| {
        let sizes = l
            .value_offsets()
            .windows(2)
            .map(|w| (w[1] - w[0]).as_usize());
        row_lengths(sizes, l.nulls())
    });
    shape_and_child(lengths, child, &children)
}

/// List views as lists: their row lengths and each valid row's child rows
/// in row order (views may overlap or leave gaps; the encoding does not see them).
fn hash_list_views<O: OffsetSizeTrait>(
    child: &FieldRef,
    chunks: &[ArrayRef],
) -> Result<Vec<blake3::Hash>> {
    let views: Vec<&GenericListViewArray<O>> =
        chunks.iter().map(|a| a.as_list_view::<O>()).collect();
    let children = views
        .iter()
        .flat_map(|v| {
            (0..v.len()).filter(|&i| v.is_valid(i)).map(|i| {
                let offset = v.value_offsets()[i].as_usize();
                v.values().slice(offset, v.value_sizes()[i].as_usize())
            })
        })
        .collect::<Vec<_>>();
    let lengths = views.iter().flat_map(|v| {
        let sizes = v.value_sizes().iter().map(|s| s.as_usize());
        row_lengths(sizes, v.nulls())
    });
    shape_and_child(lengths, child, &children)
}

/// Fixed-size lists as the child rows of valid rows (the size is in the type).
fn hash_fixed_lists(child: &FieldRef, chunks: &[ArrayRef]) -> Result<Vec<blake3::Hash>> {
    let children = chunks
        .iter()
        .flat_map(|a| {
            let l = a.as_fixed_size_list();
            let size = l.value_length() as usize;
            valid_runs(l.len(), l.nulls())
                .into_iter()
                .map(move |r| l.values().slice(r.start * size, r.len() * size))
        })
        .collect::<Vec<_>>();
    Ok(vec![hash_column(child.data_type(), &children)?])
}

/// Maps as lists of their entries.
fn hash_maps(entries: &FieldRef, chunks: &[ArrayRef]) -> Result<Vec<blake3::Hash>> {
    let maps: Vec<&MapArray> = chunks.iter().map(|a| a.as_map()).collect();
    let children = maps
        .iter()
        .flat_map(|m| {
            let offsets = m.value_offsets();
            valid_runs(m.len(), m.nulls()).into_iter().map(move |r| {
                let (lo, hi) = (offsets[r.start] as usize, offsets[r.end] as usize);
                Arc::new(m.entries().slice(lo, hi - lo)) as ArrayRef
            })
        })
        .collect::<Vec<_>>();
    let lengths = maps.iter().flat_map(|m| {
        let sizes = m.value_offsets().windows(2).map(|w| (w[1] - w[0]) as usize);
        row_lengths(sizes, m.nulls())
    });
    shape_and_child(lengths, entries, &children)
}

/// Structs as the digest of each field over the struct's valid rows.
fn hash_structs(fields: &Fields, chunks: &[ArrayRef]) -> Result<Vec<blake3::Hash>> {
    let structs: Vec<&StructArray> = chunks.iter().map(|a| a.as_struct()).collect();
    let runs: Vec<Vec<Range<usize>>> = structs
        .iter()
        .map(|s| valid_runs(s.len(), s.nulls()))
        .collect();
    (0..fields.len())
        .map(|f| {
            let children: Vec<ArrayRef> = structs
                .iter()
                .zip(&runs)
                .flat_map(|(s, runs)| runs.iter().map(|r| s.column(f).slice(r.start, r.len())))
                .collect();
            hash_column(fields[f].data_type(), &children)
        })
        .collect()
}

/// Unions as each row's type id, and for each variant the child rows its
/// rows select, in row order.
fn hash_unions(fields: &UnionFields, chunks: &[ArrayRef]) -> Result<Vec<blake3::Hash>> {
    let unions: Vec<&UnionArray> = chunks.iter().map(|a| a.as_union()).collect();
    let mut type_ids = blake3::Hasher::new();
    for u in &unions {
        type_ids.update(bytemuck::cast_slice(u.type_ids()));
    }
    let mut streams = vec![type_ids.finalize()];
    for (id, field) in fields.iter() {
        let children = unions
            .iter()
            .map(|u| {
                let rows: UInt32Array = (0..u.len())
                    .filter(|&i| u.type_id(i) == id)
                    .map(|i| u.value_offset(i) as u32)
                    .collect();
                arrow_select::take::take(u.child(id).as_ref(), &rows, None)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::Internal(format!("cannot gather a union's rows to hash them: {e}"))
            })?;
        streams.push(hash_column(field.data_type(), &children)?);
    }
    Ok(streams)
}

/// A mask of the lowest `n` bits (`n < 64`).
fn low_bits(n: usize) -> u64 {
    (1u64 << n) - 1
}

/// A bit stream hashed as little-endian u64 words, bit `i` of the stream at
/// bit `i % 64` of word `i / 64`, whatever the alignment of the bitmaps it is
/// fed from. The last word is zero-padded; the row count, hashed beside the
/// stream, tells the padding from data.
struct BitStream {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
    /// Pending bits not yet forming a full word, in the low `pending_bits`.
    pending: u64,
    pending_bits: usize,
}

impl BitStream {
    fn new() -> Self {
        BitStream {
            hasher: blake3::Hasher::new(),
            buf: Vec::with_capacity(FLUSH_BYTES),
            pending: 0,
            pending_bits: 0,
        }
    }

    /// Append the lowest `n` bits of `word` (`1 <= n <= 64`; higher bits zero).
    fn push_word(&mut self, word: u64, n: usize) {
        self.pending |= word << self.pending_bits;
        let total = self.pending_bits + n;
        if total >= 64 {
            self.emit(self.pending);
            // The bits of `word` that did not fit in the emitted word.
            self.pending = if self.pending_bits == 0 {
                0
            } else {
                word >> (64 - self.pending_bits)
            };
            self.pending_bits = total - 64;
        } else {
            self.pending_bits = total;
        }
    }

    fn emit(&mut self, word: u64) {
        self.buf.extend_from_slice(&word.to_le_bytes());
        if self.buf.len() >= FLUSH_BYTES {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
    }

    fn push_chunks(&mut self, chunks: &BitChunks<'_>) {
        for word in chunks.iter() {
            self.push_word(word, 64);
        }
        if chunks.remainder_len() > 0 {
            self.push_word(chunks.remainder_bits(), chunks.remainder_len());
        }
    }

    fn push_bits(&mut self, bits: &BooleanBuffer) {
        self.push_chunks(&bits.bit_chunks());
    }

    fn push_ones(&mut self, n: usize) {
        for _ in 0..n / 64 {
            self.push_word(u64::MAX, 64);
        }
        if !n.is_multiple_of(64) {
            self.push_word(low_bits(n % 64), n % 64);
        }
    }

    fn finish(mut self) -> blake3::Hash {
        if self.pending_bits > 0 {
            self.emit(self.pending);
        }
        self.hasher.update(&self.buf);
        self.hasher.finalize()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_array::builder::{Int64Builder, MapBuilder, StringBuilder};
    use arrow_array::types::{Float32Type, Float64Type, Int32Type};
    use arrow_array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
        FixedSizeBinaryArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array,
        Int64Array, LargeListArray, LargeStringArray, ListArray, ListViewArray, NullArray,
        RecordBatch, RunArray, StringArray, StringViewArray, TimestampMicrosecondArray,
    };
    use arrow_buffer::{OffsetBuffer, ScalarBuffer};
    use arrow_schema::Field;

    use super::*;
    use crate::datasets::Rng;

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
        let bools = |v: Vec<bool>| -> ArrayRef {
            Arc::new(BooleanArray::new(v.into(), Some(nulls.clone())))
        };
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
        let maybe = |i: usize| mask[i];
        let ints: Vec<Option<i64>> = (0..n)
            .map(|i| maybe(i).then_some(i as i64 * 7 - 40))
            .collect();
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
        let struct_nulls = NullBuffer::from((0..n).map(|i| i % 5 != 0).collect::<Vec<_>>());
        let structs = StructArray::try_new(
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
        .unwrap();
        let mut maps = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        for i in 0..n {
            for k in 0..i % 3 {
                maps.keys().append_value(format!("k{k}"));
                maps.values()
                    .append_option(maybe((i + k) % n).then_some(k as i64));
            }
            maps.append(maybe(i)).unwrap();
        }
        let union_ids: Vec<i8> = (0..n).map(|i| (i % 2) as i8).collect();
        let union = UnionArray::try_new(
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
        .unwrap();
        let runs = RunArray::<Int32Type>::try_new(
            &Int32Array::from((1..=n as i32 / 3).map(|r| r * 3).collect::<Vec<_>>()),
            &Int64Array::from(
                (0..n as i64 / 3)
                    .map(|r| (r % 4 != 1).then_some(r))
                    .collect::<Vec<_>>(),
            ),
        )
        .unwrap();
        let words = (0..n).map(|i| maybe(i).then(|| ["north", "south", "east"][i % 3]));
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
                    Decimal128Array::from(
                        ints.iter().map(|v| v.map(i128::from)).collect::<Vec<_>>(),
                    )
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
            ("struct", Arc::new(structs)),
            ("map", Arc::new(maps.finish())),
            (
                "dict",
                Arc::new(words.collect::<DictionaryArray<Int32Type>>()),
            ),
            ("union", Arc::new(union)),
            ("runs", Arc::new(runs)),
        ]
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
}

//! Content hashes of Arrow tables and source files.
//!
//! [`hash_table`] hashes a table's *logical* content: the schema, then each
//! column as one stream of rows, whatever the chunking. A column's digest is
//! built from separate streams (values, validity, and for strings lengths and
//! bytes), each fed in row order across all batches, so a slice that starts at
//! row 3 of a buffer, or at bit 13 of a validity bitmap, feeds the same bytes as
//! the same rows in a fresh, aligned array.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, OffsetSizeTrait};
use arrow_buffer::BooleanBuffer;
use arrow_buffer::bit_chunk_iterator::BitChunks;
use arrow_schema::{DataType, Schema};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::pipeline::Table;

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

/// BLAKE3 of a file's bytes, memory-mapped and hashed on all cores.
///
/// # Errors
/// [`Error::Io`] naming the file when it cannot be opened or read.
pub fn hash_file(path: &Path) -> Result<ContentHash> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap_rayon(path)
        .map_err(|e| Error::io(path, format!("cannot read to hash its content: {e}")))?;
    Ok(hasher.finalize().into())
}

/// The content hash of a table: BLAKE3 over a canonical encoding of its schema
/// and the logical values and validity of every column.
///
/// Re-chunking or slicing that leaves the rows unchanged leaves the hash
/// unchanged; a different value, null, data type, column name, nullability or
/// metadata entry changes it. Floats are hashed by bit pattern, so `0.0` and
/// `-0.0` (or two NaNs with different payloads) are different values.
///
/// # Errors
/// [`Error::Unhashable`] naming the first column whose type has no canonical
/// encoding (see [`hashable_type_name`] for the supported types).
pub fn hash_table(table: &Table) -> Result<ContentHash> {
    let schema = table.schema();
    let type_names = schema
        .fields()
        .iter()
        .map(|f| {
            hashable_type_name(f.data_type()).ok_or_else(|| Error::Unhashable {
                column: f.name().clone(),
                data_type: f.data_type().to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let columns: Vec<blake3::Hash> = (0..schema.fields().len())
        .into_par_iter()
        .map(|c| {
            let chunks: Vec<&ArrayRef> = table.batches().iter().map(|b| b.column(c)).collect();
            hash_column(schema.field(c).data_type(), &chunks)
        })
        .collect::<Result<_>>()?;

    let mut hasher = blake3::Hasher::new();
    let mut enc = Encoder(&mut hasher);
    enc.bytes(TABLE_TAG);
    encode_schema(&mut enc, schema, &type_names);
    enc.len(table.num_rows());
    for digest in &columns {
        enc.0.update(digest.as_bytes());
    }
    Ok(hasher.finalize().into())
}

/// The stable name a column type is hashed under, or `None` when the type
/// has no canonical encoding. Names are fuseflow's own, not Arrow's `Display`,
/// so an Arrow upgrade that renders types differently cannot change hashes.
pub fn hashable_type_name(dtype: &DataType) -> Option<&'static str> {
    Some(match dtype {
        DataType::Boolean => "bool",
        DataType::Int8 => "i8",
        DataType::Int16 => "i16",
        DataType::Int32 => "i32",
        DataType::Int64 => "i64",
        DataType::UInt8 => "u8",
        DataType::UInt16 => "u16",
        DataType::UInt32 => "u32",
        DataType::UInt64 => "u64",
        DataType::Float32 => "f32",
        DataType::Float64 => "f64",
        DataType::Utf8 => "utf8",
        DataType::LargeUtf8 => "large_utf8",
        _ => return None,
    })
}

fn encode_schema(enc: &mut Encoder<'_>, schema: &Schema, type_names: &[&str]) {
    enc.len(schema.fields().len());
    for (field, type_name) in schema.fields().iter().zip(type_names) {
        enc.str(field.name());
        enc.str(type_name);
        enc.u8(u8::from(field.is_nullable()));
        enc.map(field.metadata());
    }
    enc.map(schema.metadata());
}

/// Digest of one column given as its chunks; the type was checked by the caller.
fn hash_column(dtype: &DataType, chunks: &[&ArrayRef]) -> Result<blake3::Hash> {
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
        DataType::Boolean => vec![hash_bools(chunks)],
        DataType::Int8 => vec![hash_primitive::<Int8Type>(chunks)],
        DataType::Int16 => vec![hash_primitive::<Int16Type>(chunks)],
        DataType::Int32 => vec![hash_primitive::<Int32Type>(chunks)],
        DataType::Int64 => vec![hash_primitive::<Int64Type>(chunks)],
        DataType::UInt8 => vec![hash_primitive::<UInt8Type>(chunks)],
        DataType::UInt16 => vec![hash_primitive::<UInt16Type>(chunks)],
        DataType::UInt32 => vec![hash_primitive::<UInt32Type>(chunks)],
        DataType::UInt64 => vec![hash_primitive::<UInt64Type>(chunks)],
        DataType::Float32 => vec![hash_primitive::<Float32Type>(chunks)],
        DataType::Float64 => vec![hash_primitive::<Float64Type>(chunks)],
        DataType::Utf8 => hash_strings::<i32>(chunks),
        DataType::LargeUtf8 => hash_strings::<i64>(chunks),
        _ => {
            return Err(Error::Internal(format!(
                "type {dtype} has a hashable name but no column encoding"
            )));
        }
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

/// Fixed-width values as little-endian bytes, null slots as zero.
fn hash_primitive<T: ArrowPrimitiveType>(chunks: &[&ArrayRef]) -> blake3::Hash
where
    T::Native: bytemuck::Pod,
{
    let mut hasher = blake3::Hasher::new();
    let mut scratch: Vec<T::Native> = Vec::new();
    for a in chunks {
        let a = a.as_primitive::<T>();
        // `values()` is already cut to the array's offset and length.
        let values: &[T::Native] = a.values();
        let Some(nulls) = a.nulls().filter(|n| n.null_count() > 0) else {
            update_le(&mut hasher, values, &mut scratch);
            continue;
        };
        for start in (0..values.len()).step_by(BLOCK_ROWS) {
            let block = &values[start..values.len().min(start + BLOCK_ROWS)];
            let valid = nulls.inner().slice(start, block.len());
            if valid.count_set_bits() == block.len() {
                update_le(&mut hasher, block, &mut scratch);
                continue;
            }
            // Only blocks with nulls are copied, to overwrite whatever the
            // writer left under the null slots.
            scratch.clear();
            scratch.extend_from_slice(block);
            for_each_unset(&valid, |i| scratch[i] = bytemuck::Zeroable::zeroed());
            to_le_in_place(&mut scratch);
            hasher.update(bytemuck::cast_slice(&scratch));
        }
    }
    hasher.finalize()
}

/// Hash `values` as little-endian bytes: straight from the buffer on
/// little-endian targets, through `scratch` with bytes swapped on others.
fn update_le<N: bytemuck::Pod>(hasher: &mut blake3::Hasher, values: &[N], scratch: &mut Vec<N>) {
    if cfg!(target_endian = "little") {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        if bytes.len() >= RAYON_BYTES {
            hasher.update_rayon(bytes);
        } else {
            hasher.update(bytes);
        }
    } else {
        for block in values.chunks(BLOCK_ROWS) {
            scratch.clear();
            scratch.extend_from_slice(block);
            to_le_in_place(scratch);
            hasher.update(bytemuck::cast_slice(scratch));
        }
    }
}

/// Reorder each value's bytes to little-endian (a no-op on little-endian targets).
fn to_le_in_place<N: bytemuck::Pod>(values: &mut [N]) {
    if cfg!(target_endian = "big") {
        let width = std::mem::size_of::<N>();
        for v in bytemuck::cast_slice_mut::<N, u8>(values).chunks_exact_mut(width) {
            v.reverse();
        }
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
fn hash_bools(chunks: &[&ArrayRef]) -> blake3::Hash {
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

/// Strings as two streams: each row's byte length as a u64 (0 for nulls),
/// and the bytes of all valid rows back to back. Together they hold exactly
/// the (length, bytes) sequence of the rows, but the bytes of a run of rows
/// without nulls can be hashed straight from the Arrow buffer.
fn hash_strings<O: OffsetSizeTrait>(chunks: &[&ArrayRef]) -> Vec<blake3::Hash> {
    let mut lengths = blake3::Hasher::new();
    let mut data = blake3::Hasher::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(FLUSH_BYTES);
    let mut gathered: Vec<u8> = Vec::new();
    for a in chunks {
        let a = a.as_string::<O>();
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
                    let bytes = &values[offsets[start].as_usize()..offsets[end].as_usize()];
                    if bytes.len() >= RAYON_BYTES {
                        data.update_rayon(bytes);
                    } else {
                        data.update(bytes);
                    }
                }
            }
            lengths.update(&scratch);
        }
    }
    vec![lengths.finalize(), data.finalize()]
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
    use std::ops::Range;
    use std::sync::Arc;

    use arrow_array::{
        BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array,
        LargeStringArray, RecordBatch, StringArray,
    };
    use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
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

    #[test]
    fn unsupported_type_names_the_column() {
        let table = one_column("when", Arc::new(Date32Array::from(vec![1, 2])));
        match hash_table(&table) {
            Err(Error::Unhashable { column, data_type }) => {
                assert_eq!(column, "when");
                assert_eq!(data_type, "Date32");
            }
            other => panic!("expected Unhashable, got {other:?}"),
        }
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

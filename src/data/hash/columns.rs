//! One column's digest: values, validity and nested children as streams of rows.

use std::ops::Range;
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
use arrow_schema::{DataType, FieldRef, Fields, UnionFields};

use super::Encoder;
use crate::error::{Error, Result};

/// Version tag of one column's digest.
const COLUMN_TAG: &[u8] = b"fuseflow.column.v1";
/// Rows per block when values are copied to canonicalise null slots: small
/// enough that the copy stays in L2 cache while it is hashed.
pub(super) const BLOCK_ROWS: usize = 32 * 1024;
/// Bytes gathered before they are handed to the hasher (fewer, larger updates
/// let BLAKE3 use its wide SIMD paths).
const FLUSH_BYTES: usize = 64 * 1024;
/// Contiguous runs at least this long are hashed with BLAKE3's own
/// multithreading, which pays off only for large inputs.
const RAYON_BYTES: usize = 1 << 20;

/// Digest of one column given as its chunks (all of type `dtype`).
pub(super) fn hash_column(dtype: &DataType, chunks: &[ArrayRef]) -> Result<blake3::Hash> {
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

//! Content hashes of Arrow tables and source files.
//!
//! [`hash_table`] hashes a table's *logical* content: the schema, then each
//! column as one stream of rows, whatever the chunking. A column's digest is
//! built from separate streams (values, validity, and for strings lengths and
//! bytes), each fed in row order across all batches, so a slice that starts at
//! row 3 of a buffer, or at bit 13 of a validity bitmap, feeds the same bytes as
//! the same rows in a fresh, aligned array.

mod columns;
mod file;
#[cfg(test)]
mod tests;
mod types;

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::Schema;
use rayon::prelude::*;

use crate::data::Table;
use crate::error::{Error, Result};
use columns::hash_column;
pub use file::hash_file;
pub use types::type_name;

// Fixed-width values are hashed straight from Arrow's buffers, which hold
// them in the target's byte order; the encoding is little-endian.
#[cfg(target_endian = "big")]
compile_error!("content hashes assume a little-endian target (x86-64, AArch64, RISC-V)");

/// Version tag of the table encoding; bump it when the encoding changes so
/// old hashes can never be confused with new ones.
const TABLE_TAG: &[u8] = b"fuseflow.table.v1";

/// Defines a 32-byte BLAKE3 digest newtype with hex `Display`/`FromStr`,
/// `short()` and serde as a hex string. Shared by [`ContentHash`] and
/// [`CacheKey`](crate::cache::CacheKey) so the two cannot drift apart.
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
                $crate::data::parse_hex32(s, $what).map($name)
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
pub(crate) use digest_type;

digest_type!(
    /// BLAKE3 digest of a table's logical content ([`hash_table`]) or of a
    /// file's bytes ([`hash_file`]). Displays as 64 lowercase hex digits.
    ContentHash,
    "content hash"
);

/// Parse 64 hex digits into 32 bytes; `what` names the thing in the error.
pub(crate) fn parse_hex32(s: &str, what: &str) -> Result<[u8; 32]> {
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
pub(crate) struct Encoder<'a>(pub(crate) &'a mut blake3::Hasher);

impl Encoder<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.update(&[v]);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.0.update(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.0.update(&v.to_le_bytes());
    }

    pub(crate) fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.update(b);
    }

    pub(crate) fn str(&mut self, s: &str) {
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

//! The content-addressed cache: cache keys and the object store, over the
//! content hashes of [`crate::data`].
//!
//! A tour of the core types:
//!
//! - [`KeyFields`] and [`CacheKey`]: everything a step's output depends on,
//!   and its hash. Downstream keys name their inputs by content hash, so a
//!   step whose output did not change stops invalidation there.
//! - [`ObjectStore`]: tables as Arrow IPC files named by content hash, with
//!   least-recently-used eviction; [`ObjectWriter`] writes them on a thread
//!   of its own; [`MemoryTier`] keeps recent tables in memory (and
//!   [`crate::backend::DeviceTier`] recent columns on devices).
//!
//! # Canonical encoding
//! Hashes and keys are BLAKE3 over byte encodings in which every
//! variable-length item is preceded by its length and every encoding starts
//! with a version tag, so two different inputs can never be spelled the same
//! bytes ("ab" + "c" is not "a" + "bc").
//!
//! A table's hash covers its schema (names, stable type names, nullability,
//! metadata sorted by key) and one digest per column. A column is hashed as
//! a stream of rows, not of buffers: values in row order as little-endian
//! bytes with null slots zeroed, validity as a bit stream re-aligned to row
//! positions, strings as lengths and bytes. Buffer offsets, slices, padding
//! and how rows are split into batches never reach the hasher, so slicing and
//! re-chunking leave the hash unchanged, while any change of a value, null,
//! type or name changes it.
//!
//! # Verified objects
//! An object's name is the hash of its content, so every read re-hashes the
//! decoded table and compares. A truncated or damaged file fails to decode or
//! to match; it is removed and reported as [`Lookup::Corrupt`], never
//! returned, and the caller recomputes it. Writes go through a temporary
//! file, `fsync` and an atomic rename, so concurrent processes see whole
//! objects or none.

mod key;
mod memory_tier;
mod store;
mod writer;

pub use key::{CacheKey, FORMAT_VERSION, FieldChange, KeyFields};
pub use memory_tier::MemoryTier;
pub use store::{GcReport, Lookup, ObjectInfo, ObjectStore, STALE_TEMP_AGE};
pub use writer::ObjectWriter;

//! The data floor: the vocabulary every room above shares (models, devices,
//! the cache, the engine), depending on nothing but [`ir`](crate::ir)'s
//! types and the error enum.
//!
//! - [`Table`]: chunked Arrow data held whole; [`Stream`]: data read batch by
//!   batch, scanned again by each consumer.
//! - [`lineage`]: the expression a column was derived by, kept in its field
//!   metadata.
//! - [`files`]: Parquet, Arrow IPC and CSV files read batch by batch (IPC
//!   files mapped, zero-copy) and written atomically.
//! - [`ContentHash`]: BLAKE3 of a table's logical content ([`hash_table`]) or
//!   of a file's bytes ([`hash_file`]).
//! - [`Rng`]: the seeded random stream of generators and initialisers;
//!   [`format_bytes`] and [`parse_bytes`]: sizes as people write them.

pub mod files;
mod hash;
pub mod lineage;
mod rng;
mod stream;
mod table;
mod units;

pub use hash::{ContentHash, hash_file, hash_table, type_name};
pub(crate) use hash::{Encoder, digest_type, parse_hex32};
pub use rng::{Rng, splitmix64};
pub use stream::{Batches, Pruned, Stream};
pub use table::Table;
pub(crate) use table::{
    batch_data_size, column_dtype, column_index, normalize_batch, normalize_schema, numeric_column,
};
pub use units::{format_bytes, parse_bytes};

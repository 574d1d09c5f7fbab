//! The data floor: ways of holding and reading Arrow data that every room
//! above uses (the engine, the cache, models).
//!
//! - [`MappedIpcFile`]: an Arrow IPC file memory-mapped and decoded in
//!   place, zero-copy, with every declared offset checked against the file.

mod mapped_ipc;

pub use mapped_ipc::MappedIpcFile;

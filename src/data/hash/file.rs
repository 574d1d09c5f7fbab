//! BLAKE3 of a source file's bytes.

use std::path::Path;

use super::ContentHash;
use crate::error::{Error, Result};

/// BLAKE3 of a file's bytes, memory-mapped and hashed on all cores a window
/// at a time, each window's pages released once hashed: hashing a file
/// larger than memory keeps one window resident.
///
/// # Errors
/// [`Error::Io`] naming the file when it cannot be opened or read.
pub fn hash_file(path: &Path) -> Result<ContentHash> {
    const WINDOW: usize = 64 << 20;
    let unreadable = |e: std::io::Error| {
        Error::io(path, format!("cannot read to hash its content: {e}")).caused_by(e)
    };
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

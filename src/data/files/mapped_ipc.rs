//! Arrow IPC files read in place.
//!
//! [`MappedIpcFile`] memory-maps an IPC file and decodes its record batches
//! over the mapping: the batches' buffers point into the file's pages, so
//! reading costs page faults on first touch instead of a copy, and pages the
//! kernel can drop again instead of private memory. Buffers that the writer
//! left misaligned are copied (Arrow's decoder realigns them); everything
//! else is zero-copy.
//!
//! Every offset and length that the footer declares is checked against the
//! real size of the file before anything is sliced or allocated, and the
//! decoder validates each batch, so a damaged file is an error, not a panic
//! or a giant allocation.
//!
//! [`MappedIpcFile::scan`] decodes each batch over its own view of the
//! mapping and hands that view's pages back to the kernel when the batch is
//! dropped, so a pass over a file larger than memory keeps only the batches
//! in flight resident.
//!
//! The mapping lives as long as any batch decoded from it. As with every
//! memory-mapped reader, the file must not be truncated or rewritten in
//! place meanwhile (writers that replace files atomically, as fuseflow's do,
//! are safe: the mapping keeps the old inode).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{FileDecoder, read_footer_length};
use arrow_ipc::{Block, convert::fb_to_schema, root_as_footer};
use arrow_schema::SchemaRef;
use memmap2::Mmap;

use crate::error::{Error, Result, contain};

/// Bytes at the end of an IPC file: the footer's length (4) and `ARROW1` (6).
const TRAILER: usize = 10;

/// An Arrow IPC file, memory-mapped, with its footer read.
pub struct MappedIpcFile {
    path: PathBuf,
    map: Arc<Mmap>,
    buffer: Buffer,
    decoder: FileDecoder,
    blocks: Vec<Block>,
    schema: SchemaRef,
}

impl std::fmt::Debug for MappedIpcFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedIpcFile")
            .field("path", &self.path)
            .field("bytes", &self.buffer.len())
            .field("batches", &self.blocks.len())
            .finish()
    }
}

impl MappedIpcFile {
    /// Map `path` and read its footer: the schema, dictionaries and where
    /// each record batch lies.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be opened or mapped, or
    /// is damaged or not an Arrow IPC file (in words, with what is wrong).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path)
            .map_err(|e| Error::io(path, format!("cannot open for reading: {e}")).caused_by(e))?;
        Self::map(&file, path)
    }

    /// Map the open `file` (found at `path`, which errors name) and read
    /// its footer, as [`MappedIpcFile::open`] does.
    ///
    /// # Errors
    /// As [`MappedIpcFile::open`].
    pub fn map(file: &File, path: &Path) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(|e| Error::io(path, format!("cannot read its size: {e}")).caused_by(e))?
            .len() as usize;
        let damaged = |what: String| {
            Error::io(
                path,
                format!("the file is damaged or not an Arrow IPC file: {what}"),
            )
        };
        if len < TRAILER + 8 {
            return Err(damaged(format!("it has {len} bytes, too few for a footer")));
        }
        // SAFETY: the mapping is read-only and owned by the buffers decoded
        // from it; the module docs state the one caveat of mapped files
        // (truncation by another process while they are read).
        let map = Arc::new(
            unsafe { Mmap::map(file) }
                .map_err(|e| Error::io(path, format!("cannot memory-map: {e}")).caused_by(e))?,
        );
        let ptr = NonNull::new(map.as_ptr().cast_mut())
            .ok_or_else(|| Error::Internal("a memory map at address 0".into()))?;
        // SAFETY: `ptr` points to `len` readable bytes that live as long as
        // `map`, which the buffer owns.
        let buffer = unsafe { Buffer::from_custom_allocation(ptr, map.len(), map.clone()) };

        let contained = contain(|| -> std::result::Result<_, String> {
            let trailer: [u8; TRAILER] = buffer[len - TRAILER..]
                .try_into()
                .map_err(|_| "no trailer".to_string())?;
            let footer_len = read_footer_length(trailer).map_err(|e| e.to_string())?;
            if footer_len > len - TRAILER {
                return Err(format!(
                    "its footer claims {footer_len} bytes of a {len}-byte file"
                ));
            }
            let footer = root_as_footer(&buffer[len - TRAILER - footer_len..len - TRAILER])
                .map_err(|e| format!("unreadable footer: {e}"))?;
            let schema = Arc::new(fb_to_schema(
                footer.schema().ok_or("the footer has no schema")?,
            ));
            let mut decoder = FileDecoder::new(Arc::clone(&schema), footer.version());
            for block in footer.dictionaries().iter().flatten() {
                let data = block_bytes(&buffer, block)?;
                decoder
                    .read_dictionary(block, &data)
                    .map_err(|e| format!("unreadable dictionary: {e}"))?;
            }
            let blocks: Vec<Block> = footer
                .recordBatches()
                .map(|b| b.iter().copied().collect())
                .unwrap_or_default();
            for block in &blocks {
                block_bytes(&buffer, block)?;
            }
            Ok((schema, decoder, blocks))
        });
        let (schema, decoder, blocks) = contained.and_then(|read| read).map_err(damaged)?;
        Ok(MappedIpcFile {
            path: path.to_path_buf(),
            map,
            buffer,
            decoder,
            blocks,
            schema,
        })
    }

    /// The file's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// How many record batches the file holds.
    pub fn num_batches(&self) -> usize {
        self.blocks.len()
    }

    /// Decode the `i`-th record batch over the mapping.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when the batch is damaged.
    ///
    /// # Panics
    /// When `i` is not below [`MappedIpcFile::num_batches`].
    pub fn batch(&self, i: usize) -> Result<RecordBatch> {
        let data = block_bytes(&self.buffer, &self.blocks[i]).map_err(|e| self.damaged(i, e))?;
        self.decode_block(i, &data)
    }

    /// Decode the `i`-th record batch over a view of the mapping of its own,
    /// whose pages are released (`MADV_DONTNEED`) once the batch and every
    /// array sliced from it are dropped. Reading released pages again faults
    /// them back in from the page cache, so this is only a hint: what the
    /// batch holds never changes.
    ///
    /// # Errors
    /// As [`MappedIpcFile::batch`].
    ///
    /// # Panics
    /// As [`MappedIpcFile::batch`].
    pub fn released_batch(&self, i: usize) -> Result<RecordBatch> {
        let block = &self.blocks[i];
        let range = block_range(self.map.len(), block).map_err(|e| self.damaged(i, e))?;
        let pages = Arc::new(Pages {
            map: Arc::clone(&self.map),
            range: range.clone(),
        });
        // In bounds: `block_range` checked the block against the mapping.
        let ptr = NonNull::new(self.map.as_ptr().wrapping_add(range.start).cast_mut())
            .ok_or_else(|| Error::Internal("a memory map at address 0".into()))?;
        // SAFETY: `ptr` points to `range.len()` readable bytes of the
        // mapping, which `pages` keeps alive.
        let view = unsafe { Buffer::from_custom_allocation(ptr, range.len(), pages) };
        self.decode_block(i, &view)
    }

    /// Decode the batch of block `i` from `data`, its bytes.
    fn decode_block(&self, i: usize, data: &Buffer) -> Result<RecordBatch> {
        let block = &self.blocks[i];
        let decoded = contain(|| {
            self.decoder
                .read_record_batch(block, data)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "a record batch block holds no batch".to_string())
        })
        .and_then(|decoded| decoded)
        .and_then(|batch| super::check_rows(&batch).map(|()| batch));
        decoded.map_err(|e| self.damaged(i, e))
    }

    fn damaged(&self, i: usize, e: String) -> Error {
        Error::io(
            &self.path,
            format!("the file is damaged: record batch {i}: {e}"),
        )
        .caused_by(e)
    }

    /// Every record batch in file order.
    pub fn batches(self) -> impl Iterator<Item = Result<RecordBatch>> + Send {
        (0..self.num_batches()).map(move |i| self.batch(i))
    }

    /// Every record batch in file order, each releasing its pages when
    /// dropped (see [`MappedIpcFile::released_batch`]).
    pub fn scan(self) -> impl Iterator<Item = Result<RecordBatch>> + Send {
        (0..self.num_batches()).map(move |i| self.released_batch(i))
    }
}

/// Pages of a mapping that one batch reads, released when it is dropped.
struct Pages {
    map: Arc<Mmap>,
    range: std::ops::Range<usize>,
}

impl Drop for Pages {
    fn drop(&mut self) {
        // Only the pages wholly inside the range: a page shared with the
        // next batch's bytes stays resident.
        let page = page_size();
        let start = self.range.start.next_multiple_of(page);
        let end = self.range.end / page * page;
        if end > start {
            // SAFETY: `start..end` lies inside the live, read-only, file-backed
            // mapping (`range` was checked against it). MADV_DONTNEED on such
            // a mapping only drops the page table entries: later reads fault
            // the same file bytes back in, so no reader sees a change. A
            // failure leaves the pages resident, which is harmless.
            unsafe {
                libc::madvise(
                    self.map.as_ptr().add(start).cast_mut().cast(),
                    end - start,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(1)
}

/// The bytes of one block (message and body), checked against the file.
fn block_bytes(buffer: &Buffer, block: &Block) -> std::result::Result<Buffer, String> {
    let range = block_range(buffer.len(), block)?;
    Ok(buffer.slice_with_length(range.start, range.len()))
}

/// Where one block (message and body) lies in a file of `len` bytes.
fn block_range(len: usize, block: &Block) -> std::result::Result<std::ops::Range<usize>, String> {
    let (offset, meta, body) = (block.offset(), block.metaDataLength(), block.bodyLength());
    let end = u64::try_from(offset)
        .ok()
        .filter(|_| meta >= 8 && body >= 0)
        .and_then(|start| start.checked_add(meta as u64)?.checked_add(body as u64));
    match end {
        Some(end) if end <= len as u64 => Ok(offset as usize..end as usize),
        _ => Err(format!(
            "a block at offset {offset} with {meta} + {body} bytes lies outside the {len}-byte file"
        )),
    }
}

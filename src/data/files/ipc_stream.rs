//! An Arrow IPC stream read in chunks of the file, with memory bounded by
//! what the file holds.
//!
//! arrow-ipc's `StreamReader` allocates each message's body at the length
//! the message declares before reading it, so a 20 KB file that declares a
//! body of a terabyte makes it allocate (and zero) a terabyte. Here bytes are
//! read from the file in chunks of [`CHUNK`] and handed to a push
//! [`StreamDecoder`], which slices messages that lie within a chunk without
//! copying and buffers only the bytes that arrived of one that spans chunks:
//! a read never holds more than the file's bytes plus one chunk. A panic in
//! the decoder (found by fuzzing arrow-ipc) is an error naming the file.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_schema::SchemaRef;

use super::reader::open_for_reading;
use crate::error::{Error, Result, contain};

/// Bytes read from the file at a time.
const CHUNK: usize = 4 << 20;

/// The record batches of an Arrow IPC stream file, in order.
pub(crate) struct IpcStream {
    path: PathBuf,
    file: File,
    decoder: StreamDecoder,
    /// Read but not yet decoded.
    pending: Buffer,
    /// A batch decoded with the schema, not yet returned.
    ahead: Option<RecordBatch>,
    finished: bool,
}

impl IpcStream {
    /// Open `path` and decode up to its schema.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be read, or does not
    /// start with an Arrow IPC stream's schema.
    pub(crate) fn open(path: &Path) -> Result<(SchemaRef, IpcStream)> {
        let mut stream = IpcStream {
            path: path.to_path_buf(),
            file: open_for_reading(path)?,
            decoder: StreamDecoder::new(),
            pending: Buffer::from(Vec::<u8>::new()),
            ahead: None,
            finished: false,
        };
        loop {
            if stream.pending.is_empty() && !stream.fill()? {
                return Err(stream.damaged(
                    "it ends before its schema: empty, truncated or not an Arrow IPC stream",
                ));
            }
            // The decoder goes on past the schema to the first batch.
            stream.ahead = stream.decode()?;
            if let Some(schema) = stream.decoder.schema() {
                return Ok((schema, stream));
            }
        }
    }

    /// Read the next chunk of the file into `pending`; false at its end.
    fn fill(&mut self) -> Result<bool> {
        let mut chunk = Vec::with_capacity(CHUNK);
        (&mut self.file)
            .take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .map_err(|e| Error::io(&self.path, format!("cannot read: {e}")).caused_by(e))?;
        self.pending = Buffer::from(chunk);
        Ok(!self.pending.is_empty())
    }

    /// Decode from `pending` until a batch is complete or it runs out.
    fn decode(&mut self) -> Result<Option<RecordBatch>> {
        let (decoder, pending) = (&mut self.decoder, &mut self.pending);
        match contain(|| decoder.decode(pending)) {
            Ok(Ok(Some(batch))) => match super::check_rows(&batch) {
                Ok(()) => Ok(Some(batch)),
                Err(what) => Err(self.damaged(&what)),
            },
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => Err(self.damaged(&e.to_string()).caused_by(e)),
            Err(panic) => Err(self.damaged(&panic)),
        }
    }

    fn damaged(&self, what: &str) -> Error {
        Error::io(
            &self.path,
            format!("the file is damaged or not an Arrow IPC stream: {what}"),
        )
    }
}

impl Iterator for IpcStream {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        if let Some(batch) = self.ahead.take() {
            return Some(Ok(batch));
        }
        while !self.finished {
            if self.pending.is_empty() {
                match self.fill() {
                    Ok(true) => {}
                    Ok(false) => {
                        self.finished = true;
                        return self.decoder.finish().err().map(|e| {
                            Err(self
                                .damaged("it ends in the middle of a message (truncated?)")
                                .caused_by(e))
                        });
                    }
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                }
            }
            match self.decode() {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) => {}
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

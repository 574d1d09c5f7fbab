//! [`ObjectWriter`]: cache objects written off the critical path.
//!
//! A run hands each output to the writer once hashed and goes on; a thread
//! writes the objects in order (each through a temporary file and an atomic
//! rename, as [`ObjectStore::put`] does). The queue is bounded, so a run
//! that produces faster than the disk takes waits instead of holding every
//! output in memory. Until its object is written an output is served from
//! the writer's pending set, so no reader misses it. [`ObjectWriter::flush`]
//! waits for the queue to drain and reports the first failure (a full disk):
//! a run is marked succeeded only after that, and the batched sync, pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};

use super::store::ObjectStore;
use crate::data::ContentHash;
use crate::data::Table;
use crate::error::{Error, Result};

/// Outputs waiting in the queue (beyond the one being written).
const QUEUE: usize = 2;

enum Message {
    Write(ContentHash, Table),
    Flush(Sender<()>),
}

type Pending = Arc<Mutex<HashMap<ContentHash, Table>>>;

/// A thread writing cache objects to one store.
#[derive(Debug)]
pub struct ObjectWriter {
    queue: Option<Sender<Message>>,
    thread: Option<JoinHandle<()>>,
    pending: Pending,
    failure: Arc<Mutex<Option<Error>>>,
}

impl ObjectWriter {
    /// Start writing to `store`.
    ///
    /// # Errors
    /// [`Error::Internal`] when the thread cannot be started.
    pub fn start(store: Arc<ObjectStore>) -> Result<Self> {
        let (queue, messages) = bounded::<Message>(QUEUE);
        let pending: Pending = Arc::default();
        let failure: Arc<Mutex<Option<Error>>> = Arc::default();
        let (left, failed) = (Arc::clone(&pending), Arc::clone(&failure));
        let thread = std::thread::Builder::new()
            .name("fuseflow-objects".into())
            .spawn(move || {
                for message in messages {
                    match message {
                        Message::Write(hash, table) => {
                            if let Err(e) = store.put_hashed(&hash, &table) {
                                lock(&failed).get_or_insert(e);
                            }
                            lock(&left).remove(&hash);
                        }
                        Message::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the object writer: {e}")))?;
        Ok(ObjectWriter {
            queue: Some(queue),
            thread: Some(thread),
            pending,
            failure,
        })
    }

    /// Queue `table`, whose content hash is `hash`, to be written; waits
    /// while the queue is full.
    pub fn write(&self, hash: ContentHash, table: Table) {
        lock(&self.pending).insert(hash, table.clone());
        if let Some(queue) = &self.queue {
            // The thread only stops when the writer is dropped.
            let _ = queue.send(Message::Write(hash, table));
        }
    }

    /// A table queued and not yet written.
    pub fn pending(&self, hash: &ContentHash) -> Option<Table> {
        lock(&self.pending).get(hash).cloned()
    }

    /// Whether a table is queued and not yet written.
    pub fn is_pending(&self, hash: &ContentHash) -> bool {
        lock(&self.pending).contains_key(hash)
    }

    /// Wait until every queued table is written.
    ///
    /// # Errors
    /// The first write that failed since the last flush ([`Error::Io`]
    /// naming the object and what to do); its object was not stored, and
    /// nothing stored before was touched.
    pub fn flush(&self) -> Result<()> {
        let (done, drained) = bounded(1);
        if let Some(queue) = &self.queue
            && queue.send(Message::Flush(done)).is_ok()
        {
            let _ = drained.recv();
        }
        match lock(&self.failure).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for ObjectWriter {
    /// Writes what is queued, then stops.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

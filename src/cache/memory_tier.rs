//! [`MemoryTier`]: recent tables kept in memory by content hash, in front
//! of the object store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::data::{ContentHash, Table};

/// An in-process cache of tables by content hash, bounded by bytes, evicting
/// the least recently used. Thread-safe; share one per process (in an `Arc`).
#[derive(Debug)]
pub struct MemoryTier {
    max_bytes: usize,
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    /// Table, its size, and its last-use tick.
    entries: HashMap<ContentHash, (Table, usize, u64)>,
    /// Last-use tick to hash: the first entry is the least recently used.
    order: BTreeMap<u64, ContentHash>,
    bytes: usize,
    tick: u64,
}

impl Lru {
    fn bump(&mut self, hash: ContentHash) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.entries.get_mut(&hash) {
            self.order.remove(&entry.2);
            entry.2 = tick;
            self.order.insert(tick, hash);
        }
    }

    fn remove(&mut self, hash: &ContentHash) {
        if let Some((_, size, tick)) = self.entries.remove(hash) {
            self.order.remove(&tick);
            self.bytes -= size;
        }
    }
}

impl MemoryTier {
    /// An empty tier holding at most `max_bytes` of tables ([`Table::memory_size`]).
    pub fn new(max_bytes: usize) -> Self {
        MemoryTier {
            max_bytes,
            inner: Mutex::new(Lru::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // Every update leaves the map consistent before anything can panic,
        // so a poisoned lock still guards valid state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The table stored under `hash` (a cheap clone sharing its buffers),
    /// marking it as recently used.
    pub fn get(&self, hash: &ContentHash) -> Option<Table> {
        let mut lru = self.lock();
        let table = lru.entries.get(hash)?.0.clone();
        lru.bump(*hash);
        Some(table)
    }

    /// Keep `table` under `hash`, evicting least-recently-used tables to make
    /// room. Returns `false` (and keeps nothing) when the table alone is
    /// larger than the tier.
    pub fn insert(&self, hash: ContentHash, table: Table) -> bool {
        let size = table.memory_size();
        let mut lru = self.lock();
        lru.remove(&hash);
        if size > self.max_bytes {
            return false;
        }
        while lru.bytes + size > self.max_bytes {
            let Some(oldest) = lru.order.values().next().copied() else {
                break;
            };
            lru.remove(&oldest);
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.entries.insert(hash, (table, size, tick));
        lru.order.insert(tick, hash);
        lru.bytes += size;
        true
    }

    /// Forget every table.
    pub fn clear(&self) {
        *self.lock() = Lru::default();
    }

    /// Number of tables held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no table is held.
    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// Bytes of tables held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The bound given to [`MemoryTier::new`].
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

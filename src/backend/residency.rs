//! The device tier: columns already on a device, reused across steps and
//! runs within a process, keyed by content hash, within a memory budget.
//!
//! A sweep or a re-run uploads the same columns again and again; with the
//! tier, a column whose content is already on the device is handed back
//! instead of copied. Content is identified by [`hash_table`] over the column
//! (so equal data from different buffers shares one copy), and each buffer
//! is hashed once: the tier remembers which buffer had which hash while its
//! copy is resident, holding the host array so that its address cannot be
//! reused. Least recently used copies are evicted beyond the budget, and all
//! of a device's copies when it runs out of memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::{Array, ArrayRef, RecordBatch};

use crate::backend::{Device, DeviceArray};
use crate::data::{ContentHash, Table, hash_table};
use crate::error::Result;

/// Default bytes of device copies kept per process.
pub const DEFAULT_DEVICE_BUDGET: usize = 512 << 20;

/// Resident copies of columns on devices.
#[derive(Debug)]
pub struct DeviceTier {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    budget: usize,
    used: usize,
    clock: u64,
    entries: HashMap<Key, Entry>,
    /// Which content each host buffer holds, for buffers with a resident copy.
    hashes: HashMap<BufferId, ContentHash>,
}

#[derive(Debug)]
struct Entry {
    array: DeviceArray,
    /// The host arrays whose buffers map to this entry (kept alive, see the module docs).
    hosts: Vec<ArrayRef>,
    /// The device, kept alive so that its address (the key) is not reused.
    _device: Device,
    bytes: usize,
    last_use: u64,
}

/// What a resident copy holds: content, converted as the device computes it, on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    device: usize,
    f64_as_f32: bool,
    hash: ContentHash,
}

/// A host array's identity: its buffers' addresses, offset and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct BufferId {
    values: usize,
    validity: usize,
    offset: usize,
    len: usize,
}

impl BufferId {
    fn of(array: &ArrayRef) -> BufferId {
        let data = array.to_data();
        BufferId {
            values: data.buffers().first().map_or(0, |b| b.as_ptr() as usize),
            validity: data.nulls().map_or(0, |n| n.buffer().as_ptr() as usize),
            offset: data.offset(),
            len: data.len(),
        }
    }
}

fn device_id(device: &Device) -> usize {
    device.backend() as *const dyn crate::backend::Backend as *const () as usize
}

impl DeviceTier {
    /// A tier keeping at most `budget` bytes of device copies.
    pub fn new(budget: usize) -> DeviceTier {
        DeviceTier {
            state: Mutex::new(State {
                budget,
                ..State::default()
            }),
        }
    }

    /// The process's tier, used by [`Kernel`](crate::backend::Kernel) uploads
    /// ([`DEFAULT_DEVICE_BUDGET`] unless set).
    pub fn global() -> &'static DeviceTier {
        static TIER: OnceLock<DeviceTier> = OnceLock::new();
        TIER.get_or_init(|| DeviceTier::new(DEFAULT_DEVICE_BUDGET))
    }

    /// Keep at most `bytes` of device copies (0 turns the tier off), evicting now if needed.
    pub fn set_budget(&self, bytes: usize) {
        let mut state = self.lock();
        state.budget = bytes;
        state.evict_to(bytes);
    }

    /// Bytes of device copies held.
    pub fn resident_bytes(&self) -> usize {
        self.lock().used
    }

    /// `array` on `device`, in the type the device computes it in (f64 as f32
    /// where the device narrows): the resident copy of the same content when
    /// there is one, else a new upload, kept if it fits the budget.
    ///
    /// # Errors
    /// The backend's upload errors; hashing errors for column types that
    /// cannot be hashed are not errors: such columns are uploaded uncached.
    pub fn upload(&self, device: &Device, array: &ArrayRef) -> Result<DeviceArray> {
        let bytes = array.get_array_memory_size();
        if bytes > self.lock().budget {
            return device.upload(array);
        }
        let buffer = BufferId::of(array);
        let known = self.lock().hashes.get(&buffer).copied();
        let hash = match known {
            Some(hash) => hash,
            None => match content_hash(array) {
                Some(hash) => hash,
                None => return device.upload(array),
            },
        };
        // The original content and how the device converts it name the copy.
        let key = Key {
            device: device_id(device),
            f64_as_f32: device.f64_as_f32(),
            hash,
        };
        if let Some(resident) = self.lock().reuse(key, buffer, array) {
            return Ok(resident);
        }
        let uploaded = device.upload(array)?;
        let mut state = self.lock();
        // Another step may have uploaded the same content meanwhile: keep one copy.
        if let Some(resident) = state.reuse(key, buffer, array) {
            return Ok(resident);
        }
        let budget = state.budget;
        state.evict_to(budget.saturating_sub(bytes));
        let clock = state.clock;
        state.used += bytes;
        state.hashes.insert(buffer, hash);
        state.entries.insert(
            key,
            Entry {
                array: uploaded.clone(),
                hosts: vec![Arc::clone(array)],
                _device: device.clone(),
                bytes,
                last_use: clock,
            },
        );
        Ok(uploaded)
    }

    /// Drop every copy held on `device` (it ran out of memory).
    pub fn evict_device(&self, device: &Device) {
        let id = device_id(device);
        let mut state = self.lock();
        let keys: Vec<Key> = state
            .entries
            .keys()
            .filter(|k| k.device == id)
            .copied()
            .collect();
        for key in keys {
            state.remove(&key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// The resident copy under `key`, if any, marked as just used and
    /// remembered for `array`'s buffer.
    fn reuse(&mut self, key: Key, buffer: BufferId, array: &ArrayRef) -> Option<DeviceArray> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(&key)?;
        entry.last_use = clock;
        let resident = entry.array.clone();
        if let std::collections::hash_map::Entry::Vacant(slot) = self.hashes.entry(buffer) {
            entry.hosts.push(Arc::clone(array));
            slot.insert(key.hash);
        }
        Some(resident)
    }

    /// Evict least recently used copies until at most `bytes` are held.
    fn evict_to(&mut self, bytes: usize) {
        while self.used > bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_use)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.remove(&oldest);
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key) {
            self.used -= entry.bytes;
            for host in &entry.hosts {
                self.hashes.remove(&BufferId::of(host));
            }
        }
    }
}

/// The content hash of one column, `None` for a type without one.
fn content_hash(array: &ArrayRef) -> Option<ContentHash> {
    let batch =
        RecordBatch::try_from_iter_with_nullable([("column", Arc::clone(array), true)]).ok()?;
    hash_table(&Table::from_batch(batch)).ok()
}

//! Columns in device memory, and copies between Arrow buffers and the device
//! through pinned staging buffers.
//!
//! A copy runs in [`CHUNK`]-byte pieces through two page-locked host buffers
//! used in turn: while the DMA engine copies one buffer, the CPU fills (or
//! drains) the other. Each buffer has an event recorded after its copy, and
//! the CPU waits on that event before touching the buffer again, so host to
//! device runs at the speed of the slower of `memcpy` and PCIe, instead of
//! the driver's own, synchronous staging of pageable memory. The host side
//! of each piece is copied by all cores (`parallel_copy`): one thread's
//! `memcpy` (about 10 GB/s), and on download its page faults on fresh output
//! memory would otherwise bound the transfer instead of PCIe (measured on an
//! H100 host: 8 GB/s up, 1.5 GB/s down with one thread). An upload
//! returns once its last chunk is queued: the staging buffers, not the
//! caller's Arrow buffers, are what the queued copies read.
//!
//! Validity and bool bits are re-aligned to offset 0 on the way in (a sliced
//! Arrow array may start mid-byte) and padded with zero bits to whole u32
//! words, the unit kernels read.

use std::mem::MaybeUninit;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, make_array, types};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow_data::ArrayData;
use cudarc::driver::{CudaEvent, CudaSlice, PinnedHostSlice};
use rayon::prelude::*;

use super::device::Device;
use crate::backend::DeviceArray;
use crate::error::{DeviceFailure, Error, Result};
use crate::ir::DType;

/// Bytes per staged piece of a transfer: large enough that per-copy overhead
/// is negligible, small enough that two pieces overlap well.
pub(super) const CHUNK: usize = 16 << 20;

/// A column in device memory: values (bool columns as bit words) and, when
/// the column has nulls, its validity words. Both start at row 0.
#[derive(Debug)]
pub(super) struct CudaColumn {
    /// The values, `len * width` bytes (bool: `words(len) * 4`), at least 4.
    pub(super) values: CudaSlice<u8>,
    /// The validity bitmap as `words(len)` u32 words, when there are nulls.
    pub(super) validity: Option<CudaSlice<u8>>,
}

impl CudaColumn {
    /// `len` null-free f32 values in `values` as a device array.
    pub(super) fn dense_f32(values: CudaSlice<u8>, len: usize) -> DeviceArray {
        DeviceArray::new(
            DType::Float32,
            len,
            0,
            Arc::new(CudaColumn {
                values,
                validity: None,
            }),
        )
    }
}

/// The CUDA column behind a device array.
pub(super) fn column(array: &DeviceArray) -> Result<&CudaColumn> {
    array.storage::<CudaColumn>().ok_or_else(|| {
        Error::Internal("a device array from another backend was given to CUDA".into())
    })
}

/// Number of u32 words holding `len` bits.
pub(super) fn words(len: usize) -> usize {
    len.div_ceil(32)
}

/// Bytes of device memory for the values of `len` rows of `dtype`.
pub(super) fn value_bytes(dtype: DType, len: usize) -> usize {
    match dtype {
        DType::Bool => words(len) * 4,
        DType::Int32 | DType::Float32 => len * 4,
        DType::Int64 | DType::Float64 => len * 8,
        DType::Utf8 => 0,
    }
}

/// Two pinned host buffers and the events that say when their last copy ended.
#[derive(Debug)]
pub(super) struct Staging {
    buffers: [PinnedHostSlice<u8>; 2],
    events: [CudaEvent; 2],
}

impl Staging {
    /// Allocate the page-locked buffers (not write-combined: downloads read them).
    pub(super) fn new(device: &Device) -> Result<Staging> {
        let pinned = || {
            // SAFETY: the buffer is only read after a copy or the CPU has filled it.
            unsafe { device.ctx.alloc_pinned_with_flags::<u8>(CHUNK, 0) }.map_err(|e| {
                device.driver_error(
                    DeviceFailure::OutOfMemory,
                    "allocating pinned staging memory",
                    "cuMemHostAlloc",
                    e,
                )
            })
        };
        let event = || {
            device.ctx.new_event(None).map_err(|e| {
                device.driver_error(
                    DeviceFailure::Launch,
                    "creating a staging event",
                    "cuEventCreate",
                    e,
                )
            })
        };
        Ok(Staging {
            buffers: [pinned()?, pinned()?],
            events: [event()?, event()?],
        })
    }

    /// Wait for the last copy through buffer `b`, then hand it out.
    fn buffer(&mut self, device: &Device, b: usize, doing: &str) -> Result<&mut [u8]> {
        self.events[b].synchronize().map_err(|e| {
            device.driver_error(DeviceFailure::Launch, doing, "cuEventSynchronize", e)
        })?;
        self.buffers[b]
            .as_mut_slice()
            .map_err(|e| device.driver_error(DeviceFailure::Launch, doing, "cuEventSynchronize", e))
    }

    fn record(&self, device: &Device, b: usize, doing: &str) -> Result<()> {
        self.events[b]
            .record(&device.stream)
            .map_err(|e| device.driver_error(DeviceFailure::Launch, doing, "cuEventRecord", e))
    }

    /// Copy `bytes` into new device memory (at least 4 bytes, so that empty
    /// columns still have an address).
    pub(super) fn htod(&mut self, device: &Device, bytes: &[u8]) -> Result<CudaSlice<u8>> {
        let doing = "uploading a column";
        let mut dst = alloc(device, bytes.len(), doing)?;
        for (i, piece) in bytes.chunks(CHUNK).enumerate() {
            let b = i % 2;
            let buffer = self.buffer(device, b, doing)?;
            // SAFETY: only initialized bytes are written through the view.
            let view = unsafe {
                &mut *(&mut buffer[..piece.len()] as *mut [u8] as *mut [MaybeUninit<u8>])
            };
            parallel_copy(view, piece);
            let start = i * CHUNK;
            device
                .stream
                .memcpy_htod(
                    &buffer[..piece.len()],
                    &mut dst.slice_mut(start..start + piece.len()),
                )
                .map_err(|e| {
                    device.driver_error(DeviceFailure::Launch, doing, "cuMemcpyHtoDAsync", e)
                })?;
            self.record(device, b, doing)?;
        }
        Ok(dst)
    }

    /// Copy the first `out.len()` bytes of `src` into `out`, two pieces in
    /// flight; every byte of `out` is written.
    pub(super) fn dtoh(
        &mut self,
        device: &Device,
        src: &CudaSlice<u8>,
        out: &mut [MaybeUninit<u8>],
    ) -> Result<()> {
        let doing = "downloading a column";
        let total = out.len();
        let pieces = total.div_ceil(CHUNK);
        let range = |i: usize| i * CHUNK..((i + 1) * CHUNK).min(total);
        let enqueue = |staging: &mut Staging, i: usize| -> Result<()> {
            let b = i % 2;
            let r = range(i);
            let buffer = staging.buffer(device, b, doing)?;
            device
                .stream
                .memcpy_dtoh(&src.slice(r.clone()), &mut buffer[..r.len()])
                .map_err(|e| {
                    device.driver_error(DeviceFailure::Launch, doing, "cuMemcpyDtoHAsync", e)
                })?;
            staging.record(device, b, doing)
        };
        for i in 0..pieces.min(2) {
            enqueue(self, i)?;
        }
        for i in 0..pieces {
            let r = range(i);
            let buffer = self.buffer(device, i % 2, doing)?;
            parallel_copy(&mut out[r.clone()], &buffer[..r.len()]);
            if i + 2 < pieces {
                enqueue(self, i + 2)?;
            }
        }
        Ok(())
    }
}

impl Drop for Staging {
    /// Queued copies may still read or write the pinned buffers: wait for
    /// them before the memory is unpinned and freed.
    fn drop(&mut self) {
        for event in &self.events {
            // An error here was already reported by the copy that caused it.
            let _ = event.synchronize();
        }
    }
}

/// Copy `src` into `dst` (of the same length) on all cores, in 1 MiB parts;
/// `dst` may be fresh, uninitialized memory, whose page faults are then
/// taken in parallel too.
fn parallel_copy(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    const PART: usize = 1 << 20;
    assert_eq!(dst.len(), src.len(), "parallel_copy of unequal lengths");
    dst.par_chunks_mut(PART)
        .zip(src.par_chunks(PART))
        .for_each(|(d, s)| {
            // SAFETY: `d` and `s` have the same length and do not overlap
            // (one is borrowed mutably, the other shared).
            unsafe {
                std::ptr::copy_nonoverlapping(s.as_ptr(), d.as_mut_ptr().cast::<u8>(), s.len())
            }
        });
}

/// Ask Linux to back a large, untouched buffer with 2 MiB pages where it
/// can (`transparent_hugepage=madvise`, the common default): a download
/// then takes one page fault per 2 MiB instead of per 4 KiB, and faults, not
/// PCIe, bound downloads into fresh memory (5.6 GB/s on an H100 host with
/// 4 KiB pages). Advice only: failure changes nothing.
fn advise_huge_pages<T>(memory: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = memory.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(memory);
        let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if last > first {
            // SAFETY: the range lies inside `memory`, which this function
            // borrows mutably; MADV_HUGEPAGE does not change its contents.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = memory;
}

/// A host buffer of `bytes` bytes filled by `fill`, 8-byte aligned (enough
/// for every dtype), without zeroing it first: a single-threaded zeroing
/// pass over fresh pages held downloads at 1.5 GB/s.
fn host_buffer(
    bytes: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<()>,
) -> Result<Buffer> {
    let words = bytes.div_ceil(8);
    let mut host: Vec<u64> = Vec::with_capacity(words);
    let spare = host.spare_capacity_mut();
    advise_huge_pages(spare);
    // SAFETY: reinterpreting `words` uninitialized u64s as `8 * words`
    // uninitialized bytes; alignment only decreases.
    let spare: &mut [MaybeUninit<u8>] =
        unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), words * 8) };
    fill(&mut spare[..bytes])?;
    spare[bytes..].fill(MaybeUninit::new(0));
    // SAFETY: `fill` wrote bytes `..bytes` (its contract), the tail was zeroed just above.
    unsafe { host.set_len(words) };
    Ok(Buffer::from_vec(host).slice_with_length(0, bytes))
}

/// Uninitialized device memory of `bytes` bytes (at least 4).
pub(super) fn alloc(device: &Device, bytes: usize, doing: &str) -> Result<CudaSlice<u8>> {
    // SAFETY: every byte is written (by a copy or a kernel) before it is read.
    unsafe { device.stream.alloc::<u8>(bytes.max(4)) }
        .map_err(|e| device.driver_error(DeviceFailure::Launch, doing, "cuMemAllocAsync", e))
}

/// Zeroed device memory of `bytes` bytes (at least 4).
pub(super) fn alloc_zeros(device: &Device, bytes: usize, doing: &str) -> Result<CudaSlice<u8>> {
    device.stream.alloc_zeros::<u8>(bytes.max(4)).map_err(|e| {
        device.driver_error(
            DeviceFailure::Launch,
            doing,
            "cuMemAllocAsync/cuMemsetD8Async",
            e,
        )
    })
}

/// Bits as little-endian u32 words from bit 0, with bits past `len` zero.
fn bit_words(bits: &BooleanBuffer) -> Vec<u8> {
    let aligned = bits.sliced();
    let mut out = vec![0u8; words(bits.len()) * 4];
    let used = bits.len().div_ceil(8);
    out[..used].copy_from_slice(&aligned.as_slice()[..used]);
    if !bits.len().is_multiple_of(8) {
        out[used - 1] &= (1u8 << (bits.len() % 8)) - 1;
    }
    out
}

/// Copy an Arrow array to the device.
pub(super) fn upload(
    device: &Device,
    staging: &mut Staging,
    array: &ArrayRef,
) -> Result<DeviceArray> {
    let dtype = DType::from_arrow(array.data_type())
        .filter(|d| *d != DType::Utf8)
        .ok_or_else(|| {
            device.error(
                DeviceFailure::Unsupported,
                format!(
                    "cannot upload a column of type {}: CUDA holds bool, i32, i64, f32 and f64 \
                     columns; keep string work on `cpu`",
                    array.data_type()
                ),
            )
        })?;
    let bits;
    let values: &[u8] = match dtype {
        DType::Bool => {
            bits = bit_words(array.as_boolean().values());
            &bits
        }
        DType::Int32 => bytemuck::cast_slice(array.as_primitive::<types::Int32Type>().values()),
        DType::Int64 => bytemuck::cast_slice(array.as_primitive::<types::Int64Type>().values()),
        DType::Float32 => bytemuck::cast_slice(array.as_primitive::<types::Float32Type>().values()),
        DType::Float64 => bytemuck::cast_slice(array.as_primitive::<types::Float64Type>().values()),
        DType::Utf8 => unreachable!("filtered above"),
    };
    let values = staging.htod(device, values)?;
    let validity = match array.logical_nulls().filter(|n| n.null_count() > 0) {
        Some(nulls) => Some(staging.htod(device, &bit_words(nulls.inner()))?),
        None => None,
    };
    Ok(DeviceArray::new(
        dtype,
        array.len(),
        array.logical_null_count(),
        Arc::new(CudaColumn { values, validity }),
    ))
}

/// Copy a device array back into an Arrow array with its validity.
pub(super) fn download(
    device: &Device,
    staging: &mut Staging,
    array: &DeviceArray,
) -> Result<ArrayRef> {
    let col = column(array)?;
    let len = array.len();
    let fetch = |staging: &mut Staging, src: &CudaSlice<u8>, bytes: usize| -> Result<Buffer> {
        host_buffer(bytes, |out| staging.dtoh(device, src, out))
    };
    let values = fetch(staging, &col.values, value_bytes(array.dtype(), len))?;
    let nulls = match (&col.validity, array.null_count()) {
        (Some(validity), n) if n > 0 => {
            let bits = fetch(staging, validity, words(len) * 4)?;
            Some(NullBuffer::new(BooleanBuffer::new(bits, 0, len)))
        }
        _ => None,
    };
    let data = ArrayData::builder(array.dtype().to_arrow())
        .len(len)
        .add_buffer(values)
        .nulls(nulls)
        .build()?;
    Ok(make_array(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_words_realign_sliced_bitmaps_and_zero_the_padding() {
        let bools: Vec<bool> = (0..200).map(|i| (i * 7 + i / 3) % 5 < 2).collect();
        let all = BooleanBuffer::from(bools.as_slice());
        for offset in [0, 1, 3, 8, 13, 31, 32, 33] {
            for len in [0, 1, 7, 8, 9, 31, 32, 33, 64, 100] {
                let words = bit_words(&all.slice(offset, len));
                assert_eq!(
                    words.len(),
                    super::words(len) * 4,
                    "offset {offset}, len {len}"
                );
                for bit in 0..words.len() * 8 {
                    let got = (words[bit / 8] >> (bit % 8)) & 1 == 1;
                    let want = bit < len && bools[offset + bit];
                    assert_eq!(got, want, "offset {offset}, len {len}, bit {bit}");
                }
            }
        }
    }
}

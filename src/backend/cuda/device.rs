//! Finding and opening a CUDA device: the driver library, NVRTC, the context,
//! the stream all work is queued on, and what the device is.
//!
//! cudarc opens `libcuda`, `libnvrtc` and `libcublas` on first use and panics
//! when one is missing (or lacks a symbol), so every first touch goes through
//! [`guarded`]: presence is checked first, and a panic that still escapes is
//! turned into [`DeviceFailure::Unavailable`].

use std::sync::Arc;

use cudarc::driver::sys::{CUdevice_attribute, CUmemPool_attribute, CUresult};
use cudarc::driver::{CudaContext, CudaStream, DriverError};

use crate::backend::{DeviceInfo, DeviceKind};
use crate::error::{DeviceFailure, Error, Result, contain};

/// Blocks of 256 threads kept resident per multiprocessor by grid-stride
/// kernels: 8 × 256 = 2048 threads, the most an sm_80/sm_90 SM holds.
pub(super) const BLOCKS_PER_SM: u32 = 8;

/// An open CUDA device: its context, the one stream its work is queued on
/// (so stream order is the only ordering needed), and its description.
#[derive(Debug)]
pub(super) struct Device {
    pub(super) ctx: Arc<CudaContext>,
    pub(super) stream: Arc<CudaStream>,
    pub(super) info: DeviceInfo,
    /// `cuda:{ordinal} {name}`, the device as errors name it.
    pub(super) label: String,
    /// Compute capability `(major, minor)`.
    pub(super) compute_capability: (i32, i32),
    /// Number of streaming multiprocessors.
    pub(super) multiprocessors: u32,
}

impl Device {
    /// Open device `ordinal`: check the driver and NVRTC are present, create
    /// the context and stream, and read what the device is.
    pub(super) fn open(ordinal: usize) -> Result<Device> {
        let label = format!("cuda:{ordinal}");
        guarded(&label, "opening the device", || {
            Device::open_unguarded(ordinal)
        })
    }

    fn open_unguarded(ordinal: usize) -> Result<Device> {
        let label = format!("cuda:{ordinal}");
        check_present(ordinal, &label)?;
        let driver = |call: &str, e: DriverError| {
            Error::device(
                &label,
                DeviceFailure::Unavailable,
                format!("{call} failed: {}", describe(e)),
            )
            .caused_by(e)
        };
        let ctx = CudaContext::new(ordinal).map_err(|e| driver("cuDevicePrimaryCtxRetain", e))?;
        // All work goes to one stream, so stream order alone orders it; the
        // per-allocation events cudarc records for multi-stream use are not needed.
        // SAFETY: no slice is ever used on a stream other than `stream`.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| driver("cuStreamCreate", e))?;
        if ctx.has_async_alloc() {
            keep_freed_memory(&ctx, &driver)?;
        }
        let name = ctx.name().map_err(|e| driver("cuDeviceGetName", e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| driver("cuDeviceGetAttribute(compute capability)", e))?;
        let multiprocessors = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| driver("cuDeviceGetAttribute(multiprocessor count)", e))?;
        let mut version = 0;
        // SAFETY: writes one int; the driver library is loaded (checked above).
        check(
            unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) },
            |e| driver("cuDriverGetVersion", e),
        )?;
        let info = DeviceInfo {
            kind: DeviceKind::Cuda,
            name: name.clone(),
            software: false,
            api: format!(
                "CUDA {}.{}, sm_{major}{minor}",
                version / 1000,
                (version % 1000) / 10
            ),
            f64: true,
            i64: true,
        };
        Ok(Device {
            ctx,
            stream,
            info,
            label: format!("{label} {name}"),
            compute_capability: (major, minor),
            multiprocessors: multiprocessors.max(1) as u32,
        })
    }

    /// A device error on this device.
    pub(super) fn error(&self, failure: DeviceFailure, message: impl Into<String>) -> Error {
        Error::device(&self.label, failure, message)
    }

    /// A failed driver call: what was being done, the call, and the driver's
    /// reason. Out of memory maps to [`DeviceFailure::OutOfMemory`], anything
    /// else to `failure`.
    pub(super) fn driver_error(
        &self,
        failure: DeviceFailure,
        doing: &str,
        call: &str,
        err: DriverError,
    ) -> Error {
        let failure = if err.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            DeviceFailure::OutOfMemory
        } else {
            failure
        };
        let advice = match failure {
            DeviceFailure::OutOfMemory => {
                "; free device arrays or process the data in smaller chunks"
            }
            _ => "",
        };
        self.error(
            failure,
            format!("{doing}: {call} failed: {}{advice}", describe(err)),
        )
        .caused_by(err)
    }

    /// Grid size for a grid-stride kernel over `rows` rows with 256-thread
    /// blocks: enough blocks to fill every multiprocessor, never more than
    /// the rows need.
    pub(super) fn grid_for(&self, rows: usize) -> u32 {
        let needed = rows.div_ceil(256).max(1);
        needed.min((self.multiprocessors * BLOCKS_PER_SM) as usize) as u32
    }

    /// Run `f` with this device's context current on the calling thread,
    /// turning an escaped cudarc panic into an error.
    pub(super) fn run<T>(&self, doing: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        guarded(&self.label, doing, || {
            self.ctx.bind_to_thread().map_err(|e| {
                self.driver_error(DeviceFailure::Launch, doing, "cuCtxSetCurrent", e)
            })?;
            let out = f()?;
            // Errors cudarc could only record (in drops) surface here.
            self.ctx.check_err().map_err(|e| {
                self.driver_error(DeviceFailure::Launch, doing, "a deferred CUDA call", e)
            })?;
            Ok(out)
        })
    }
}

/// Check that the driver library and NVRTC load and that device `ordinal`
/// exists, before cudarc touches them (it panics where they are missing).
fn check_present(ordinal: usize, label: &str) -> Result<()> {
    let unavailable = |message: String| Error::device(label, DeviceFailure::Unavailable, message);
    // SAFETY: only tries to dlopen the library under its usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(unavailable(
            "no CUDA driver library (libcuda.so) was found; install the NVIDIA driver, \
             or run on `cpu`"
                .into(),
        ));
    }
    super::compile::nvrtc_present(label)?;
    let count = CudaContext::device_count()
        .map_err(|e| unavailable(format!("cuInit/cuDeviceGetCount failed: {}", describe(e))))?;
    if ordinal >= count.max(0) as usize {
        return Err(unavailable(format!(
            "the driver reports {count} CUDA device(s), so there is no device {ordinal}; \
             check CUDA_VISIBLE_DEVICES, or run on `cpu`"
        )));
    }
    Ok(())
}

/// Keep freed device memory in the stream-ordered pool for reuse. With the
/// default threshold (0) every synchronize hands it back to the driver, and
/// the next allocation maps fresh pages: that cost dominated short kernels on
/// an H100.
fn keep_freed_memory(
    ctx: &CudaContext,
    driver: &impl Fn(&str, DriverError) -> Error,
) -> Result<()> {
    let mut pool = std::ptr::null_mut();
    let mut keep = u64::MAX;
    // SAFETY: `pool` receives the device's default pool, which lives as
    // long as the device; the attribute takes a u64 by pointer.
    unsafe {
        check(
            cudarc::driver::sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()),
            |e| driver("cuDeviceGetDefaultMemPool", e),
        )?;
        check(
            cudarc::driver::sys::cuMemPoolSetAttribute(
                pool,
                CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut keep as *mut u64).cast(),
            ),
            |e| driver("cuMemPoolSetAttribute(release threshold)", e),
        )?;
    }
    Ok(())
}

/// A driver error's name and description, e.g.
/// `CUDA_ERROR_OUT_OF_MEMORY (out of memory)`.
pub(super) fn describe(err: DriverError) -> String {
    let name = err.error_name().map(|s| s.to_string_lossy().into_owned());
    let text = err.error_string().map(|s| s.to_string_lossy().into_owned());
    match (name, text) {
        (Ok(name), Ok(text)) => format!("{name} ({text})"),
        _ => format!("{:?}", err.0),
    }
}

/// A raw `CUresult` as a `Result`.
fn check(result: CUresult, err: impl FnOnce(DriverError) -> Error) -> Result<()> {
    match result {
        CUresult::CUDA_SUCCESS => Ok(()),
        other => Err(err(DriverError(other))),
    }
}

/// Run `f`, turning a panic inside cudarc (a missing library or symbol) into
/// [`DeviceFailure::Unavailable`] on `device`.
pub(super) fn guarded<T>(device: &str, doing: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    contain(f).unwrap_or_else(|reason| {
        Err(Error::device(
            device,
            DeviceFailure::Unavailable,
            format!(
                "{doing}: the CUDA libraries could not be used ({reason}); check the NVIDIA \
                 driver and that LD_LIBRARY_PATH names the directory of libnvrtc and libcublas"
            ),
        ))
    })
}

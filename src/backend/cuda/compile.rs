//! CUDA C to PTX with NVRTC, and loaded kernels cached per device.
//!
//! Every kernel is compiled with `--fmad=false`, so `a * b + c` stays a
//! rounded multiply and a rounded add (no fused multiply-add), and `+ - * /`
//! round exactly as on the CPU; `sqrt` and `/` are IEEE-rounded (NVRTC's
//! default `--prec-sqrt=true --prec-div=true`), and denormals are kept.
//! PTX is generated for the device's virtual architecture (`compute_XY`) and
//! turned into machine code by the driver when the module loads.
//!
//! NVRTC is found by cudarc's loader, which tries `libnvrtc.so`,
//! `libnvrtc.so.13` and older sonames on the dynamic linker's path: put the
//! directory holding it (for the PyPI wheel `nvidia-cuda-nvrtc`,
//! `site-packages/nvidia/cu13/lib`) on `LD_LIBRARY_PATH`. NVRTC itself then
//! opens `libnvrtc-builtins.so.13.0` by name, so the directory must be on the
//! path even when `libnvrtc` is found some other way.

use std::collections::HashMap;
use std::sync::Mutex;

use cudarc::driver::CudaFunction;
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx, compile_ptx_with_opts};

use super::device::{Device, describe};
use crate::error::{DeviceFailure, Error, Result};

/// NVRTC options every kernel is compiled with (besides the architecture).
pub const NVRTC_OPTIONS: &[&str] = &["--fmad=false", "--std=c++17", "-default-device"];

/// Whether NVRTC can be loaded; `device` names the device in the error.
///
/// # Errors
/// [`DeviceFailure::Unavailable`] when no `libnvrtc` is on the library path.
pub fn nvrtc_present(device: &str) -> Result<()> {
    // SAFETY: only tries to dlopen the library under its usual names.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::device(
            device,
            DeviceFailure::Unavailable,
            "NVRTC (libnvrtc.so) was not found, so kernels cannot be compiled; install the CUDA \
             toolkit or `pip install nvidia-cuda-nvrtc` and put its lib directory on \
             LD_LIBRARY_PATH, or run on `cpu`",
        ))
    }
}

/// Compile CUDA C `source` to PTX for `arch` (`compute_90`, `sm_90`).
/// `kernel` names the kernel in errors. Needs NVRTC, but no device.
///
/// # Errors
/// [`DeviceFailure::Unavailable`] without NVRTC; [`DeviceFailure::Compile`]
/// with NVRTC's log when the source does not compile.
#[cfg(feature = "internals")]
pub fn compile_ptx(source: &str, arch: &str, kernel: &str) -> Result<String> {
    let device = format!("nvrtc {arch}");
    nvrtc_present(&device)?;
    super::device::guarded(&device, &format!("compiling kernel `{kernel}`"), || {
        let ptx = nvrtc(source, arch, kernel).map_err(|e| compile_error(&device, kernel, e))?;
        Ok(ptx.to_src())
    })
}

fn nvrtc(source: &str, arch: &str, kernel: &str) -> Result<Ptx, CompileError> {
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|o| o.to_string()).collect();
    options.push(format!("--gpu-architecture={arch}"));
    compile_ptx_with_opts(
        source,
        CompileOptions {
            options,
            name: Some(format!("{kernel}.cu")),
            ..Default::default()
        },
    )
}

fn compile_error(device: &str, kernel: &str, err: CompileError) -> Error {
    let message = match err {
        CompileError::CompileError {
            nvrtc,
            options,
            log,
        } => format!(
            "kernel `{kernel}` did not compile ({nvrtc:?}, options {}):\n{}\nthis is a bug in \
             fuseflow's CUDA code generation; please report it, and run the step on `cpu` meanwhile",
            options.join(" "),
            log.to_string_lossy()
        ),
        other => format!("NVRTC failed on kernel `{kernel}`: {other:?}"),
    };
    Error::device(device, DeviceFailure::Compile, message)
}

/// Loaded kernels of one device, by (BLAKE3 of the source, entry point).
#[derive(Debug, Default)]
pub(super) struct ModuleCache {
    functions: Mutex<HashMap<([u8; 32], String), CudaFunction>>,
}

impl ModuleCache {
    /// The entry point `name` of `source`, compiled and loaded on first use.
    pub(super) fn function(
        &self,
        device: &Device,
        source: &str,
        name: &str,
    ) -> Result<CudaFunction> {
        let key = (
            *blake3::hash(source.as_bytes()).as_bytes(),
            name.to_string(),
        );
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = functions.get(&key) {
            return Ok(f.clone());
        }
        let (major, minor) = device.compute_capability;
        let arch = format!("compute_{major}{minor}");
        let ptx = nvrtc(source, &arch, name).map_err(|e| compile_error(&device.label, name, e))?;
        let module = device.ctx.load_module(ptx).map_err(|e| {
            device.error(
                DeviceFailure::Compile,
                format!(
                    "loading the PTX of kernel `{name}` for {arch}: cuModuleLoadData failed: {}; \
                     if the PTX version is unsupported, the driver is older than NVRTC: update \
                     the driver or use an NVRTC no newer than it",
                    describe(e)
                ),
            )
        })?;
        let function = module.load_function(name).map_err(|e| {
            device.error(
                DeviceFailure::Compile,
                format!("cuModuleGetFunction(`{name}`) failed: {}", describe(e)),
            )
        })?;
        functions.insert(key, function.clone());
        Ok(function)
    }
}

//! The backends a test machine offers, for suites written once and run on each.
//!
//! The CPU is always there. GPU backends join when their device opens; when
//! one is missing the suite prints that it skipped it, unless the matching
//! `FUSEFLOW_REQUIRE_*` variable is `1`, in which case the test fails.

use std::sync::Arc;

use fuseflow::backend::{Backend, CpuBackend, CudaBackend, WgpuBackend};

/// Every backend available here, the CPU first.
pub fn backends() -> Vec<Arc<dyn Backend>> {
    let mut all: Vec<Arc<dyn Backend>> = vec![CpuBackend::shared()];
    all.extend(wgpu().map(|b| b as Arc<dyn Backend>));
    all.extend(cuda().map(|b| b as Arc<dyn Backend>));
    all
}

/// The shared wgpu backend, or `None` with a printed notice (a panic under
/// `FUSEFLOW_REQUIRE_WGPU=1`).
pub fn wgpu() -> Option<Arc<WgpuBackend>> {
    available("FUSEFLOW_REQUIRE_WGPU", "wgpu", WgpuBackend::shared())
}

/// The shared CUDA backend, or `None` with a printed notice (a panic under
/// `FUSEFLOW_REQUIRE_CUDA=1`).
pub fn cuda() -> Option<Arc<CudaBackend>> {
    available("FUSEFLOW_REQUIRE_CUDA", "CUDA", CudaBackend::shared())
}

fn available<T>(require: &str, what: &str, opened: fuseflow::Result<Arc<T>>) -> Option<Arc<T>> {
    match opened {
        Ok(backend) => Some(backend),
        Err(e) if std::env::var(require).is_ok_and(|v| v == "1") => {
            panic!("{require}=1 but {what} is not available: {e}")
        }
        Err(e) => {
            eprintln!("skipping {what} tests: {e}");
            None
        }
    }
}

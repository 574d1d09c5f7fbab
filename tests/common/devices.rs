//! The backends a test machine offers, for suites written once and run on each.
//!
//! The CPU is always there. GPU backends join when their device opens; when
//! one is missing the suite prints that it skipped it, unless the matching
//! `FUSEFLOW_REQUIRE_*` variable is `1`, in which case the test fails.

use std::sync::Arc;

use fuseflow::backend::{Backend, CpuBackend};

/// Every backend available here, the CPU first.
pub fn backends() -> Vec<Arc<dyn Backend>> {
    let mut all: Vec<Arc<dyn Backend>> = vec![CpuBackend::shared()];
    all.extend(gpu("FUSEFLOW_REQUIRE_WGPU", "wgpu", || {
        fuseflow::backend::WgpuBackend::shared().map(|b| b as Arc<dyn Backend>)
    }));
    all.extend(gpu("FUSEFLOW_REQUIRE_CUDA", "CUDA", || {
        fuseflow::backend::CudaBackend::shared().map(|b| b as Arc<dyn Backend>)
    }));
    all
}

/// The backend `open` gives, or `None` with a printed notice (a panic when
/// `require` is set to 1).
pub fn gpu(
    require: &str,
    what: &str,
    open: impl FnOnce() -> fuseflow::Result<Arc<dyn Backend>>,
) -> Option<Arc<dyn Backend>> {
    match open() {
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

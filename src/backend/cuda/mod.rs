//! The CUDA backend: NVIDIA GPUs through the driver API, NVRTC and cuBLAS,
//! all loaded at run time (cudarc's `dynamic-loading`), so the crate builds
//! and runs everywhere and a missing GPU or library is a typed
//! [`DeviceFailure::Unavailable`](crate::error::DeviceFailure::Unavailable).
//!
//! - [`CudaBackend`] (`backend.rs`): the [`Backend`](crate::backend::Backend) verbs.
//! - `device.rs`: presence checks, context, the stream, [`DeviceInfo`](crate::backend::DeviceInfo).
//! - [`codegen`]: the CUDA C kernel around a fused body; bitmaps by warp ballot.
//! - [`compile`]: NVRTC (`--fmad=false`) and the per-device module cache.
//! - `launch.rs`: launching a fused kernel; `reduce.rs`: statistics with
//!   `kernels/cuda/reduce.cu`; `matmul.rs`: cuBLAS `sgemm`; `train.rs`: the
//!   training kernels (`kernels/cuda/train.cu`; block products with
//!   `cublasSdgmm` and strided batched `sgemm`).
//! - `memory.rs`: device columns, pinned double-buffered transfers.

mod backend;
pub mod codegen;
pub mod compile;
mod device;
mod launch;
mod matmul;
mod memory;
mod reduce;
mod train;

pub use backend::CudaBackend;
// What the tests compile to PTX without a device.
#[cfg(feature = "internals")]
pub use codegen::{FusedKernel, fused_kernel};
#[cfg(feature = "internals")]
pub use compile::{NVRTC_OPTIONS, compile_ptx, nvrtc_present};
#[cfg(feature = "internals")]
pub use reduce::{REDUCE_SOURCE, reduce_entry};
#[cfg(feature = "internals")]
pub use train::{TRAIN_ENTRIES, TRAIN_SOURCE};

//! The CPU backend: fused block kernels and parallel reductions with rayon.
//!
//! - [`CpuKernel`] (`kernel/`): a compiled [`Projection`](crate::ir::Projection), evaluated in one pass.
//! - [`CpuBackend`] (`backend.rs`): the CPU as a [`Backend`](crate::backend::Backend).
//! - [`stats`]: one-pass column statistics with f64 accumulation.
//! - `train.rs`: the training kernels ([`TrainKernel`](crate::backend::TrainKernel)), the reference for the GPUs.

mod backend;
pub mod kernel;
pub mod stats;
#[cfg(target_arch = "x86_64")]
mod stats_avx2;
mod train;

pub use backend::CpuBackend;
pub use kernel::CpuKernel;
#[cfg(feature = "internals")]
pub use kernel::BLOCK;

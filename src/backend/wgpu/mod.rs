//! The portable GPU backend: Vulkan, Metal or DX12 through wgpu.
//!
//! A tour of the pieces:
//!
//! - [`WgpuBackend`] (`backend.rs`): the [`Backend`](crate::backend::Backend) verbs.
//! - `device.rs`: the adapter and device, opened once per process by
//!   [`WgpuBackend::shared`]; error scopes around every device call, so a wgpu
//!   validation or out-of-memory error becomes an
//!   [`Error::Device`](crate::Error::Device) instead of a panic; compiled
//!   pipelines cached by their WGSL source.
//! - `memory.rs`: [`Backend::upload`](crate::backend::Backend::upload) and
//!   `download`. Values keep Arrow's layout; validity bitmaps and bool values
//!   travel as `u32` bit words starting at row 0.
//! - `codegen.rs`: the compute shader around a fused body from
//!   [`crate::backend::codegen::fused_body`]: bindings, the row index, bool and
//!   validity bits packed in workgroup memory, null counting.
//! - `launch.rs`: runs a fused kernel over a column, in pieces when a column is
//!   larger than one storage binding may be.
//! - `reduce.rs`, `matmul.rs`: the hand-written kernels in `kernels/wgsl/`.
//! - `train.rs`: the training kernels (`kernels/wgsl/train_*.wgsl`): block
//!   products in 16x16 workgroup tiles, the loss head, activations, row
//!   gathers and Adam.
//!
//! The backend is always compiled; on a machine without a GPU or a Vulkan
//! driver, [`WgpuBackend::open`] answers with
//! [`DeviceFailure::Unavailable`](crate::error::DeviceFailure::Unavailable).

mod backend;
mod codegen;
mod device;
mod launch;
mod matmul;
mod memory;
mod reduce;
mod train;

#[cfg(feature = "internals")]
pub use codegen::fused_kernel_source;
pub use device::WgpuBackend;

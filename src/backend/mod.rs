//! Compute backends: the verbs every device offers, and the device a step runs on.
//!
//! A [`Backend`] moves Arrow columns to and from its memory ([`Backend::upload`],
//! [`Backend::download`]), evaluates a [`Projection`] as one fused kernel
//! ([`Backend::launch`]), reduces a column to [`ColumnStats`]
//! ([`Backend::reduce`]) and multiplies dense matrices ([`Backend::matmul`]).
//! Columns resident on a device are [`DeviceArray`]s: opaque handles that only
//! the backend which made them can read. Model training adds one verb,
//! [`Backend::train`], over the hand-written kernels of [`train`].
//!
//! - `cpu`: rayon over Arrow buffers in place; always available.
//! - `cuda`: NVIDIA GPUs, with the CUDA libraries loaded at run time.
//! - `wgpu`: Vulkan, Metal or DX12 through wgpu; a typed error where no
//!   adapter is found.
//! - `codegen`: fused kernels as source text (WGSL, CUDA C), generated from
//!   the IR with each operator's spelling taken from [`crate::ir::ops`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow_array::ArrayRef;

use crate::error::Result;
use crate::ir::{DType, OpByOp, Projection};

internal_mod!(codegen);
internal_mod!(cpu);
internal_mod!(cuda);
mod device;
mod discovery;
mod residency;
pub mod train;
// By hand, not by `internal_mod!`: a macro-made module may not shadow the
// `wgpu` crate.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod wgpu;
#[cfg(not(feature = "internals"))]
pub(crate) mod wgpu;

pub use cpu::CpuBackend;
pub use cpu::stats::ColumnStats;
// The fused CPU kernel and the mergeable statistics, for other engines to
// evaluate fuseflow's projections and fits as fuseflow does
// (fuseflow-datafusion).
pub use cpu::CpuKernel;
pub use cpu::stats::{column_stats, column_stats_onto};
pub use cuda::CudaBackend;
pub use device::{Device, DeviceChoice, Kernel, Notes};
pub use discovery::DeviceSet;
pub use residency::{DEFAULT_DEVICE_BUDGET, DeviceTier};
pub use train::TrainKernel;
pub use wgpu::WgpuBackend;

/// The kinds of compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// The host CPU, through rayon.
    Cpu,
    /// A GPU through wgpu (Vulkan, Metal, DX12), or a software Vulkan driver.
    Wgpu,
    /// An NVIDIA GPU through CUDA.
    Cuda,
}

impl DeviceKind {
    /// The name used on the command line and in spec files.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a device is, as `explain` and run records report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The kind of device.
    pub kind: DeviceKind,
    /// The adapter or GPU name, e.g. `NVIDIA H100 80GB HBM3` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Whether the device is emulated on the CPU (a software Vulkan driver such
    /// as lavapipe): correct, but no faster than the CPU backend.
    pub software: bool,
    /// The API underneath, e.g. `Vulkan`, `CUDA 13.0, sm_90`.
    pub api: String,
    /// Whether the device computes on f64 natively (WGSL has no f64).
    pub f64: bool,
    /// Whether the device computes on i64 natively (WGSL has no i64).
    pub i64: bool,
}

impl DeviceInfo {
    /// Whether the device can hold and compute on `dtype`.
    pub fn supports(&self, dtype: DType) -> bool {
        match dtype {
            DType::Bool | DType::Int32 | DType::Float32 => true,
            DType::Float64 => self.f64,
            DType::Int64 => self.i64,
            DType::Utf8 => self.kind == DeviceKind::Cpu,
        }
    }
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({}", self.kind, self.name, self.api)?;
        if self.software {
            f.write_str(", software")?;
        }
        f.write_str(")")
    }
}

/// A column resident on a device: values (and a validity bitmap when it has
/// nulls) in the device's memory, always starting at offset 0.
///
/// The storage is owned by the backend that made the array; handing an array
/// to another backend is an [`Error::Internal`](crate::error::Error::Internal).
#[derive(Clone)]
pub struct DeviceArray {
    dtype: DType,
    len: usize,
    null_count: usize,
    storage: Arc<dyn Any + Send + Sync>,
}

impl DeviceArray {
    /// Wrap a backend's storage for a column of `len` values of `dtype`.
    pub fn new(
        dtype: DType,
        len: usize,
        null_count: usize,
        storage: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        DeviceArray {
            dtype,
            len,
            null_count,
            storage,
        }
    }

    /// The values' type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of values (rows).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of nulls; 0 means the array carries no validity bitmap.
    pub fn null_count(&self) -> usize {
        self.null_count
    }

    /// The backend's storage, if it is of type `T`.
    pub fn storage<T: Any>(&self) -> Option<&T> {
        self.storage.downcast_ref()
    }
}

impl fmt::Debug for DeviceArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceArray")
            .field("dtype", &self.dtype)
            .field("len", &self.len)
            .field("null_count", &self.null_count)
            .finish_non_exhaustive()
    }
}

/// A dense f32 matrix stored column-major in a null-free [`DeviceArray`] of
/// `rows * cols` values, optionally read transposed.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    /// The values, column-major: element `(r, c)` is at `c * rows + r`.
    pub data: &'a DeviceArray,
    /// Rows as stored.
    pub rows: usize,
    /// Columns as stored.
    pub cols: usize,
    /// Use the transpose (`cols x rows`) in the product.
    pub transposed: bool,
}

impl<'a> Matrix<'a> {
    /// A `rows x cols` column-major matrix.
    pub fn new(data: &'a DeviceArray, rows: usize, cols: usize) -> Self {
        Matrix {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The same matrix, read transposed.
    pub fn t(self) -> Self {
        Matrix {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Rows and columns as used in a product (after the transpose).
    pub fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// `(m, k, n)` of the product `a · b`, after checking that the inner
    /// sizes agree and both operands are null-free f32 with `rows * cols` values.
    ///
    /// # Errors
    /// [`Error::Internal`] describing the operand that does not fit.
    pub(crate) fn product_shape(
        a: &Matrix<'_>,
        b: &Matrix<'_>,
    ) -> crate::error::Result<(usize, usize, usize)> {
        let ((m, k), (kb, n)) = (a.shape(), b.shape());
        if k != kb {
            return Err(crate::error::Error::Internal(format!(
                "matmul of {m}x{k} by {kb}x{n}"
            )));
        }
        for x in [a, b] {
            if x.data.dtype() != DType::Float32
                || x.data.null_count() != 0
                || x.data.len() != x.rows * x.cols
            {
                return Err(crate::error::Error::Internal(format!(
                    "matmul operands must be null-free f32 with rows*cols values, got {} {}x{} over {} values with {} nulls",
                    x.data.dtype(),
                    x.rows,
                    x.cols,
                    x.data.len(),
                    x.data.null_count()
                )));
            }
        }
        Ok((m, k, n))
    }
}

/// The verbs every compute device offers.
///
/// Model algorithms and the executor are written against these verbs, so
/// every backend runs the same pipelines and only the kernels differ. Work
/// may be queued asynchronously; [`Backend::download`] and
/// [`Backend::synchronize`] wait for it.
pub trait Backend: Send + Sync + fmt::Debug {
    /// What the device is.
    fn info(&self) -> &DeviceInfo;

    /// Copy an Arrow array (values and validity) into device memory.
    ///
    /// # Errors
    /// [`Error::Device`](crate::error::Error::Device) when the dtype is unsupported or
    /// the device is out of memory.
    fn upload(&self, array: &ArrayRef) -> Result<DeviceArray>;

    /// Copy a device array back into an Arrow array with the same validity.
    fn download(&self, array: &DeviceArray) -> Result<ArrayRef>;

    /// Evaluate every output of `projection` as one fused kernel.
    ///
    /// `inputs[i]` is column `i` of the projection's input schema, `None` for
    /// columns the projection does not read; all given inputs have the same
    /// length. Returns one array per output, in output order.
    fn launch(
        &self,
        projection: &Projection,
        inputs: &[Option<&DeviceArray>],
    ) -> Result<Vec<DeviceArray>>;

    /// Evaluate a projection op by op ([`Projection::op_by_op`]): each
    /// single-operator step is one launch, and its result stays on the device
    /// as a column the later steps read. `inputs` are the projection's input
    /// columns, as for [`Backend::launch`]. The unfused form that fused
    /// kernels are checked against.
    fn launch_op_by_op(
        &self,
        unfused: &OpByOp,
        mut columns: Vec<Option<DeviceArray>>,
    ) -> Result<Vec<DeviceArray>> {
        let inputs = columns.len();
        for step in &unfused.steps {
            let refs: Vec<_> = columns.iter().map(Option::as_ref).collect();
            let mut computed = self.launch(step, &refs)?;
            columns.push(computed.pop());
        }
        Ok(unfused
            .outputs
            .iter()
            .map(|&step| {
                columns[inputs + step]
                    .clone()
                    .expect("every step computes a column")
            })
            .collect())
    }

    /// Count, nulls, NaNs, mean, sum of squared deviations, min and max of a
    /// numeric column, combined in a fixed order so that results repeat bit
    /// for bit on the same device.
    fn reduce(&self, array: &DeviceArray) -> Result<ColumnStats>;

    /// The product `a · b` of f32 matrices, as a new column-major matrix
    /// (stored in a `DeviceArray` of `rows * cols` f32 values).
    fn matmul(&self, a: Matrix<'_>, b: Matrix<'_>) -> Result<DeviceArray>;

    /// Run one of the hand-written training kernels (see [`TrainKernel`] for
    /// each kernel's operands and outputs).
    ///
    /// The default answers [`DeviceFailure::Unsupported`](crate::error::DeviceFailure::Unsupported),
    /// so a backend without training kernels (such as a test double) makes
    /// trainers fall back to the CPU; the CPU, wgpu and CUDA backends have them.
    ///
    /// # Errors
    /// [`Error::Internal`](crate::error::Error::Internal) for operands of the wrong
    /// type or shape ([`TrainKernel::check`]); [`Error::Device`](crate::error::Error::Device)
    /// when the device fails.
    fn train(&self, kernel: TrainKernel<'_>) -> Result<Vec<DeviceArray>> {
        Err(crate::error::Error::device(
            self.info().kind.name(),
            crate::error::DeviceFailure::Unsupported,
            format!(
                "{} has no training kernel `{}`; training runs on the CPU",
                self.info(),
                kernel.name()
            ),
        ))
    }

    /// Wait until all queued work on the device has finished.
    fn synchronize(&self) -> Result<()>;
}

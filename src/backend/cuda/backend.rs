//! [`CudaBackend`]: a CUDA device as a [`Backend`].

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arrow_array::ArrayRef;
use cudarc::cublas::CudaBlas;

use super::compile::ModuleCache;
use super::device::Device;
use super::memory::Staging;
use super::{launch, matmul, memory, reduce, train};
use crate::backend::{Backend, ColumnStats, DeviceArray, DeviceInfo, Matrix, TrainKernel};
use crate::error::{DeviceFailure, Error, Result};
use crate::ir::Projection;

/// An NVIDIA GPU through CUDA: fused kernels compiled at run time with NVRTC,
/// hand-written statistics kernels, cuBLAS for products, and transfers
/// through pinned staging memory. All work is queued on one stream.
///
/// The driver, NVRTC and cuBLAS are loaded at run time; when one is missing
/// [`CudaBackend::open`] (or, for cuBLAS, the first [`Backend::matmul`])
/// answers with [`DeviceFailure::Unavailable`] instead of failing to link.
#[derive(Debug)]
pub struct CudaBackend {
    device: Device,
    modules: ModuleCache,
    /// Allocated at the first transfer.
    staging: Mutex<Option<Staging>>,
    /// Opened at the first product; one caller at a time, as cuBLAS
    /// advises against sharing a handle between threads.
    blas: OnceLock<Result<Mutex<CudaBlas>, String>>,
}

impl CudaBackend {
    /// Open CUDA device `ordinal` (0 is the first visible device).
    ///
    /// # Errors
    /// [`Error::Device`] with [`DeviceFailure::Unavailable`] when the driver
    /// library, NVRTC or the device is missing, naming what to install or set.
    pub fn open(ordinal: usize) -> Result<CudaBackend> {
        Ok(CudaBackend {
            device: Device::open(ordinal)?,
            modules: ModuleCache::default(),
            staging: Mutex::new(None),
            blas: OnceLock::new(),
        })
    }

    /// The process-wide backend on device 0, opened on first use.
    ///
    /// # Errors
    /// The error of the first attempt to open it, every call: a missing
    /// device does not become present within a process.
    pub fn shared() -> Result<Arc<CudaBackend>> {
        static SHARED: OnceLock<Result<Arc<CudaBackend>, (DeviceFailure, String, String)>> =
            OnceLock::new();
        SHARED
            .get_or_init(|| match CudaBackend::open(0) {
                Ok(backend) => Ok(Arc::new(backend)),
                Err(Error::Device {
                    device,
                    failure,
                    message,
                    ..
                }) => Err((failure, device, message)),
                Err(other) => Err((
                    DeviceFailure::Unavailable,
                    "cuda:0".into(),
                    other.to_string(),
                )),
            })
            .clone()
            .map_err(|(failure, device, message)| Error::device(device, failure, message))
    }

    fn staging(&self) -> Result<MutexGuard<'_, Option<Staging>>> {
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        if staging.is_none() {
            *staging = Some(Staging::new(&self.device)?);
        }
        Ok(staging)
    }

    fn blas(&self) -> Result<MutexGuard<'_, CudaBlas>> {
        self.blas
            .get_or_init(|| {
                matmul::open_blas(&self.device)
                    .map(Mutex::new)
                    .map_err(|e| match e {
                        Error::Device { message, .. } => message,
                        other => other.to_string(),
                    })
            })
            .as_ref()
            .map(|blas| blas.lock().unwrap_or_else(|p| p.into_inner()))
            .map_err(|message| {
                self.device
                    .error(DeviceFailure::Unavailable, message.clone())
            })
    }
}

impl Backend for CudaBackend {
    fn info(&self) -> &DeviceInfo {
        &self.device.info
    }

    fn upload(&self, array: &ArrayRef) -> Result<DeviceArray> {
        self.device.run("upload", || {
            let mut staging = self.staging()?;
            let staging = staging.as_mut().expect("filled by `staging`");
            memory::upload(&self.device, staging, array)
        })
    }

    fn download(&self, array: &DeviceArray) -> Result<ArrayRef> {
        self.device.run("download", || {
            let mut staging = self.staging()?;
            let staging = staging.as_mut().expect("filled by `staging`");
            memory::download(&self.device, staging, array)
        })
    }

    fn launch(
        &self,
        projection: &Projection,
        inputs: &[Option<&DeviceArray>],
    ) -> Result<Vec<DeviceArray>> {
        self.device.run("fused kernel", || {
            launch::launch(&self.device, &self.modules, projection, inputs)
        })
    }

    fn reduce(&self, array: &DeviceArray) -> Result<ColumnStats> {
        self.device.run("column statistics", || {
            reduce::reduce(&self.device, &self.modules, array)
        })
    }

    fn matmul(&self, a: Matrix<'_>, b: Matrix<'_>) -> Result<DeviceArray> {
        self.device.run("matmul", || {
            matmul::matmul(&self.device, &*self.blas()?, a, b)
        })
    }

    fn train(&self, kernel: TrainKernel<'_>) -> Result<Vec<DeviceArray>> {
        self.device.run("training kernel", || {
            train::train(&self.device, &self.modules, || self.blas(), kernel)
        })
    }

    fn synchronize(&self) -> Result<()> {
        self.device.run("synchronize", || {
            self.device.stream.synchronize().map_err(|e| {
                self.device.driver_error(
                    DeviceFailure::Launch,
                    "waiting for queued work (an earlier kernel or copy may have failed)",
                    "cuStreamSynchronize",
                    e,
                )
            })
        })
    }
}

//! A GPU for tests: it computes on the CPU, says it is a CUDA device, counts
//! uploads, launches and training kernels, and fails as told (out of memory
//! above a row count, every launch with a given failure, training kernels
//! with a given failure midway through training, or no training kernels).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::ArrayRef;
use fuseflow::backend::{
    Backend, ColumnStats, CpuBackend, DeviceArray, DeviceInfo, DeviceKind, Matrix, TrainKernel,
};
use fuseflow::ir::Projection;
use fuseflow::{DeviceFailure, Error};

/// A GPU that delegates to the CPU but fails as told.
#[derive(Debug)]
pub struct Faulty {
    pub info: DeviceInfo,
    /// Launches of more rows than this run out of memory.
    pub max_rows: usize,
    /// When set, every launch fails so.
    pub fail: Option<DeviceFailure>,
    pub launches: AtomicUsize,
    pub uploads: AtomicUsize,
    pub launched_rows: Mutex<Vec<usize>>,
    /// `None`: the device has no training kernels. `Some(failure)`: the
    /// first [`TRAIN_KERNELS_BEFORE_FAILING`] run on the CPU, then each fails so.
    pub train_failure: Option<DeviceFailure>,
    pub train_calls: AtomicUsize,
}

/// Training kernels that succeed before a failing device fails, so that a
/// failure midway through training is what the tests see.
pub const TRAIN_KERNELS_BEFORE_FAILING: usize = 3;

impl Faulty {
    /// A software device without f64 (as the fallback tests want it).
    pub fn new(max_rows: usize, fail: Option<DeviceFailure>) -> Arc<Faulty> {
        Arc::new(Faulty::with_info(max_rows, fail, true))
    }

    /// A software device whose training kernels fail with `failure` midway.
    pub fn failing_training(failure: DeviceFailure) -> Arc<Faulty> {
        Arc::new(Faulty {
            train_failure: Some(failure),
            ..Faulty::with_info(usize::MAX, None, true)
        })
    }

    /// A hardware device with f64: one the planner's `auto` may choose.
    pub fn hardware(max_rows: usize, fail: Option<DeviceFailure>) -> Arc<Faulty> {
        Arc::new(Faulty::with_info(max_rows, fail, false))
    }

    fn with_info(max_rows: usize, fail: Option<DeviceFailure>, software: bool) -> Faulty {
        Faulty {
            info: DeviceInfo {
                kind: DeviceKind::Cuda,
                name: "faulty test device".into(),
                software,
                api: "test".into(),
                f64: !software,
                i64: !software,
            },
            max_rows,
            fail,
            launches: AtomicUsize::new(0),
            uploads: AtomicUsize::new(0),
            launched_rows: Mutex::new(Vec::new()),
            train_failure: None,
            train_calls: AtomicUsize::new(0),
        }
    }

    pub fn launches(&self) -> usize {
        self.launches.load(Ordering::SeqCst)
    }

    pub fn uploads(&self) -> usize {
        self.uploads.load(Ordering::SeqCst)
    }
}

impl Backend for Faulty {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn upload(&self, array: &ArrayRef) -> fuseflow::Result<DeviceArray> {
        self.uploads.fetch_add(1, Ordering::SeqCst);
        CpuBackend::shared().upload(array)
    }
    fn download(&self, array: &DeviceArray) -> fuseflow::Result<ArrayRef> {
        CpuBackend::shared().download(array)
    }
    fn launch(
        &self,
        projection: &Projection,
        inputs: &[Option<&DeviceArray>],
    ) -> fuseflow::Result<Vec<DeviceArray>> {
        self.launches.fetch_add(1, Ordering::SeqCst);
        let rows = inputs.iter().flatten().map(|a| a.len()).next().unwrap_or(0);
        if let Some(failure) = self.fail {
            return Err(Error::device("faulty", failure, "injected"));
        }
        if rows > self.max_rows {
            return Err(Error::device(
                "faulty",
                DeviceFailure::OutOfMemory,
                format!("{rows} rows do not fit"),
            ));
        }
        self.launched_rows.lock().unwrap().push(rows);
        CpuBackend::shared().launch(projection, inputs)
    }
    fn reduce(&self, _: &DeviceArray) -> fuseflow::Result<ColumnStats> {
        Err(Error::device(
            "faulty",
            DeviceFailure::Launch,
            "injected reduce failure",
        ))
    }
    fn matmul(&self, a: Matrix<'_>, b: Matrix<'_>) -> fuseflow::Result<DeviceArray> {
        CpuBackend::shared().matmul(a, b)
    }
    fn train(&self, kernel: TrainKernel<'_>) -> fuseflow::Result<Vec<DeviceArray>> {
        let calls = self.train_calls.fetch_add(1, Ordering::SeqCst);
        let (failure, message) = match self.train_failure {
            None => (
                DeviceFailure::Unsupported,
                "no training kernels".to_string(),
            ),
            Some(_) if calls < TRAIN_KERNELS_BEFORE_FAILING => {
                return CpuBackend::shared().train(kernel);
            }
            Some(failure) => (failure, format!("injected failure of `{}`", kernel.name())),
        };
        Err(Error::device("faulty", failure, message))
    }
    fn synchronize(&self) -> fuseflow::Result<()> {
        Ok(())
    }
}

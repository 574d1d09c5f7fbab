//! [`WgpuBackend`] as a [`Backend`]: each verb in the file that implements it.

use arrow_array::ArrayRef;

use super::{WgpuBackend, launch, matmul, memory, reduce, train};
use crate::backend::{Backend, ColumnStats, DeviceArray, DeviceInfo, Matrix, TrainKernel};
use crate::error::Result;
use crate::ir::Projection;

impl Backend for WgpuBackend {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn upload(&self, array: &ArrayRef) -> Result<DeviceArray> {
        memory::upload(self, array)
    }

    fn download(&self, array: &DeviceArray) -> Result<ArrayRef> {
        memory::download(self, array)
    }

    fn launch(
        &self,
        projection: &Projection,
        inputs: &[Option<&DeviceArray>],
    ) -> Result<Vec<DeviceArray>> {
        launch::launch(self, projection, inputs)
    }

    fn reduce(&self, array: &DeviceArray) -> Result<ColumnStats> {
        reduce::reduce(self, array)
    }

    fn matmul(&self, a: Matrix<'_>, b: Matrix<'_>) -> Result<DeviceArray> {
        matmul::matmul(self, a, b)
    }

    fn train(&self, kernel: TrainKernel<'_>) -> Result<Vec<DeviceArray>> {
        train::train(self, kernel)
    }

    fn synchronize(&self) -> Result<()> {
        self.wait()
    }
}

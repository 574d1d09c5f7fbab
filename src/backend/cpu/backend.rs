//! The CPU as a [`Backend`]: device arrays are Arrow arrays in host memory,
//! so upload and download cost nothing.

use std::sync::{Arc, OnceLock};

use arrow_array::{Array, ArrayRef, Float32Array, RecordBatch, new_null_array};
use arrow_schema::Schema;
use rayon::prelude::*;

use super::CpuKernel;
use super::stats::{ColumnStats, column_stats};
use crate::backend::{Backend, DeviceArray, DeviceInfo, DeviceKind, Matrix, TrainKernel};
use crate::error::{Error, Result};
use crate::ir::{DType, Projection};

/// The CPU backend: fused block kernels and reductions with rayon.
#[derive(Debug)]
pub struct CpuBackend {
    info: DeviceInfo,
}

impl CpuBackend {
    /// The process-wide CPU backend.
    pub fn shared() -> Arc<CpuBackend> {
        static CPU: OnceLock<Arc<CpuBackend>> = OnceLock::new();
        Arc::clone(CPU.get_or_init(|| {
            Arc::new(CpuBackend {
                info: DeviceInfo {
                    kind: DeviceKind::Cpu,
                    name: format!("{} threads", rayon::current_num_threads()),
                    software: false,
                    api: "rayon".into(),
                    f64: true,
                    i64: true,
                },
            })
        }))
    }
}

/// The Arrow array behind a CPU device array.
pub(super) fn host(array: &DeviceArray) -> Result<&ArrayRef> {
    array.storage::<ArrayRef>().ok_or_else(|| {
        Error::Internal("a device array from another backend was given to the CPU".into())
    })
}

impl Backend for CpuBackend {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn upload(&self, array: &ArrayRef) -> Result<DeviceArray> {
        let dtype = DType::from_arrow(array.data_type()).ok_or_else(|| {
            Error::Internal(format!("upload of unsupported type {}", array.data_type()))
        })?;
        Ok(DeviceArray::new(
            dtype,
            array.len(),
            array.null_count(),
            Arc::new(Arc::clone(array)),
        ))
    }

    fn download(&self, array: &DeviceArray) -> Result<ArrayRef> {
        host(array).cloned()
    }

    fn launch(
        &self,
        projection: &Projection,
        inputs: &[Option<&DeviceArray>],
    ) -> Result<Vec<DeviceArray>> {
        let schema = projection.input_schema();
        let rows = inputs.iter().flatten().map(|a| a.len()).next().unwrap_or(0);
        let columns = schema
            .fields()
            .iter()
            .zip(inputs)
            .map(|(field, input)| match input {
                Some(a) => host(a).cloned(),
                None => Ok(new_null_array(field.data_type(), rows)),
            })
            .collect::<Result<Vec<_>>>()?;
        // Columns the projection does not read are stood in for by nulls, so
        // the batch's schema must allow nulls wherever the input's does not.
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let out = CpuKernel::compile(projection.clone()).evaluate(&batch)?;
        out.columns().iter().map(|c| self.upload(c)).collect()
    }

    fn reduce(&self, array: &DeviceArray) -> Result<ColumnStats> {
        let stats = column_stats(&[("x".into(), vec![host(array)?.clone()])])?;
        Ok(stats[0])
    }

    fn matmul(&self, a: Matrix<'_>, b: Matrix<'_>) -> Result<DeviceArray> {
        let (m, k, n) = Matrix::product_shape(&a, &b)?;
        let values = |x: Matrix<'_>| -> Result<Float32Array> {
            host(x.data)?
                .as_any()
                .downcast_ref::<Float32Array>()
                .cloned()
                .ok_or_else(|| Error::Internal("a matmul operand is not f32".into()))
        };
        let (av, bv) = (values(a)?, values(b)?);
        let (av, bv) = (av.values(), bv.values());
        // Element (r, c) of an operand as used in the product.
        let at = |x: &Matrix<'_>, v: &[f32], r: usize, c: usize| {
            if x.transposed {
                v[r * x.rows + c]
            } else {
                v[c * x.rows + r]
            }
        };
        let mut out = vec![0f32; m * n];
        out.par_chunks_mut(m.max(1))
            .enumerate()
            .for_each(|(c, column)| {
                for (r, o) in column.iter_mut().enumerate() {
                    // f64 accumulation in a fixed order: the reference other backends meet.
                    let dot: f64 = (0..k)
                        .map(|i| f64::from(at(&a, av, r, i)) * f64::from(at(&b, bv, i, c)))
                        .sum();
                    *o = dot as f32;
                }
            });
        self.upload(&(Arc::new(Float32Array::from(out)) as ArrayRef))
    }

    fn train(&self, kernel: TrainKernel<'_>) -> Result<Vec<DeviceArray>> {
        super::train::train(kernel)
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

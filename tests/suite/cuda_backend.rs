//! The CUDA backend against the CPU reference, on a real GPU.
//!
//! Every test starts with [`devices::cuda`]: without a device (or driver, or
//! NVRTC) it prints `skipping CUDA tests: <reason>` and passes, unless
//! `FUSEFLOW_REQUIRE_CUDA=1`, where it fails.
//!
//! Inputs are seeded random columns with ~10% nulls and NaN / inf values,
//! sliced at offsets that start validity bitmaps mid-byte, of lengths that do
//! not divide a warp (32), a block (256) or a statistics chunk (8192).
//!
//! Tolerances: `+ - * /`, `sqrt`, comparisons, casts, `min`/`max`/`clip` and
//! every null rule must match the CPU bit for bit (kernels are compiled with
//! `--fmad=false`); `exp`, `log`, `log1p`, `sigmoid`, `pow` go through
//! different math libraries and must satisfy `|x-y| <= max(R*|x+y|, A)` with
//! `R = A = 4e-6` (f32) or `R = A = 1e-13` (f64). Statistics and matrix
//! products are checked in `backend_conformance.rs`, on every backend.

use crate::common;
use crate::common::projections;

use std::sync::Arc;

use crate::common::*;
use arrow_array::{Array, ArrayRef};
use fuseflow::backend::{Backend, CpuBackend, CudaBackend, DeviceArray, DeviceKind};
use fuseflow::{DeviceFailure, Error};

const LENGTHS: [usize; 8] = [0, 1, 31, 33, 257, 8191, 8193, 100_003];

/// One random column per input of `projections::schema()` (the string
/// column empty of meaning, all null), each sliced at its own offset.
fn inputs(rng: &mut Rng, n: usize) -> Vec<ArrayRef> {
    let extra = 13;
    let slice = |a: ArrayRef, offset: usize| a.slice(offset, n);
    vec![
        slice(f32_array(&gen_f32(rng, n + extra)), 3),
        slice(f64_array(&gen_f64(rng, n + extra)), 5),
        slice(i32_array(&gen_i32(rng, n + extra)), 7),
        slice(i64_array(&gen_i64(rng, n + extra)), 1),
        slice(bool_array(&gen_bool(rng, n + extra)), 11),
        slice(str_array(&gen_str(rng, n + extra)), 2),
    ]
}

/// Assert two Arrow arrays agree: nulls exactly, values exactly or within
/// the transcendental tolerance when `approx`.
fn assert_same(actual: &ArrayRef, expected: &ArrayRef, approx: bool, what: &str) {
    assert_eq!(actual.data_type(), expected.data_type(), "{what}: type");
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    assert_eq!(
        actual.null_count(),
        expected.null_count(),
        "{what}: null count"
    );
    let check = |a: Vec<Option<f64>>, e: Vec<Option<f64>>, rel: f64| {
        for (i, (x, y)) in a.iter().zip(&e).enumerate() {
            let ok = match (x, y) {
                (Some(x), Some(y)) if rel == 0.0 => {
                    x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
                }
                (Some(x), Some(y)) => close(*x, *y, rel, rel),
                (None, None) => true,
                _ => false,
            };
            assert!(ok, "{what}: row {i}: CUDA {x:?}, CPU {y:?}");
        }
    };
    let widen32 = |v: Vec<Option<f32>>| v.into_iter().map(|x| x.map(f64::from)).collect::<Vec<_>>();
    match actual.data_type() {
        arrow_schema::DataType::Float32 => check(
            widen32(f32_values(actual.as_ref())),
            widen32(f32_values(expected.as_ref())),
            if approx { 4e-6 } else { 0.0 },
        ),
        arrow_schema::DataType::Float64 => check(
            f64_values(actual.as_ref()),
            f64_values(expected.as_ref()),
            if approx { 1e-13 } else { 0.0 },
        ),
        arrow_schema::DataType::Int32 => {
            assert_eq!(
                i32_values(actual.as_ref()),
                i32_values(expected.as_ref()),
                "{what}"
            )
        }
        arrow_schema::DataType::Int64 => {
            assert_eq!(
                i64_values(actual.as_ref()),
                i64_values(expected.as_ref()),
                "{what}"
            )
        }
        arrow_schema::DataType::Boolean => {
            assert_eq!(
                bool_values(actual.as_ref()),
                bool_values(expected.as_ref()),
                "{what}"
            )
        }
        other => panic!("{what}: unexpected type {other}"),
    }
}

#[test]
fn info_describes_the_gpu() {
    let Some(cuda) = devices::cuda() else { return };
    let info = cuda.info();
    assert_eq!(info.kind, DeviceKind::Cuda);
    assert!(!info.software && info.f64 && info.i64);
    assert!(
        info.api.starts_with("CUDA ") && info.api.contains(", sm_"),
        "{}",
        info.api
    );
    assert!(Arc::ptr_eq(&cuda, &CudaBackend::shared().unwrap()));
}

#[test]
fn upload_download_round_trips() {
    let Some(cuda) = devices::cuda() else { return };
    let mut rng = Rng::new(1);
    for n in LENGTHS {
        for (c, array) in inputs(&mut rng, n).into_iter().enumerate().take(5) {
            let device = cuda.upload(&array).unwrap();
            assert_eq!((device.len(), device.null_count()), (n, array.null_count()));
            let back = cuda.download(&device).unwrap();
            assert_same(&back, &array, false, &format!("column {c}, {n} rows"));
        }
    }
    // Larger than two staging chunks, so the double buffering cycles.
    let big: ArrayRef = Arc::new(arrow_array::Float64Array::from_iter_values(
        (0..5_000_003).map(|i| i as f64 * 0.5),
    ));
    let back = cuda.download(&cuda.upload(&big).unwrap()).unwrap();
    assert_same(&back, &big, false, "5M f64");
}

#[test]
fn launch_matches_the_cpu() {
    let Some(cuda) = devices::cuda() else { return };
    let cpu = CpuBackend::shared();
    let mut rng = Rng::new(2);
    for n in LENGTHS {
        let columns = inputs(&mut rng, n);
        for (name, projection) in projections::projections() {
            let on = |backend: &dyn Backend| -> Vec<ArrayRef> {
                let arrays: Vec<DeviceArray> = columns
                    .iter()
                    .take(5)
                    .map(|a| backend.upload(a).unwrap())
                    .collect();
                let given: Vec<Option<&DeviceArray>> = arrays
                    .iter()
                    .map(Some)
                    .chain(std::iter::once(None))
                    .collect();
                let out = backend.launch(&projection, &given).unwrap();
                out.iter()
                    .map(|a| {
                        let array = backend.download(a).unwrap();
                        assert_eq!(a.null_count(), array.null_count());
                        array
                    })
                    .collect()
            };
            let (gpu, reference) = (on(cuda.as_ref()), on(cpu.as_ref()));
            for ((output, _), (g, r)) in projection.outputs().iter().zip(gpu.iter().zip(&reference))
            {
                let approx = ["exp", "log", "sigmoid", "pow", "score"]
                    .iter()
                    .any(|f| output.contains(f));
                assert_same(g, r, approx, &format!("{name}.{output}, {n} rows"));
            }
        }
    }
}

#[test]
fn misuse_gives_typed_errors() {
    let Some(cuda) = devices::cuda() else { return };
    let strings = str_array_of(&[Some("a"), None]);
    let err = expect_err(cuda.upload(&strings), "string upload");
    common::assert_device_failure(&err, DeviceFailure::Unsupported);
    let on_cpu = CpuBackend::shared()
        .upload(&f32_array(&[Some(1.0)]))
        .unwrap();
    let err = expect_err(cuda.download(&on_cpu), "foreign array");
    assert!(matches!(err, Error::Internal(_)), "{err}");
    cuda.synchronize().unwrap();
}

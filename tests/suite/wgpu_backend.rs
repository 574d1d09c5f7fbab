//! What is particular to the wgpu backend: the adapter, the bit-word layout of
//! bool values and validity (slices at bit offsets, awkward lengths), columns
//! split across launches above the binding limit, typed errors instead of
//! wgpu panics, repeatable reductions, and the generated WGSL as a snapshot.
//! (The verbs' results against the CPU are the cross-backend conformance
//! suite's business.)
//!
//! Without an adapter every test that needs one prints `skipping wgpu tests:
//! <reason>` and passes, unless `FUSEFLOW_REQUIRE_WGPU=1` (as in CI), which
//! turns the skip into a failure. The snapshot test runs everywhere.
//!
//! Tolerance for f32 results against the CPU backend:
//! `|x - y| <= max(1e-5 * |x + y|, 1e-6)`; NaN equals NaN; bools, ints and
//! validity exactly. Statistics: `1e-5` relative (f32 partials on the device).

use crate::common;

use std::sync::Arc;

use crate::common::{
    Rng, bool_array, devices, f32_array, gen_bool, gen_f32, gen_i32, i32_array, snapshot,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type};
use arrow_array::{Array, ArrayRef, Float32Array, Float64Array, Int32Array};
use arrow_schema::{DataType, Field, Schema};
use fuseflow::DeviceFailure;
use fuseflow::backend::wgpu::{WgpuBackend, fused_kernel_source};
use fuseflow::backend::{Backend, CpuBackend, DeviceKind, Matrix};
use fuseflow::ir::{DType, Expr, Projection, col, if_else, lit};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float32, true),
        Field::new("i", DataType::Int32, true),
        Field::new("flag", DataType::Boolean, true),
    ]))
}

fn projection(exprs: &[(&str, Expr)]) -> Projection {
    let exprs: Vec<_> = exprs
        .iter()
        .map(|(n, e)| (n.to_string(), e.clone()))
        .collect();
    Projection::try_new(schema(), &exprs).unwrap()
}

/// Outputs of every dtype, with and without validity, bool ones packed.
fn mixed() -> Projection {
    projection(&[
        ("y", (col("x") * lit(2.0) + lit(1.0)).sqrt()),
        ("pos", col("x").gt(lit(0.0))),
        ("missing", col("x").is_null()),
        ("k", col("i").clip(lit(-5), lit(5)) + lit(1)),
        ("either", col("flag").or(col("i").lt(lit(0)))),
        (
            "pick",
            if_else(col("flag"), col("x"), lit(-1.0)).fill_null(lit(0.5)),
        ),
    ])
}

fn columns(rng: &mut Rng, n: usize) -> Vec<ArrayRef> {
    vec![
        f32_array(&gen_f32(rng, n)),
        i32_array(&gen_i32(rng, n)),
        bool_array(&gen_bool(rng, n)),
    ]
}

fn f32_close(x: f32, y: f32) -> bool {
    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= (1e-5 * (x + y).abs()).max(1e-6)
}

/// Equal validity, and equal values where valid (f32 within the tolerance).
fn assert_same(what: &str, got: &ArrayRef, want: &ArrayRef) {
    assert_eq!(got.data_type(), want.data_type(), "{what}");
    assert_eq!(got.len(), want.len(), "{what}");
    assert_eq!(got.null_count(), want.null_count(), "{what}: null count");
    for r in 0..want.len() {
        assert_eq!(
            got.is_valid(r),
            want.is_valid(r),
            "{what}: validity of row {r}"
        );
        if want.is_null(r) {
            continue;
        }
        let same = match want.data_type() {
            DataType::Float32 => f32_close(
                got.as_primitive::<Float32Type>().value(r),
                want.as_primitive::<Float32Type>().value(r),
            ),
            DataType::Int32 => {
                got.as_primitive::<Int32Type>().value(r)
                    == want.as_primitive::<Int32Type>().value(r)
            }
            _ => got.as_boolean().value(r) == want.as_boolean().value(r),
        };
        assert!(same, "{what}: row {r}: {got:?} vs {want:?}");
    }
}

/// `projection` over `inputs` on `gpu` and on the CPU, compared output by output.
fn check_launch(gpu: &WgpuBackend, projection: &Projection, inputs: &[ArrayRef], what: &str) {
    let cpu = CpuBackend::shared();
    let run = |backend: &dyn Backend| -> Vec<ArrayRef> {
        let device: Vec<_> = inputs.iter().map(|a| backend.upload(a).unwrap()).collect();
        let refs: Vec<_> = device.iter().map(Some).collect();
        let out = backend.launch(projection, &refs).unwrap();
        out.iter()
            .map(|o| {
                let array = backend.download(o).unwrap();
                assert_eq!(
                    o.null_count(),
                    array.null_count(),
                    "{what}: device null count"
                );
                array
            })
            .collect()
    };
    let (got, want) = (run(gpu), run(cpu.as_ref()));
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_same(&format!("{what}, output {k}"), g, w);
    }
}

#[test]
fn adapter_info_describes_a_wgpu_device() {
    let Some(gpu) = devices::wgpu() else { return };
    let info = gpu.info();
    eprintln!("wgpu tests run on {info}");
    assert_eq!(info.kind, DeviceKind::Wgpu);
    assert!(!info.name.is_empty());
    assert!(
        ["Vulkan", "Metal", "DX12"].contains(&info.api.as_str()),
        "{info}"
    );
    assert!(!info.f64 && !info.i64);
    assert!(!info.supports(DType::Float64) && info.supports(DType::Float32));
    assert!(info.to_string().starts_with("wgpu: "), "{info}");
    // The same device on every call.
    assert!(Arc::ptr_eq(&gpu, &WgpuBackend::shared().unwrap()));
}

#[test]
fn sliced_arrays_round_trip_at_bit_offsets() {
    let Some(gpu) = devices::wgpu() else { return };
    let mut rng = Rng::new(7);
    let whole = columns(&mut rng, 400);
    for offset in [0, 1, 3, 8, 13, 32, 64, 101] {
        for len in [0, 1, 31, 33, 257] {
            for array in &whole {
                let slice = array.slice(offset, len);
                let device = gpu.upload(&slice).unwrap();
                assert_eq!(device.len(), len);
                assert_eq!(device.null_count(), slice.null_count());
                let back = gpu.download(&device).unwrap();
                let what = format!("{} at offset {offset}, length {len}", array.data_type());
                assert_eq!(back.as_ref(), slice.as_ref(), "{what}");
                assert_eq!(back.null_count(), slice.null_count(), "{what}");
            }
        }
    }
}

#[test]
fn unsupported_types_are_refused_with_a_typed_error() {
    let Some(gpu) = devices::wgpu() else { return };
    let f64s: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0]));
    let err = gpu.upload(&f64s).unwrap_err();
    common::assert_device_failure(&err, DeviceFailure::Unsupported);
    let p = projection(&[("z", col("x").cast(DType::Float64))]);
    let x = gpu.upload(&f32_array(&[Some(1.0)])).unwrap();
    let err = gpu.launch(&p, &[Some(&x), None, None]).unwrap_err();
    common::assert_device_failure(&err, DeviceFailure::Unsupported);
}

#[test]
fn validity_and_bools_pack_at_awkward_lengths() {
    let Some(gpu) = devices::wgpu() else { return };
    let mut rng = Rng::new(11);
    let p = mixed();
    for len in [0, 1, 31, 33, 257, 100_003] {
        let inputs = columns(&mut rng, len);
        check_launch(&gpu, &p, &inputs, &format!("{len} rows"));
        // The same rows sliced mid-byte.
        let wider = columns(&mut rng, len + 5);
        let sliced: Vec<_> = wider.iter().map(|a| a.slice(5, len)).collect();
        check_launch(&gpu, &p, &sliced, &format!("{len} rows at offset 5"));
    }
}

#[test]
fn null_free_inputs_give_outputs_without_validity() {
    let Some(gpu) = devices::wgpu() else { return };
    let p = projection(&[("y", col("x") * lit(2.0)), ("pos", col("x").gt(lit(0.0)))]);
    let x: ArrayRef = Arc::new(Float32Array::from(vec![1.5f32; 1000]));
    let device = gpu.upload(&x).unwrap();
    assert_eq!(device.null_count(), 0);
    for out in gpu.launch(&p, &[Some(&device), None, None]).unwrap() {
        assert_eq!(out.null_count(), 0);
        assert!(gpu.download(&out).unwrap().nulls().is_none());
    }
}

#[test]
fn columns_above_the_binding_limit_run_in_pieces() {
    let Some(gpu) = devices::wgpu() else { return };
    // 16 KiB bindings: pieces of 4096 rows, so 100 003 rows take 25 launches.
    let small = WgpuBackend::open().unwrap().with_binding_limit(16 << 10);
    let mut rng = Rng::new(13);
    let inputs = columns(&mut rng, 100_003);
    check_launch(&small, &mixed(), &inputs, "split launch");
    for input in &inputs[..2] {
        let whole = gpu.reduce(&gpu.upload(input).unwrap()).unwrap();
        let split = small.reduce(&small.upload(input).unwrap()).unwrap();
        assert_eq!(
            format!("{whole:?}"),
            format!("{split:?}"),
            "{}",
            input.data_type()
        );
    }
}

#[test]
fn launches_wider_than_65535_workgroups_continue_along_y() {
    let Some(gpu) = devices::wgpu() else { return };
    // 256 rows per workgroup: 65 537 workgroups, one more than a grid row holds.
    let rows = 65_536 * 256 + 300;
    let i: ArrayRef = Arc::new(Int32Array::from_iter_values(0..rows as i32));
    let p = projection(&[
        ("k", col("i") + lit(1)),
        ("big", col("i").gt(lit(16_777_000))),
    ]);
    let device = gpu.upload(&i).unwrap();
    let out = gpu.launch(&p, &[None, Some(&device), None]).unwrap();
    let k = gpu.download(&out[0]).unwrap();
    let big = gpu.download(&out[1]).unwrap();
    let (k, big) = (k.as_primitive::<Int32Type>(), big.as_boolean());
    for r in 0..rows {
        assert_eq!(k.value(r), r as i32 + 1, "row {r}");
        assert_eq!(big.value(r), r > 16_777_000, "row {r}");
    }
}

#[test]
fn device_errors_are_typed_not_panics() {
    let Some(gpu) = devices::wgpu() else { return };
    let err = gpu
        .compile_wgsl("@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }")
        .unwrap_err();
    common::assert_device_failure(&err, DeviceFailure::Compile);
    // Valid WGSL that wgpu refuses (beyond the device's invocations per
    // workgroup): caught by the error scopes around pipeline creation.
    let err = gpu
        .compile_wgsl("@compute @workgroup_size(1024, 1024) fn main() {}")
        .unwrap_err();
    common::assert_device_failure(&err, DeviceFailure::Compile);
    // A product of 100 000 x 100 000 f32 (40 GB) cannot be allocated.
    let column: ArrayRef = Arc::new(Float32Array::from(vec![1.0f32; 100_000]));
    let a = gpu.upload(&column).unwrap();
    let err = gpu
        .matmul(Matrix::new(&a, 100_000, 1), Matrix::new(&a, 1, 100_000))
        .unwrap_err();
    common::assert_device_failure(&err, DeviceFailure::OutOfMemory);
    // The device still works afterwards.
    assert_eq!(gpu.download(&a).unwrap().len(), 100_000);
}

#[test]
fn generated_wgsl_matches_the_snapshot() {
    let p = projection(&[
        ("score", (col("x") * lit(0.5) - lit(1.0)).sigmoid()),
        ("keep", col("x").gt(lit(0.0)).and(col("flag"))),
        ("k", col("i").fill_null(lit(0)) + lit(1)),
    ]);
    let source = fused_kernel_source(&p, &[true, true, true]).unwrap();
    let prelude = include_str!("../../kernels/wgsl/prelude.wgsl");
    let kernel = source
        .strip_prefix(prelude)
        .expect("the kernel starts with the prelude");
    snapshot("wgpu_fused_kernel.wgsl", kernel);
}

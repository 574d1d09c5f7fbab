//! CUDA kernels compile, with no GPU: every generated fused kernel (for
//! projections covering every operator, dtype, cast and null rule, with
//! inputs all nullable, all null-free, and mixed) and every hand-written
//! `.cu` file go through NVRTC for `compute_90`.
//!
//! Needs only NVRTC (`pip install nvidia-cuda-nvrtc==13.0.88`, with
//! `site-packages/nvidia/cu13/lib` on `LD_LIBRARY_PATH`). Without it the
//! tests print a notice and pass, unless `FUSEFLOW_REQUIRE_NVRTC=1`.
//!
//! Also a snapshot of one generated kernel's text in
//! `tests/snapshots/cuda_fused_prep.cu`; `UPDATE_SNAPSHOTS=1` rewrites it.

use crate::common;
use crate::common::projections;

use fuseflow::DeviceFailure;
use fuseflow::backend::cuda::{
    REDUCE_SOURCE, TRAIN_ENTRIES, TRAIN_SOURCE, codegen::FUSED_ENTRY, compile_ptx, fused_kernel,
    nvrtc_present, reduce_entry,
};
use fuseflow::ir::{DType, col, lit};

const ARCH: &str = "compute_90";

/// Whether NVRTC can be used; panics without it under `FUSEFLOW_REQUIRE_NVRTC=1`.
fn nvrtc_or_skip() -> bool {
    match nvrtc_present("test") {
        Ok(()) => true,
        Err(e) if std::env::var("FUSEFLOW_REQUIRE_NVRTC").as_deref() == Ok("1") => {
            panic!("FUSEFLOW_REQUIRE_NVRTC=1 but NVRTC is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipping NVRTC compile tests: {e}");
            false
        }
    }
}

/// Nullability patterns: all nullable, none, alternating.
fn patterns(width: usize) -> [Vec<bool>; 3] {
    [
        vec![true; width],
        vec![false; width],
        (0..width).map(|c| c % 2 == 0).collect(),
    ]
}

#[test]
fn every_generated_kernel_compiles() {
    if !nvrtc_or_skip() {
        return;
    }
    for (name, projection) in projections::projections() {
        let width = projection.input_schema().fields().len();
        for nullable in patterns(width) {
            let kernel = fused_kernel(&projection, &nullable, "test").unwrap();
            let ptx = compile_ptx(&kernel.full_source(), ARCH, FUSED_ENTRY)
                .unwrap_or_else(|e| panic!("projection '{name}', nulls {nullable:?}: {e}"));
            assert!(
                ptx.contains(&format!(".entry {FUSED_ENTRY}")),
                "projection '{name}': no entry point in the PTX"
            );
        }
    }
}

#[test]
fn multiply_add_is_not_contracted() {
    if !nvrtc_or_skip() {
        return;
    }
    let schema = projections::schema();
    let exprs = [
        ("f".to_string(), col("x") * col("x") + lit(1.5)),
        ("g".to_string(), col("d") * col("d") - col("d")),
    ];
    let projection = fuseflow::ir::Projection::try_new(schema, &exprs).unwrap();
    let kernel = fused_kernel(&projection, &[false; 6], "test").unwrap();
    let ptx = compile_ptx(&kernel.full_source(), ARCH, FUSED_ENTRY).unwrap();
    // `--fmad=false`: products keep their own rounding (`mul.rn`), as on the CPU.
    assert!(!ptx.contains("fma."), "{ptx}");
    assert!(
        ptx.contains("mul.rn.f32") && ptx.contains("mul.rn.f64"),
        "{ptx}"
    );
}

#[test]
fn hand_written_kernels_compile() {
    if !nvrtc_or_skip() {
        return;
    }
    let ptx = compile_ptx(REDUCE_SOURCE, ARCH, "reduce.cu").unwrap();
    for dtype in [DType::Float32, DType::Float64, DType::Int32, DType::Int64] {
        let entry = reduce_entry(dtype).unwrap();
        assert!(ptx.contains(&format!(".entry {entry}")), "{entry} missing");
    }
}

#[test]
fn compile_errors_name_the_kernel_and_show_the_log() {
    if !nvrtc_or_skip() {
        return;
    }
    let err = compile_ptx(
        "extern \"C\" __global__ void k() { undeclared(); }",
        ARCH,
        "broken",
    )
    .unwrap_err();
    common::assert_device_failure(&err, DeviceFailure::Compile);
    let text = err.to_string();
    assert!(
        text.contains("`broken`") && text.contains("undeclared"),
        "{text}"
    );
}

#[test]
fn strings_are_refused_with_advice() {
    let schema = projections::schema();
    let projection = fuseflow::ir::Projection::try_new(schema, &[("t".into(), col("s"))]).unwrap();
    let err = fused_kernel(&projection, &[true; 6], "cuda:0").unwrap_err();
    common::assert_device_failure(&err, DeviceFailure::Unsupported);
    assert!(err.to_string().contains("cpu"), "{err}");
}

#[test]
fn null_free_inputs_give_a_kernel_without_null_work() {
    let schema = projections::schema();
    let projection =
        fuseflow::ir::Projection::try_new(schema, &[("y".into(), col("x") * lit(2.0))]).unwrap();
    let kernel = fused_kernel(&projection, &[false; 6], "test").unwrap();
    assert!(!kernel.source.contains("valid"), "{}", kernel.source);
    assert!(kernel.outputs.iter().all(|o| !o.nullable));
}

#[test]
fn fused_kernel_source_snapshot() {
    let (_, projection) = projections::projections()
        .into_iter()
        .find(|(name, _)| *name == "prep")
        .unwrap();
    let mut nullable = vec![false; 6];
    nullable[0] = true;
    let kernel = fused_kernel(&projection, &nullable, "test").unwrap();
    common::snapshot("cuda_fused_prep.cu", &kernel.source);
}

#[test]
fn training_kernels_compile() {
    if !nvrtc_or_skip() {
        return;
    }
    let ptx = compile_ptx(TRAIN_SOURCE, ARCH, "train.cu").unwrap_or_else(|e| panic!("{e}"));
    for entry in TRAIN_ENTRIES {
        assert!(
            ptx.contains(&format!(".entry {entry}")),
            "no entry point {entry} in the PTX of train.cu"
        );
    }
}

//! The backend conformance suite: written once, run against every backend
//! this machine has (the CPU always; wgpu and CUDA when a device opens, see
//! `common/devices.rs`).
//!
//! Every backend must agree with the CPU block kernel (itself checked against
//! an independent reference in `cpu_kernel.rs`) on seeded random data with
//! nulls, NaN, infinities and signed zeros, at lengths that do not divide a
//! workgroup or warp, and on arrays sliced at odd offsets. Validity and
//! integer and bool values must match exactly; floats within the tolerance
//! [`Tolerance::of`] states for each device kind. The training kernels
//! (`Backend::train`) are checked the same way against the CPU's reference
//! kernels, at row counts around the 16-row tiles and 4096-row blocks, with
//! the tolerance stated beside each.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, Float32Array, Int32Array, RecordBatch};
use arrow_schema::DataType;

use crate::common::devices::backends;
use crate::common::*;
use fuseflow::DeviceFailure;
use fuseflow::backend::cpu::CpuKernel;
use fuseflow::backend::cpu::stats::column_stats;
use fuseflow::backend::train::{Activation, AdamStep, Loss};
use fuseflow::backend::{Backend, DeviceArray, DeviceKind, Matrix, TrainKernel};
use fuseflow::ir::{BinaryOp, DType, Expr, Projection, UnaryOp, col, if_else, lit};

/// Lengths around warp (32) and workgroup (256) sizes, and one large odd one.
const LENGTHS: [usize; 7] = [0, 1, 31, 33, 255, 257, 10_007];

/// How far a backend's float results may be from the CPU's.
#[derive(Clone, Copy, Debug)]
struct Tolerance {
    rel: f64,
    abs: f64,
}

impl Tolerance {
    /// The CPU is the reference: exact. CUDA compiles with `--fmad=false`, so
    /// `+ - * /` round as on the CPU; its `expf`/`logf`/`powf` are within 2 ulp,
    /// as is the CPU's `exp`, hence 4 ulp (5e-7) apart at most; we allow 2e-6.
    /// WGSL's builtins have looser Vulkan precision (exp: 3 + 2|x| ulp; pow as
    /// exp2(y log2 x)), hence 2e-5 relative plus 1e-6 absolute for results
    /// near zero, and 1e-4 for `pow`. CUDA's `powf` loses relative precision
    /// in the subnormal range, so results below f32's smallest normal
    /// (1.2e-38) need only agree absolutely.
    fn of(kind: DeviceKind, dtype: DType, pow: bool) -> Tolerance {
        let (rel, abs) = match (kind, dtype) {
            (DeviceKind::Cpu, _) => (0.0, 0.0),
            (DeviceKind::Cuda, DType::Float64) => (1e-13, 0.0),
            (DeviceKind::Cuda, _) => (2e-6, f64::from(f32::MIN_POSITIVE)),
            (DeviceKind::Wgpu, _) if pow => (1e-4, 1e-6),
            (DeviceKind::Wgpu, _) => (2e-5, 1e-6),
        };
        Tolerance { rel, abs }
    }

    fn holds(self, got: f64, want: f64) -> bool {
        if got.is_nan() || want.is_nan() {
            return got.is_nan() && want.is_nan();
        }
        if got.is_infinite() || want.is_infinite() {
            return got == want;
        }
        (got - want).abs() <= self.abs + self.rel * want.abs()
    }
}

/// A seeded batch: f32 `f`, `g`; f64 `x`; i32 `i`, `j`; i64 `k`; bool `p`, `q`;
/// each column sliced at its own offset when `sliced`.
fn dataset(seed: u64, n: usize, sliced: bool) -> RecordBatch {
    let mut rng = Rng::new(seed);
    let extra = if sliced { 11 } else { 0 };
    let total = n + extra;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("f", f32_array(&gen_f32(&mut rng, total))),
        ("g", f32_array(&gen_f32(&mut rng, total))),
        ("x", f64_array(&gen_f64(&mut rng, total))),
        ("i", i32_array(&gen_i32(&mut rng, total))),
        ("j", i32_array(&gen_i32(&mut rng, total))),
        ("k", i64_array(&gen_i64(&mut rng, total))),
        ("p", bool_array(&gen_bool(&mut rng, total))),
        ("q", bool_array(&gen_bool(&mut rng, total))),
    ];
    let columns = columns
        .into_iter()
        .enumerate()
        .map(|(c, (name, array))| {
            let array = if sliced {
                array.slice(1 + c % 9, n)
            } else {
                array
            };
            (name, array)
        })
        .collect();
    batch(columns)
}

/// Run a projection on `backend`: upload the batch's columns, launch one
/// fused kernel (or, unless `fused`, one kernel per operator), download the
/// outputs.
fn launch(
    backend: &dyn Backend,
    batch: &RecordBatch,
    exprs: &[(String, Expr)],
    fused: bool,
) -> fuseflow::Result<Vec<ArrayRef>> {
    let projection = Projection::try_new(batch.schema(), exprs).expect("type-checks");
    let supported =
        |a: &ArrayRef| DType::from_arrow(a.data_type()).is_some_and(|d| backend.info().supports(d));
    let inputs = batch
        .columns()
        .iter()
        .map(|a| supported(a).then(|| backend.upload(a)).transpose())
        .collect::<fuseflow::Result<Vec<_>>>()?;
    let outputs = if fused {
        let refs: Vec<_> = inputs.iter().map(Option::as_ref).collect();
        backend.launch(&projection, &refs)?
    } else {
        backend.launch_op_by_op(&projection.op_by_op(), inputs)?
    };
    outputs.iter().map(|o| backend.download(o)).collect()
}

/// The CPU block kernel's result.
fn reference(batch: &RecordBatch, exprs: &[(String, Expr)]) -> Vec<ArrayRef> {
    let projection = Projection::try_new(batch.schema(), exprs).expect("type-checks");
    CpuKernel::compile(projection)
        .evaluate(batch)
        .expect("the CPU evaluates")
        .columns()
        .to_vec()
}

/// Assert two arrays agree: same type, length, validity; values within `tol`.
fn assert_agrees(got: &ArrayRef, want: &ArrayRef, tol: Tolerance, what: &str) {
    assert_eq!(got.data_type(), want.data_type(), "{what}: type");
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(got.null_count(), want.null_count(), "{what}: null count");
    let mut bad = Vec::new();
    for row in 0..want.len() {
        if got.is_valid(row) != want.is_valid(row) {
            bad.push(format!(
                "row {row}: validity {} vs {}",
                got.is_valid(row),
                want.is_valid(row)
            ));
            continue;
        }
        if !want.is_valid(row) {
            continue;
        }
        let agrees = match want.data_type() {
            DataType::Float32 => tol.holds(
                f64::from(got.as_primitive::<Float32Type>().value(row)),
                f64::from(want.as_primitive::<Float32Type>().value(row)),
            ),
            DataType::Float64 => tol.holds(
                got.as_primitive::<Float64Type>().value(row),
                want.as_primitive::<Float64Type>().value(row),
            ),
            _ => got.slice(row, 1) == want.slice(row, 1),
        };
        if !agrees {
            bad.push(format!(
                "row {row}: got {:?}, want {:?}",
                got.slice(row, 1),
                want.slice(row, 1)
            ));
        }
        if bad.len() == 5 {
            break;
        }
    }
    assert!(bad.is_empty(), "{what}:\n  {}", bad.join("\n  "));
}

/// Check `exprs` on every backend, every length, plain and sliced, fused and
/// op by op (on the CPU the two must agree bit for bit).
fn conform(seed: u64, exprs: Vec<Expr>) {
    let exprs: Vec<(String, Expr)> = exprs
        .into_iter()
        .enumerate()
        .map(|(i, e)| (format!("o{i}"), e))
        .collect();
    for backend in backends() {
        let info = backend.info().clone();
        for (n, sliced, fused) in LENGTHS
            .into_iter()
            .flat_map(|n| [(n, false, true), (n, true, true), (n, true, false)])
        {
            let batch = dataset(seed ^ n as u64, n, sliced);
            let want = reference(&batch, &exprs);
            let what = |name: &str, e: &Expr| {
                format!("{info}, {n} rows, sliced {sliced}, fused {fused}: {name} = `{e}`")
            };
            // Whether the device has every type the projection computes with.
            let projection = Projection::try_new(batch.schema(), &exprs).expect("type-checks");
            let live = projection.live_nodes();
            let arena = projection.arena();
            let computes = arena
                .ids()
                .filter(|id| live[id.index()])
                .all(|id| info.supports(arena.dtype(id)));
            match launch(backend.as_ref(), &batch, &exprs, fused) {
                Ok(got) => {
                    for ((name, e), (g, w)) in exprs.iter().zip(got.iter().zip(&want)) {
                        let dtype = DType::from_arrow(w.data_type()).expect("computed type");
                        let pow = e.to_string().contains("**");
                        assert_agrees(g, w, Tolerance::of(info.kind, dtype, pow), &what(name, e));
                    }
                }
                // A device may refuse a dtype it lacks, and must say so.
                Err(fuseflow::Error::Device {
                    failure: DeviceFailure::Unsupported,
                    ..
                }) if !computes => {}
                Err(e) => panic!("{info}, {n} rows: {e}"),
            }
        }
    }
}

fn unary(op: UnaryOp, e: Expr) -> Expr {
    match op {
        UnaryOp::Neg => -e,
        UnaryOp::Abs => e.abs(),
        UnaryOp::Sqrt => e.sqrt(),
        UnaryOp::Exp => e.exp(),
        UnaryOp::Log => e.log(),
        UnaryOp::Log1p => e.log1p(),
        UnaryOp::Sigmoid => e.sigmoid(),
        UnaryOp::Not => e.not(),
    }
}

fn binary(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.pow(b),
        BinaryOp::Min => a.minimum(b),
        BinaryOp::Max => a.maximum(b),
        BinaryOp::Eq => a.eq(b),
        BinaryOp::NotEq => a.not_eq(b),
        BinaryOp::Lt => a.lt(b),
        BinaryOp::LtEq => a.lt_eq(b),
        BinaryOp::Gt => a.gt(b),
        BinaryOp::GtEq => a.gt_eq(b),
        BinaryOp::And => a.and(b),
        BinaryOp::Or => a.or(b),
    }
}

#[test]
fn every_unary_op_on_f32() {
    let ops = UnaryOp::ALL.into_iter().filter(|op| *op != UnaryOp::Not);
    conform(1, ops.map(|op| unary(op, col("f"))).collect());
}

#[test]
fn every_arithmetic_and_comparison_op_on_f32() {
    let ops = BinaryOp::ALL
        .into_iter()
        .filter(|op| !matches!(op, BinaryOp::And | BinaryOp::Or));
    conform(2, ops.map(|op| binary(op, col("f"), col("g"))).collect());
}

#[test]
fn integer_ops_wrap_as_on_the_cpu() {
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Lt,
        BinaryOp::Eq,
    ];
    let mut exprs: Vec<Expr> = ops.map(|op| binary(op, col("i"), col("j"))).to_vec();
    exprs.extend([-col("i"), col("i").abs(), col("i").clip(lit(-5), lit(5))]);
    conform(3, exprs);
}

#[test]
fn kleene_logic_and_null_handling() {
    conform(
        4,
        vec![
            col("p").and(col("q")),
            col("p").or(col("q")),
            col("p").not(),
            col("f").is_null(),
            col("f").fill_null(lit(0.5)),
            col("f").fill_null(col("g")),
            if_else(col("p"), col("f"), col("g")),
            if_else(col("f").gt(lit(0.0)), col("i"), col("j")),
            col("f").clip(lit(-5.0), lit(5.0)),
            col("f")
                .gt(lit(0.0))
                .and(col("g").lt(lit(1.0)))
                .or(col("p")),
        ],
    );
}

#[test]
fn casts_null_out_of_range_floats() {
    conform(
        5,
        vec![
            col("f").cast(DType::Int32),
            (col("f") * lit(1e8)).cast(DType::Int32),
            col("i").cast(DType::Float32),
            col("p").cast(DType::Float32),
            col("p").cast(DType::Int32),
            col("f").cast(DType::Bool),
            col("i").cast(DType::Bool),
        ],
    );
}

#[test]
fn sixty_four_bit_types_where_the_device_has_them() {
    conform(
        6,
        vec![
            col("x").sqrt() + col("x").log1p(),
            col("k") * col("k") - col("k"),
            col("x").cast(DType::Int64),
            col("f").cast(DType::Float64) * col("x"),
            col("i").sqrt(),
        ],
    );
}

#[test]
fn the_prep_and_score_chain_fuses_into_one_kernel() {
    let z = |c: &str, mean: f64, std: f64| {
        ((col(c).fill_null(lit(mean)) - lit(mean)) / lit(std)).clip(lit(-5.0), lit(5.0))
    };
    let score =
        (lit(0.25) * z("f", 0.5, 20.0) - lit(0.75) * z("g", -1.0, 15.0) + lit(0.1)).sigmoid();
    conform(7, vec![score, z("f", 0.5, 20.0)]);
}

#[test]
fn reductions_agree_with_the_cpu_and_repeat_bit_for_bit() {
    for backend in backends() {
        let info = backend.info().clone();
        // Also lengths around the statistics blocks (4096 rows on wgpu, 8192 on CUDA).
        for n in LENGTHS.into_iter().chain([4097, 8191, 8193, 100_003]) {
            let batch = dataset(8 ^ n as u64, n, true);
            for name in ["f", "i", "x", "k"] {
                let array = batch.column_by_name(name).expect("column");
                let dtype = DType::from_arrow(array.data_type()).expect("dtype");
                if !info.supports(dtype) {
                    continue;
                }
                let want = column_stats(&[(name.into(), vec![array.clone()])]).unwrap()[0];
                let on_device = backend.upload(array).unwrap();
                let got = backend.reduce(&on_device).unwrap();
                let again = backend.reduce(&on_device).unwrap();
                let what = format!("{info}, {n} rows, column {name}");
                assert_eq!(
                    format!("{got:?}"),
                    format!("{again:?}"),
                    "{what}: not repeatable"
                );
                assert_eq!(
                    (got.count, got.nulls, got.nans),
                    (want.count, want.nulls, want.nans),
                    "{what}: counts"
                );
                // f32 partials on wgpu (no f64 in WGSL): 1e-5 of the spread.
                let tol = if info.kind == DeviceKind::Wgpu {
                    1e-5
                } else {
                    1e-12
                };
                let scale = want.min.abs().max(want.max.abs()).max(1.0);
                let close = |a: f64, b: f64| {
                    (a.is_nan() && b.is_nan())
                        || a == b
                        || (a - b).abs() <= tol * scale.max(b.abs())
                };
                assert!(
                    close(got.mean, want.mean),
                    "{what}: mean {} vs {}",
                    got.mean,
                    want.mean
                );
                assert!(
                    close(got.m2.sqrt(), want.m2.sqrt()),
                    "{what}: m2 {} vs {}",
                    got.m2,
                    want.m2
                );
                assert!(
                    close(got.min, want.min) && close(got.max, want.max),
                    "{what}: min/max {got:?} vs {want:?}"
                );
            }
        }
    }
}

#[test]
fn matrix_products_agree_with_the_cpu() {
    let mut rng = Rng::new(9);
    let cpu = fuseflow::backend::CpuBackend::shared();
    for backend in backends() {
        let info = backend.info().clone();
        for (m, k, n) in [
            (1, 1, 1),
            (17, 33, 5),
            (64, 64, 64),
            (100, 7, 3),
            (3, 300, 2),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let values = |len: usize, rng: &mut Rng| -> ArrayRef {
                    Arc::new(Float32Array::from_iter_values(
                        (0..len).map(|_| rng.range(-2.0, 2.0) as f32),
                    ))
                };
                let (a, b) = (values(ar * ac, &mut rng), values(br * bc, &mut rng));
                let product = |be: &dyn Backend| {
                    let (da, db) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
                    let (mut ma, mut mb) = (Matrix::new(&da, ar, ac), Matrix::new(&db, br, bc));
                    if ta {
                        ma = ma.t();
                    }
                    if tb {
                        mb = mb.t();
                    }
                    be.download(&be.matmul(ma, mb).unwrap()).unwrap()
                };
                let (got, want) = (product(backend.as_ref()), product(cpu.as_ref()));
                // f32 products of k terms in [-2, 2]: error below k * 4 * 2^-24 relative to 4k.
                let tol = Tolerance {
                    rel: 0.0,
                    abs: if info.kind == DeviceKind::Cpu {
                        0.0
                    } else {
                        4.0 * k as f64 * 1e-6
                    },
                };
                assert_agrees(
                    &got,
                    &want,
                    tol,
                    &format!("{info}: {m}x{k} by {k}x{n}, ta {ta}, tb {tb}"),
                );
            }
        }
    }
}

#[test]
fn strings_stay_on_the_cpu() {
    for backend in backends() {
        if backend.info().kind == DeviceKind::Cpu {
            continue;
        }
        let batch = batch(vec![("s", str_array_of(&[Some("a"), None, Some("b")]))]);
        let err = backend.upload(batch.column(0)).unwrap_err();
        assert_device_failure(&err, DeviceFailure::Unsupported);
    }
}

/// Seeded f32 values in `[lo, hi)` as a CPU array.
fn uniform_f32(rng: &mut Rng, len: usize, lo: f64, hi: f64) -> ArrayRef {
    Arc::new(Float32Array::from_iter_values(
        (0..len).map(|_| rng.range(lo, hi) as f32),
    ))
}

/// Run a training kernel on `backend` with `arrays` uploaded, and download its outputs.
fn train_on(
    backend: &dyn Backend,
    arrays: &[ArrayRef],
    kernel: impl Fn(&[DeviceArray]) -> TrainKernel<'_>,
) -> Vec<ArrayRef> {
    let on_device: Vec<DeviceArray> = arrays.iter().map(|a| backend.upload(a).unwrap()).collect();
    let outputs = backend
        .train(kernel(&on_device))
        .unwrap_or_else(|e| panic!("{}: {e}", backend.info()));
    outputs
        .iter()
        .map(|o| backend.download(o).unwrap())
        .collect()
}

/// Compare each output of a training kernel on every backend with the CPU's.
/// `tolerance(kind, output)` gives the tolerance of output `i` on a device kind.
fn conform_training(
    what: &str,
    arrays: &[ArrayRef],
    kernel: impl Fn(&[DeviceArray]) -> TrainKernel<'_>,
    tolerance: impl Fn(DeviceKind, usize) -> Tolerance,
) {
    let want = train_on(
        fuseflow::backend::CpuBackend::shared().as_ref(),
        arrays,
        &kernel,
    );
    for backend in backends() {
        let info = backend.info().clone();
        let got = train_on(backend.as_ref(), arrays, &kernel);
        assert_eq!(got.len(), want.len(), "{info}: {what}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_agrees(
                g,
                w,
                tolerance(info.kind, i),
                &format!("{info}: {what}, output {i}"),
            );
        }
    }
}

/// Rows around the block products' 4096-row blocks and the 16-row tiles.
const TRAIN_ROWS: [usize; 5] = [1, 17, 255, 4097, 8195];

#[test]
fn matmul_refuses_operands_that_do_not_fit() {
    for backend in backends() {
        let info = backend.info().clone();
        let dense = backend
            .upload(&(Arc::new(Float32Array::from(vec![1.0f32; 6])) as ArrayRef))
            .unwrap();
        let holey = backend
            .upload(
                &(Arc::new(Float32Array::from(vec![
                    Some(1.0f32),
                    None,
                    Some(2.0),
                    Some(3.0),
                    Some(4.0),
                    Some(5.0),
                ])) as ArrayRef),
            )
            .unwrap();
        let refused = |a: Matrix<'_>, b: Matrix<'_>, what: &str| {
            let err = backend.matmul(a, b).unwrap_err();
            assert!(
                matches!(err, fuseflow::Error::Internal(_)) && err.to_string().contains(what),
                "{info}: {err}"
            );
        };
        // 2x3 by 2x3: the inner sizes differ.
        refused(
            Matrix::new(&dense, 2, 3),
            Matrix::new(&dense, 2, 3),
            "matmul of 2x3 by 2x3",
        );
        // A null in an operand.
        refused(
            Matrix::new(&holey, 2, 3),
            Matrix::new(&dense, 3, 2),
            "null-free f32",
        );
        // Fewer values than rows * cols.
        refused(
            Matrix::new(&dense, 4, 2),
            Matrix::new(&dense, 2, 3),
            "null-free f32",
        );
    }
}

#[test]
fn block_products_agree_with_the_cpu() {
    let mut rng = Rng::new(21);
    for n in TRAIN_ROWS {
        for (p, q) in [(1, 1), (3, 17), (18, 5)] {
            let arrays = [
                uniform_f32(&mut rng, n * p, -1.0, 1.0),
                uniform_f32(&mut rng, n * q, -1.0, 1.0),
                uniform_f32(&mut rng, n * 3, 0.0, 1.0),
            ];
            for weighted in [false, true] {
                // Each partial sums at most 4096 products of magnitude <= 1 in
                // f32: rounding grows with the square root of the terms, about
                // 64 ulp of the sum's scale in the worst case seen; 2e-4
                // absolute bounds it with room.
                conform_training(
                    &format!("block products {n}x{p} by {n}x{q}, weighted {weighted}"),
                    &arrays,
                    |d| TrainKernel::BlockGram {
                        a: Matrix::new(&d[0], n, p),
                        b: Matrix::new(&d[1], n, q),
                        weights: weighted.then(|| (Matrix::new(&d[2], n, 3), 2)),
                    },
                    |kind, _| Tolerance {
                        rel: 0.0,
                        abs: if kind == DeviceKind::Cpu { 0.0 } else { 2e-4 },
                    },
                );
            }
        }
    }
}

#[test]
fn loss_heads_agree_with_the_cpu() {
    let mut rng = Rng::new(22);
    for n in TRAIN_ROWS {
        for (loss, k) in [(Loss::Squared, 1), (Loss::Logistic, 1), (Loss::Softmax, 5)] {
            let logits = uniform_f32(&mut rng, n * k, -8.0, 8.0);
            let target: ArrayRef = match loss {
                Loss::Squared => uniform_f32(&mut rng, n, -3.0, 3.0),
                _ => Arc::new(Int32Array::from_iter_values(
                    (0..n).map(|_| (rng.next_u64() % k.max(2) as u64) as i32),
                )),
            };
            // exp and log within a few ulp (CUDA) or Vulkan's 3 + 2|x| ulp
            // (wgpu) of logits up to 8, plus rounding near zero.
            conform_training(
                &format!("{loss:?} head, {n} rows"),
                &[logits, target],
                |d| TrainKernel::Head {
                    loss,
                    logits: Matrix::new(&d[0], n, k),
                    target: &d[1],
                },
                |kind, _| match kind {
                    DeviceKind::Cpu => Tolerance { rel: 0.0, abs: 0.0 },
                    DeviceKind::Cuda => Tolerance {
                        rel: 1e-5,
                        abs: 1e-6,
                    },
                    DeviceKind::Wgpu => Tolerance {
                        rel: 5e-5,
                        abs: 2e-6,
                    },
                },
            );
        }
    }
}

#[test]
fn layer_kernels_agree_with_the_cpu() {
    let mut rng = Rng::new(23);
    for n in TRAIN_ROWS {
        let h = 7;
        let arrays = [
            uniform_f32(&mut rng, n * h, -20.0, 20.0),
            uniform_f32(&mut rng, h, -1.0, 1.0),
            uniform_f32(&mut rng, n * h, -1.0, 1.0),
            Arc::new(Int32Array::from_iter_values(
                (0..n + 3).map(|i| ((i * 7919) % (n + 2)) as i32 - 1),
            )) as ArrayRef,
        ];
        // tanh and the products round within a few ulp.
        let tol = |kind, _| match kind {
            DeviceKind::Cpu => Tolerance { rel: 0.0, abs: 0.0 },
            _ => Tolerance {
                rel: 1e-5,
                abs: 1e-6,
            },
        };
        for activation in [None, Some(Activation::Relu), Some(Activation::Tanh)] {
            conform_training(
                &format!("bias + {activation:?}, {n} rows"),
                &arrays,
                |d| TrainKernel::BiasActivation {
                    z: Matrix::new(&d[0], n, h),
                    bias: &d[1],
                    activation,
                },
                tol,
            );
        }
        for activation in [Activation::Relu, Activation::Tanh] {
            conform_training(
                &format!("{activation:?} backward, {n} rows"),
                &arrays,
                |d| TrainKernel::ActivationBackward {
                    delta: Matrix::new(&d[0], n, h),
                    output: &d[2],
                    activation,
                },
                tol,
            );
        }
        // Indices include -1 and n, which read as zero everywhere: exact.
        conform_training(
            &format!("gather, {n} rows"),
            &arrays,
            |d| TrainKernel::GatherRows {
                x: Matrix::new(&d[0], n, h),
                rows: &d[3],
            },
            |_, _| Tolerance { rel: 0.0, abs: 0.0 },
        );
    }
}

#[test]
fn adam_steps_agree_with_the_cpu() {
    let mut rng = Rng::new(24);
    for len in [1, 255, 257, 10_007] {
        let arrays = [
            uniform_f32(&mut rng, len, -1.0, 1.0),
            uniform_f32(&mut rng, len, -5.0, 5.0),
            uniform_f32(&mut rng, len, -0.1, 0.1),
            uniform_f32(&mut rng, len, 0.0, 0.01),
        ];
        let step = AdamStep {
            learning_rate: 0.01,
            c1: 0.271,
            c2: 0.0297,
            grad_scale: 1.0 / 37.0,
            l2: 1e-3,
        };
        // A handful of f32 roundings (sqrt and divisions within 1 ulp on
        // CUDA, 2.5 ulp on Vulkan) of values of order one.
        conform_training(
            &format!("adam, {len} parameters"),
            &arrays,
            |d| TrainKernel::Adam {
                params: &d[0],
                grads: &d[1],
                m: &d[2],
                v: &d[3],
                step,
            },
            |kind, _| match kind {
                DeviceKind::Cpu => Tolerance { rel: 0.0, abs: 0.0 },
                _ => Tolerance {
                    rel: 1e-5,
                    abs: 1e-7,
                },
            },
        );
    }
}

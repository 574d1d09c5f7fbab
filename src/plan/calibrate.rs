//! `fuseflow calibrate`: measure the cost model's constants on this machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Float32Array, RecordBatch};

use super::cost::{Calibration, GpuProfile};
use crate::backend::DeviceSet;
use crate::backend::{Device, DeviceKind, Matrix, Notes};
use crate::error::Result;
use crate::ir::{Projection, col, lit};
use crate::ml::gram::weighted_gram;
use crate::ml::pass::{add_into, fold_blocks};

/// Rows of the f32 column timed for bandwidths (32 MB).
const ROWS: usize = 8 << 20;
/// Side of the square matrices multiplied to time a GPU's arithmetic.
const SIDE: usize = 512;
/// Columns of the Gram matrix timed for the CPU's arithmetic.
const GRAM_COLUMNS: usize = 32;
/// Timed repetitions; the fastest counts (the others met a busy machine).
const REPEATS: usize = 3;

/// Measure the CPU and every GPU in `devices` (software adapters included,
/// although `auto` never chooses them): the bandwidth of a fused kernel
/// (`z = x * 2 + 1` over 8M f32 rows), the cost of launching one on a single
/// row, and for GPUs the copy bandwidth to the device and back; arithmetic
/// throughput from the CPU trainers' Gram pass and a GPU's matrix product.
/// Kinds of GPU that are absent keep the defaults.
///
/// # Errors
/// A device failure while measuring (the message names the device).
pub fn calibrate(devices: &DeviceSet) -> Result<Calibration> {
    let big = batch(ROWS);
    let one = batch(1);
    let projection = Projection::try_new(
        big.schema(),
        &[("z".into(), col("x") * lit(2.0) + lit(1.0))],
    )?;
    let moved = (2 * ROWS * 4) as f64;
    let cpu = Device::cpu().kernel(projection.clone());
    let notes = Notes::default();
    let cpu_time = fastest(|| cpu.evaluate(&big, &notes).map(drop))?;
    let cpu_launch = fastest(|| cpu.evaluate(&one, &notes).map(drop))?;
    let mut calibration = Calibration {
        cpu_gbs: moved / cpu_time.as_secs_f64() / 1e9,
        cpu_launch_us: cpu_launch.as_secs_f64() * 1e6,
        cpu_gflops: cpu_gflops()?,
        ..Calibration::default()
    };
    let mut measured = vec!["cpu".to_string()];
    for kind in [DeviceKind::Cuda, DeviceKind::Wgpu] {
        let Some(device) = devices.get(kind) else {
            continue;
        };
        let profile = measure_gpu(device, &projection, &big, &one)?;
        match kind {
            DeviceKind::Cuda => calibration.cuda = profile,
            _ => calibration.wgpu = profile,
        }
        measured.push(device.info().to_string());
    }
    calibration.source = format!("measured: {}", measured.join("; "));
    Ok(calibration)
}

fn measure_gpu(
    device: &Device,
    projection: &Projection,
    big: &RecordBatch,
    one: &RecordBatch,
) -> Result<GpuProfile> {
    let backend = device.backend();
    let column = big.column(0);
    let bytes = (ROWS * 4) as f64;
    let upload = fastest(|| backend.upload(column).map(drop))?;
    let resident = backend.upload(column)?;
    let download = fastest(|| backend.download(&resident).map(drop))?;
    let small = backend.upload(one.column(0))?;
    let launch_on = |input| {
        let outputs = backend.launch(projection, &[Some(input)])?;
        backend.synchronize()?;
        drop(outputs);
        Ok(())
    };
    // The first launch compiles the kernel.
    launch_on(&small)?;
    let launch = fastest(|| launch_on(&small))?;
    let kernel = fastest(|| launch_on(&resident))?;
    // A square f32 product, as training's dense passes make.
    let values: ArrayRef = Arc::new(Float32Array::from_iter_values(
        (0..SIDE * SIDE).map(|i| (i % 7) as f32 - 3.0),
    ));
    let square = backend.upload(&values)?;
    let product = || {
        let m = Matrix::new(&square, SIDE, SIDE);
        drop(backend.matmul(m, m.t())?);
        backend.synchronize()
    };
    product()?;
    let matmul = fastest(product)?;
    Ok(GpuProfile {
        bandwidth_gbs: 2.0 * bytes / kernel.as_secs_f64() / 1e9,
        link_gbs: 2.0 * bytes / (upload + download).as_secs_f64() / 1e9,
        launch_us: launch.as_secs_f64() * 1e6,
        gflops: 2.0 * (SIDE * SIDE * SIDE) as f64 / matmul.as_secs_f64() / 1e9,
    })
}

/// The CPU trainers' dense pass (a Gram matrix of [`GRAM_COLUMNS`] f64
/// columns over blocks of rows on all cores), in GFLOP/s.
fn cpu_gflops() -> Result<f64> {
    let rows = 1 << 18;
    let columns: Vec<Vec<f64>> = (0..GRAM_COLUMNS)
        .map(|j| {
            (0..rows)
                .map(|i| ((i * 31 + j) % 17) as f64 - 8.0)
                .collect()
        })
        .collect();
    let cols: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
    let time = fastest(|| {
        let gram = fold_blocks(
            rows,
            |range| weighted_gram(&cols, None, range),
            add_into,
            Vec::new(),
        );
        std::hint::black_box(gram);
        Ok(())
    })?;
    // One multiply and one add per pair of columns (lower triangle) per row.
    let pairs = (GRAM_COLUMNS * (GRAM_COLUMNS + 1) / 2) as f64;
    Ok(2.0 * pairs * rows as f64 / time.as_secs_f64() / 1e9)
}

/// The fastest of [`REPEATS`] timed runs, at least a nanosecond.
fn fastest(mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..REPEATS {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed());
    }
    Ok(best.max(Duration::from_nanos(1)))
}

fn batch(rows: usize) -> RecordBatch {
    let values: ArrayRef = Arc::new(Float32Array::from_iter_values(
        (0..rows).map(|i| (i % 1000) as f32),
    ));
    RecordBatch::try_from_iter([("x", values)]).expect("one column")
}

//! Logistic-regression training (Newton, binary and multinomial) on every
//! device this machine has: the CPU's f64 trainer, and the f32 device
//! trainer on wgpu and CUDA, with the data uploaded per fit ("host") or
//! already resident on the device ("resident").
//!
//! ```sh
//! cargo bench --bench gpu_train                       # 1,000,000 x 32
//! FUSEFLOW_BENCH_ROWS=200000 cargo bench --bench gpu_train
//! ```
//!
//! A software wgpu adapter (lavapipe) runs the shaders on the CPU: its
//! figures (labelled `software`) show correctness, not GPU speed. Without
//! `--bench` (as `cargo test --benches` runs it) it is a smoke run on 20,000
//! rows. `benches/peers/torch_logistic.py` runs the same workload in PyTorch.

#[path = "common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use fuseflow::backend::{Backend, Device, DeviceKind};
use fuseflow::data::Rng;
use fuseflow::ml::design::Design;
use fuseflow::ml::logistic::{self, LogisticConfig};
use fuseflow::ml::on_device::{self, DeviceLogistic};

/// Features per row.
const WIDTH: usize = 32;

/// Rows: `FUSEFLOW_BENCH_ROWS`, else 1,000,000 under `--bench` and 20,000 otherwise.
fn rows() -> usize {
    let default = if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        20_000
    };
    common::rows_from_env("FUSEFLOW_BENCH_ROWS", default)
}

/// Seeded standard-normal features; labels from a softmax (sigmoid) over
/// random linear scores, as `benches/peers/torch_logistic.py` generates them.
fn data(rows: usize, classes: usize) -> (Design, Vec<u32>) {
    let mut rng = Rng::new(42);
    let x: Vec<f64> = (0..rows * WIDTH).map(|_| rng.normal()).collect();
    let w: Vec<f64> = (0..classes * WIDTH).map(|_| rng.normal() * 0.3).collect();
    let y = (0..rows)
        .map(|r| {
            let scores: Vec<f64> = (0..classes)
                .map(|c| (0..WIDTH).map(|j| w[c * WIDTH + j] * x[j * rows + r]).sum())
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let mut u = rng.uniform() * e.iter().sum::<f64>();
            e.iter()
                .position(|p| {
                    u -= p;
                    u <= 0.0
                })
                .unwrap_or(classes - 1) as u32
        })
        .collect();
    let design = Design {
        rows,
        features: (0..WIDTH).map(|j| format!("f{j}")).collect(),
        x,
    };
    (design, y)
}

fn bench(c: &mut Criterion) {
    let rows = rows();
    let config = LogisticConfig::default();
    let devices: Vec<Device> = [DeviceKind::Wgpu, DeviceKind::Cuda]
        .into_iter()
        .filter_map(|choice| match Device::open(choice) {
            Ok(device) => Some(device),
            Err(e) => {
                eprintln!("skipping {choice}: {e}");
                None
            }
        })
        .collect();
    for (task, classes) in [("binary", 2), ("multinomial", 4)] {
        let (x, y) = data(rows, classes);
        let mut group = c.benchmark_group(format!("train_logistic/{task}/{rows}x{WIDTH}"));
        group.sample_size(10);
        group.bench_function("cpu f64", |b| {
            b.iter(|| logistic::fit("bench", &x, &y, classes, &config).unwrap())
        });
        for device in &devices {
            let backend: &dyn Backend = device.backend();
            let label = format!(
                "{}{}",
                device.info().kind,
                if device.info().software {
                    " software"
                } else {
                    ""
                }
            );
            group.bench_function(BenchmarkId::new(label.clone(), "host"), |b| {
                b.iter(|| {
                    on_device::fit_logistic("bench", backend, &x, &y, classes, &config).unwrap()
                })
            });
            let resident = DeviceLogistic::new(backend, &x, &y, classes).unwrap();
            group.bench_function(BenchmarkId::new(label, "resident"), |b| {
                b.iter(|| logistic::newton("bench", &resident, classes, &config).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

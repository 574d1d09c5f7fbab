//! The "prep+score" workload on every device this machine has: the CPU, wgpu
//! and CUDA, side by side in one run.
//!
//! ```sh
//! cargo bench --bench gpu_devices -- --rows 10000000 --repeats 5
//! ```
//!
//! For each device, four timings (median of `--repeats`):
//! - `fit host`: statistics of the 32 columns from host (Arrow) memory: upload
//!   and reduce on the device (the CPU reads in place);
//! - `fit resident`: the same with the columns already on the device;
//! - `apply host`: the fused fill-null / z-score / clip / linear / sigmoid
//!   kernel from host memory back to host memory (upload, launch, download);
//! - `apply resident`: the kernel alone over device-resident columns, with the
//!   bandwidth it reaches (bytes read plus written, see `apply_bytes`).
//!
//! A software wgpu adapter (lavapipe) runs the shaders on the CPU: its figures
//! show correctness, not GPU speed, and are labelled so. Without `--bench`
//! (as `cargo test --benches` runs it) it does a smoke run on 100,000 rows.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use arrow_array::ArrayRef;

use common::{
    DEFAULT_BATCH_ROWS, N_COLUMNS, apply_bytes, fit, fit_bytes, generate, score_projection,
};
use fuseflow::backend::{Device, DeviceArray, DeviceKind, Notes};

struct Args {
    rows: usize,
    repeats: usize,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let full = argv.iter().any(|a| a == "--bench" || a == "--rows");
    let mut args = Args {
        rows: if full { 10_000_000 } else { 100_000 },
        repeats: if full { 5 } else { 1 },
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match a.as_str() {
            "--rows" => args.rows = value(),
            "--repeats" => args.repeats = value(),
            _ => {}
        }
    }
    args
}

/// Median wall time of `repeats` runs of `f` (after one warm-up run).
fn median(repeats: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args = parse_args();
    let data = generate(args.rows, DEFAULT_BATCH_ROWS);
    let columns = data.stat_columns();
    let fitted = fit(&columns);
    let projection = score_projection(&data.schema, &fitted);
    eprintln!(
        "prep+score, {} rows x {N_COLUMNS} f32 columns, median of {}",
        args.rows, args.repeats
    );
    println!(
        "| device | fit host ms | fit resident ms | apply host ms | apply resident ms | apply resident GB/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for choice in [DeviceKind::Cpu, DeviceKind::Wgpu, DeviceKind::Cuda] {
        let device = match Device::open(choice) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("skipping {choice}: {e}");
                continue;
            }
        };
        let backend = device.backend();
        let notes = Notes::default();
        let fit_host = median(args.repeats, || {
            device.column_stats(&columns, &notes).expect("fit");
        });
        let kernel = device.kernel(projection.clone());
        let apply_host = median(args.repeats, || {
            for batch in &data.batches {
                kernel.evaluate(batch, &notes).expect("apply");
            }
        });
        // Upload once; then time the device alone.
        let resident: Vec<Vec<DeviceArray>> = data
            .batches
            .iter()
            .map(|b| {
                b.columns()
                    .iter()
                    .map(|c: &ArrayRef| backend.upload(c).expect("upload"))
                    .collect()
            })
            .collect();
        let fit_resident = median(args.repeats, || {
            for j in 0..N_COLUMNS {
                for batch in &resident {
                    backend.reduce(&batch[j]).expect("reduce");
                }
            }
        });
        let apply_resident = median(args.repeats, || {
            for batch in &resident {
                let inputs: Vec<Option<&DeviceArray>> = batch.iter().map(Some).collect();
                backend.launch(&projection, &inputs).expect("launch");
            }
            backend.synchronize().expect("synchronize");
        });
        let fallbacks = notes.take();
        if !fallbacks.is_empty() {
            eprintln!("{choice} fell back: {}", fallbacks.join("; "));
        }
        let label = if device.info().software {
            format!("{} (software: correctness only)", device.info())
        } else {
            device.info().to_string()
        };
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(fit_host),
            ms(fit_resident),
            ms(apply_host),
            ms(apply_resident),
            apply_bytes(args.rows) as f64 / apply_resident.as_secs_f64() / 1e9
        );
        eprintln!(
            "{choice}: fit moves {:.2} GB",
            fit_bytes(args.rows) as f64 / 1e9
        );
    }
}

//! The "prep+score" workload (see `benches/peers/README.md`) on the CUDA
//! backend, beside the transfers it needs. Compare with
//! `benches/peers/torch_prep_score.py` on the same GPU.
//!
//! ```sh
//! cargo bench --bench gpu_prep_score -- --rows 10000000 --repeats 10
//! ```
//!
//! Phases, each the median of `--repeats` after a warm-up, timed on the host
//! around a `synchronize`: upload of the 32 columns (pinned, double-buffered
//! staging), fit (32 column reductions, data on the device), apply (one fused
//! kernel, data on the device), download of the scores; plus the upload and
//! download of one 1 GiB column. GB/s counts the bytes a phase must move
//! once: values (4 B/row/column), validity bits of the 8 nullable columns,
//! and the f32 score. Results are checked against the CPU backend.
//!
//! Without a CUDA device it prints why and exits 0, so `cargo test --benches`
//! passes everywhere. stdout ends with one `FUSEFLOW_GPU_JSON {...}` line.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{ArrayRef, Float32Array};
use fuseflow::backend::{Backend, CudaBackend, DeviceArray};

use common::{
    DEFAULT_ROWS, Fitted, N_COLUMNS, N_NULLABLE, apply_fused, fit, generate, score_projection,
};

/// Median wall time in ms of `f` over `repeats` runs after one warm-up, and its last result.
fn median_ms<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut result = f();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        result = f();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], result)
}

fn arg(name: &str, default: usize) -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, got {v}"))
        })
        .unwrap_or(default)
}

fn main() {
    let cuda = match CudaBackend::shared() {
        Ok(cuda) => cuda,
        Err(e) => {
            eprintln!("skipping the CUDA benchmark: {e}");
            return;
        }
    };
    // `cargo test --benches` runs this without `--bench`: a quick smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rows = arg("--rows", if smoke { 100_000 } else { DEFAULT_ROWS });
    let repeats = arg("--repeats", if smoke { 1 } else { 10 });
    let sync = || cuda.synchronize().expect("synchronize");

    let data = generate(rows, 0);
    let columns: Vec<ArrayRef> = data.batches[0].columns().to_vec();
    let upload_all = || -> Vec<DeviceArray> {
        let out = columns
            .iter()
            .map(|c| cuda.upload(c).expect("upload"))
            .collect();
        sync();
        out
    };
    let (upload_ms, on_device) = median_ms(repeats, upload_all);

    let (fit_ms, fitted) = median_ms(repeats, || {
        let stats: Vec<_> = on_device
            .iter()
            .map(|a| cuda.reduce(a).expect("reduce"))
            .collect();
        Fitted::from_stats(&stats)
    });
    let projection = score_projection(&data.schema, &fitted);
    let inputs: Vec<Option<&DeviceArray>> = on_device.iter().map(Some).collect();
    let (apply_ms, scores) = median_ms(repeats, || {
        let out = cuda.launch(&projection, &inputs).expect("launch");
        sync();
        out
    });
    let (download_ms, scores) = median_ms(repeats, || cuda.download(&scores[0]).expect("download"));

    let big: ArrayRef = Arc::new(Float32Array::from(vec![1.5f32; 1 << 28]));
    let (big_up_ms, big_on_device) = median_ms(repeats.min(5), || {
        let a = cuda.upload(&big).expect("upload 1 GiB");
        sync();
        a
    });
    let (big_down_ms, _) = median_ms(repeats.min(5), || {
        cuda.download(&big_on_device).expect("download 1 GiB")
    });

    // Checks against the CPU: statistics and scores.
    let reference = fit(&data.stat_columns());
    let stats_rel = fitted
        .means
        .iter()
        .zip(&reference.means)
        .chain(fitted.stds.iter().zip(&reference.stds))
        .map(|(g, c)| ((g - c) / c).abs())
        .fold(0.0, worst);
    let cpu_scores = apply_fused(&data, &reference);
    let score_abs = scores
        .as_primitive::<Float32Type>()
        .values()
        .iter()
        .zip(cpu_scores[0].as_primitive::<Float32Type>().values().iter())
        .map(|(g, c)| f64::from((g - c).abs()))
        .fold(0.0, worst);

    let input_bytes = (rows * N_COLUMNS * 4 + N_NULLABLE * rows.div_ceil(8)) as f64;
    let score_bytes = (rows * 4) as f64;
    let gib = (1u64 << 30) as f64;
    let phases = [
        ("upload", "upload 32 columns", upload_ms, input_bytes),
        ("fit", "fit (device)", fit_ms, input_bytes),
        (
            "apply",
            "apply (device)",
            apply_ms,
            input_bytes + score_bytes,
        ),
        ("download", "download scores", download_ms, score_bytes),
        ("upload_1gib", "upload 1 GiB", big_up_ms, gib),
        ("download_1gib", "download 1 GiB", big_down_ms, gib),
    ];
    eprintln!(
        "{} , {rows} rows x {N_COLUMNS} columns, median of {repeats}",
        cuda.info()
    );
    println!("| phase | ms | GB/s |\n| --- | ---: | ---: |");
    for (_, name, ms, bytes) in phases {
        println!("| {name} | {ms:.2} | {:.1} |", bytes / ms / 1e6);
    }
    println!(
        "check against the CPU: stats max rel diff {stats_rel:.2e}, score max abs diff {score_abs:.2e}"
    );
    // The limits of the CPU peer bench; a NaN difference fails too.
    assert!(
        stats_rel <= 1e-6 && score_abs <= 1e-4,
        "CUDA disagrees with the CPU: stats max rel diff {stats_rel:e} (limit 1e-6), \
         score max abs diff {score_abs:e} (limit 1e-4)"
    );
    let json: Vec<String> = phases
        .iter()
        .map(|(key, _, ms, _)| format!("\"{key}_ms\": {ms:.4}"))
        .collect();
    println!(
        "FUSEFLOW_GPU_JSON {{\"rows\": {rows}, \"device\": \"{}\", {}, \"stats_max_rel_diff\": {stats_rel:e}, \"score_max_abs_diff\": {score_abs:e}}}",
        cuda.info().name,
        json.join(", ")
    );
}

/// The larger of two differences, NaN if either is (unlike `f64::max`).
fn worst(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

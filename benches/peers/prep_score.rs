//! fuseflow's side of the "prep+score" peer benchmark (see `README.md` here and
//! `prep_score.py`, which runs this and parses its `FUSEFLOW_JSON` line).
//!
//! ```sh
//! cargo bench --bench peers_prep_score -- --rows 10000000 --repeats 5
//! ```
//!
//! Options: `--rows N` (default 10,000,000), `--repeats R` (default 5; each
//! phase reports its best time), `--batch-rows B` (rows per record batch,
//! default 1,000,000; 0 = the whole table in one batch), `--copy-mib M` (size
//! of the copy-bandwidth buffer, default 1024).
//!
//! Batch size: the data is cut into 1M-row batches (what a reader hands over).
//! On the 2-core dev box (2026-11-22) the 10M-row apply took 59 ms on 250K-row
//! batches, 57 ms on 1M-row batches and 66 ms on one 10M-row batch (one run
//! each); likely cause, not verified: a 40 MB output is above glibc's largest
//! mmap threshold, so every call faults its pages in afresh, while 4 MB
//! outputs are recycled from the heap.
//!
//! stdout carries exactly one line, `FUSEFLOW_JSON {...}`; everything else goes
//! to stderr. Run without `--bench` (as `cargo test --benches` does) and
//! without `--rows`, it does a quick smoke run on 100,000 rows.

#[path = "../common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use common::{
    DEFAULT_BATCH_ROWS, DEFAULT_ROWS, Fitted, N_COLUMNS, apply_bytes, apply_fused, fit, fit_bytes,
    flatten_scores, generate, reference_fit, reference_score,
};

struct Args {
    rows: usize,
    repeats: usize,
    batch_rows: usize,
    copy_mib: usize,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let smoke = !argv.iter().any(|a| a == "--bench") && !argv.iter().any(|a| a == "--rows");
    let mut args = if smoke {
        Args {
            rows: 100_000,
            repeats: 1,
            batch_rows: DEFAULT_BATCH_ROWS,
            copy_mib: 64,
        }
    } else {
        Args {
            rows: DEFAULT_ROWS,
            repeats: 5,
            batch_rows: DEFAULT_BATCH_ROWS,
            copy_mib: 1024,
        }
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> usize {
            let v = it
                .next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")));
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| fail(&format!("{name}: '{v}' is not a non-negative integer")))
        };
        match arg.as_str() {
            "--rows" => args.rows = value("--rows"),
            "--repeats" => args.repeats = value("--repeats").max(1),
            "--batch-rows" => args.batch_rows = value("--batch-rows"),
            "--copy-mib" => args.copy_mib = value("--copy-mib").max(1),
            "--bench" => {}
            other => eprintln!("prep_score: ignoring unknown argument '{other}'"),
        }
    }
    if args.rows == 0 {
        fail("--rows must be positive");
    }
    args
}

fn fail(message: &str) -> ! {
    eprintln!("prep_score: {message}");
    std::process::exit(2)
}

/// Best wall time of `repeats` calls, and the last result.
fn best_of<T>(repeats: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut result = None;
    for _ in 0..repeats {
        let start = Instant::now();
        let r = black_box(f());
        best = best.min(start.elapsed());
        result = Some(r);
    }
    (best, result.expect("repeats >= 1"))
}

/// STREAM-style copy bandwidth: bytes read + written per second, in GB/s, of a
/// multithreaded copy (one chunk per rayon thread, `copy_from_slice`) of a
/// `mib` MiB f32 buffer into another preallocated, pre-faulted one; best of 5.
fn copy_gbps(mib: usize) -> f64 {
    let len = mib * (1 << 20) / 4;
    let src: Vec<f32> = (0..len).into_par_iter().map(|i| i as f32).collect();
    let mut dst = vec![1.0f32; len]; // written, so every page is faulted in
    let threads = rayon::current_num_threads();
    let chunk = len.div_ceil(threads);
    let (best, ()) = best_of(5, || {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
    });
    assert_eq!(dst[len - 1], (len - 1) as f32);
    2.0 * (len * 4) as f64 / best.as_secs_f64() / 1e9
}

fn main() {
    let args = parse_args();
    let threads = rayon::current_num_threads();
    let rows = args.rows;
    eprintln!(
        "prep+score: {rows} rows x {N_COLUMNS} f32 columns, batches of {} rows, best of {}, {threads} threads",
        if args.batch_rows == 0 {
            rows
        } else {
            args.batch_rows.min(rows)
        },
        args.repeats
    );

    // Copy bandwidth first, so its 2 GiB are freed before the data exists.
    let copy = copy_gbps(args.copy_mib);
    eprintln!(
        "copy bandwidth ({} MiB, read + write): {copy:.2} GB/s",
        args.copy_mib
    );

    let start = Instant::now();
    let data = generate(rows, args.batch_rows);
    eprintln!(
        "generated {} batches in {:.2} s",
        data.batches.len(),
        start.elapsed().as_secs_f64()
    );

    let columns = data.stat_columns();
    let (fit_t, fitted): (Duration, Fitted) = best_of(args.repeats, || fit(&columns));
    let (apply_t, scores) = best_of(args.repeats, || apply_fused(&data, &fitted));

    // Correctness: stats against a naive two-pass f64 fit, scores against a
    // naive scalar f64 evaluation (first 1000 rows plus a stride over the rest).
    let ref_fit = reference_fit(&data);
    let stats_rel = (0..N_COLUMNS)
        .flat_map(|j| {
            [
                ((fitted.means[j] - ref_fit.means[j]) / ref_fit.means[j]).abs(),
                ((fitted.stds[j] - ref_fit.stds[j]) / ref_fit.stds[j]).abs(),
            ]
        })
        .fold(0.0f64, f64::max);
    let scores = flatten_scores(&scores);
    assert_eq!(scores.len(), rows);
    let checked: Vec<usize> = (0..rows.min(1000))
        .chain((1000..rows).step_by(10_007))
        .collect();
    let score_abs = checked
        .iter()
        .map(|&r| (f64::from(scores[r]) - reference_score(&data, &fitted, r)).abs())
        .fold(0.0f64, f64::max);

    let (fit_s, apply_s) = (fit_t.as_secs_f64(), apply_t.as_secs_f64());
    let apply_gbps = apply_bytes(rows) as f64 / apply_s / 1e9;
    let fit_gbps = fit_bytes(rows) as f64 / fit_s / 1e9;
    eprintln!(
        "fit:   {:8.2} ms  {fit_gbps:6.2} GB/s  ({:.0}% of copy bandwidth; reads N*32*4 bytes)",
        fit_s * 1e3,
        100.0 * fit_gbps / copy
    );
    eprintln!(
        "apply: {:8.2} ms  {apply_gbps:6.2} GB/s  ({:.0}% of copy bandwidth; reads N*32*4 + writes N*4 bytes; compile included)",
        apply_s * 1e3,
        100.0 * apply_gbps / copy
    );
    eprintln!(
        "check: stats max rel diff vs naive f64 {stats_rel:.2e} (limit 1e-6), \
         score max abs diff vs naive f64 {score_abs:.2e} over {} rows (limit 1e-4)",
        checked.len()
    );
    let ok = stats_rel <= 1e-6 && score_abs <= 1e-4;
    if !ok {
        eprintln!("WARNING: fuseflow disagrees with the naive reference");
    }
    println!(
        "FUSEFLOW_JSON {{\"rows\":{rows},\"fit_s\":{fit_s:.6},\"apply_s\":{apply_s:.6},\"copy_gbps\":{copy:.3},\"threads\":{threads}}}"
    );
    if !ok {
        std::process::exit(1);
    }
}

//! Content hashing throughput: `hash_table` on the "prep+score" table (N rows
//! of 32 Float32 columns, 1% nulls in 8 of them; see `benches/common/mod.rs`)
//! and `hash_file` on a file of random bytes.
//!
//! ```sh
//! cargo bench --bench hash
//! FUSEFLOW_BENCH_ROWS=1000000 FUSEFLOW_BENCH_FILE_MB=256 cargo bench --bench hash
//! ```
//!
//! Throughput is the bytes hashed: N*32*4 value bytes for the table (validity
//! bitmaps add 0.8% more), the file's size for the file. The file is written
//! once before timing, so it is read from the page cache: this measures the
//! hashing, not the disk. Defaults are 10,000,000 rows and 1 GiB; under
//! `cargo test --benches` (no `--bench` argument) 100,000 rows and 16 MiB.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::io::Write as _;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

use common::{DEFAULT_BATCH_ROWS, DEFAULT_ROWS, N_COLUMNS, SplitMix64, generate, rows_from_env};
use fuseflow::data::{hash_file, hash_table};
use fuseflow::pipeline::Table;

fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn bench(c: &mut Criterion) {
    let rows = rows_from_env(
        "FUSEFLOW_BENCH_ROWS",
        if benching() { DEFAULT_ROWS } else { 100_000 },
    );
    let data = generate(rows, DEFAULT_BATCH_ROWS);
    let table = Table::try_new(data.schema, data.batches).expect("generated batches match");

    let mut group = c.benchmark_group("hash");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes((rows * N_COLUMNS * 4) as u64));
    group.bench_function(format!("table/{rows}x{N_COLUMNS}xf32"), |b| {
        b.iter(|| hash_table(black_box(&table)).expect("f32 columns hash"))
    });

    let mib = rows_from_env("FUSEFLOW_BENCH_FILE_MB", if benching() { 1024 } else { 16 });
    let file = random_file(mib);
    group.throughput(Throughput::Bytes((mib << 20) as u64));
    group.bench_function(format!("file/{mib}MiB"), |b| {
        b.iter(|| hash_file(black_box(file.path())).expect("file is readable"))
    });
    group.finish();
}

/// A temporary file of `mib` MiB of seeded random bytes.
fn random_file(mib: usize) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    let mut rng = SplitMix64::new(7);
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for word in block.chunks_exact_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        file.write_all(&block).expect("write benchmark file");
    }
    file.flush().expect("flush benchmark file");
    file
}

criterion_group!(benches, bench);
criterion_main!(benches);

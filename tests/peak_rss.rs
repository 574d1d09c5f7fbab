//! Tests that measure the peak memory of a process they spawn, in a test
//! binary of their own.
//!
//! On Linux the `ru_maxrss` that `wait4` reports for a child is at least the
//! spawning process's own peak RSS: exec carries the old address space's
//! high-water mark into the child's (through `fork` and `posix_spawn`'s vfork
//! alike). Spawned from the suite, where hundreds of tests have run and are
//! running, a child's peak would be the suite's, so a bound on it would test
//! nothing, and one that grew between two runs would fail. Here the spawning
//! process holds only this test.

#[path = "suite/common/mod.rs"]
mod common;

use std::path::Path;

use arrow_array::RecordBatch;
use common::*;
use fuseflow::data::files::{BatchWriter, FileFormat};
use fuseflow::pipeline::io::Read;
use fuseflow::pipeline::{Pipeline, Table};

/// Read `path` with a pipeline `Read` step.
fn read(step: Read) -> fuseflow::Result<Table> {
    let mut p = Pipeline::new("read");
    p.add("read", step);
    Ok(p.run()?.output("read")?.clone())
}

/// Peak resident memory of `fuseflow run SPEC` in bytes (`ru_maxrss`).
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, to read its rusage"
)]
fn peak_rss_of_run(spec: &Path) -> u64 {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fuseflow"))
        .args(["run", "--no-workspace", "--device", "cpu", "--quiet"])
        .args(["--memory-budget", "16MiB"])
        .env("FUSEFLOW_FUSE", "1")
        .arg(spec)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "fuseflow run {} failed",
        spec.display()
    );
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_file_larger_than_the_memory_budget_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |name: &str, rows: usize| {
        // 16 f32 columns, a tenth of them null: 64 bytes a row.
        let mut rng = Rng::new(rows as u64);
        let names: Vec<String> = (0..16).map(|j| format!("f{j}")).collect();
        let source = dir.path().join(format!("{name}.arrow"));
        let columns = |rng: &mut Rng, n: usize| -> RecordBatch {
            batch(
                names
                    .iter()
                    .map(|c| {
                        let values: Vec<Option<f32>> = (0..n)
                            .map(|_| (!rng.chance(0.1)).then(|| rng.range(-3.0, 3.0) as f32))
                            .collect();
                        (c.as_str(), f32_array(&values))
                    })
                    .collect(),
            )
        };
        let first = columns(&mut rng, rows.min(65_536));
        let mut writer =
            BatchWriter::create(&source, FileFormat::ArrowFile, &first.schema()).unwrap();
        writer.write(&first).unwrap();
        for _ in 1..rows.div_ceil(65_536) {
            writer.write(&columns(&mut rng, 65_536)).unwrap();
        }
        writer.finish().unwrap();
        let list = names
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "name = \"bounded\"\n\
             [[steps]]\nname = \"raw\"\nkind = \"read\"\npath = \"{name}.arrow\"\n\
             [[steps]]\nname = \"stats\"\nkind = \"fit_stats\"\ninput = \"raw\"\ncolumns = [{list}]\n\
             [[steps]]\nname = \"scaled\"\nkind = \"scale\"\ninputs = {{ data = \"raw\", stats = \"stats\" }}\nmethod = \"zscore\"\n\
             [[steps]]\nname = \"save\"\nkind = \"write\"\ninput = \"scaled\"\npath = \"{name}-out.arrow\"\n"
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        (path, source)
    };
    let (small, _) = spec("small", 1000);
    let (large, source) = spec("large", 1 << 20);
    let bytes = std::fs::metadata(&source).unwrap().len();
    assert!(bytes > 64 << 20, "a 64 MiB source: {bytes}");
    let baseline = peak_rss_of_run(&small);
    let peak = peak_rss_of_run(&large);
    let held = peak.saturating_sub(baseline);
    eprintln!("peak RSS {peak} B, baseline {baseline} B, source {bytes} B");
    // Every column is scaled and written, so nothing is smaller than the
    // source; a whole-table run would hold it (and its scaled copy).
    assert!(
        held < bytes / 3,
        "peak RSS {peak} B is {held} B over a 1000-row run's {baseline} B, for a {bytes} B source"
    );
    assert_eq!(
        read(Read::new(dir.path().join("large-out.arrow")))
            .unwrap()
            .num_rows(),
        1 << 20
    );
}

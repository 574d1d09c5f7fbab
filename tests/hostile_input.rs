//! Damaged files: every reader refuses them with an error naming the file,
//! never panics, and never allocates more than a small multiple of the
//! file's size or of the batch budget.
//!
//! A binary of its own because it installs a counting global allocator,
//! which measures each read's peak allocation exactly (no RSS noise from
//! other tests).
//!
//! The corpus is made here, deterministically: small valid files of every
//! format (with nulls, NaN, strings, lists and dictionaries) and, from each,
//! seeded mutations of the kinds that real damage and fuzzers produce:
//! truncation, flipped bytes, and length or offset fields overwritten with
//! extreme values. A failure prints the seed and mutation that reproduce it.
//!
//! The fuzz targets' seed corpus and every crash the fuzzer found
//! (`fuzz/corpus/`, `fuzz/crashes/`, see `scripts/fuzz.sh`) are replayed here
//! through the same target functions, and the crash minimizer's shrinking
//! is checked on inputs whose smallest failing part is known.

#[path = "suite/common/mod.rs"]
mod common;
#[path = "../fuzz/src/shrink.rs"]
mod shrink;
#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::builder::{ListBuilder, PrimitiveBuilder, StringDictionaryBuilder};
use arrow_array::types::{Float64Type, Int32Type};
use arrow_array::{ArrayRef, RecordBatch};
use common::*;
use fuseflow::data::files::{BatchReader, FileFormat, write_table};
use fuseflow::ml::model::{CHECKSUM_KEY, Model};
use fuseflow::pipeline::models::model_from_table;

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Held by each test while it reads.
static SERIAL: Mutex<()> = Mutex::new(());

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Rows per batch the readers are asked for.
const BATCH_ROWS: usize = 1024;

/// The most a read may allocate beyond what was live before it: a small
/// multiple of the file, or of one batch budget of these columns, whichever
/// is larger.
fn allowed_peak(file_len: usize) -> usize {
    (16 * file_len).max(16 << 20)
}

/// A table of every kind of column the readers decode.
fn seed_batch(rng: &mut Rng, rows: usize) -> RecordBatch {
    let mut lists = ListBuilder::new(PrimitiveBuilder::<Float64Type>::new());
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for i in 0..rows {
        if i % 7 == 3 {
            lists.append_null();
            dict.append_null();
        } else {
            for _ in 0..(i % 4) {
                lists.values().append_value(rng.unit());
            }
            lists.append(true);
            dict.append_value(["red", "green", "blue"][i % 3]);
        }
    }
    batch(vec![
        ("id", i64_array(&gen_i64(rng, rows))),
        ("x", f64_array(&gen_f64(rng, rows))),
        ("y", f32_array(&gen_f32(rng, rows))),
        ("flag", bool_array(&gen_bool(rng, rows))),
        ("name", str_array(&gen_str(rng, rows))),
        ("list", Arc::new(lists.finish()) as ArrayRef),
        ("colour", Arc::new(dict.finish()) as ArrayRef),
    ])
}

/// What a damage test reads: a data file of one format, or a saved model.
#[derive(Clone, Copy, Debug)]
enum Input {
    File(FileFormat),
    Model,
}

impl Input {
    fn extension(self) -> &'static str {
        match self {
            Input::File(FileFormat::Parquet) => "parquet",
            Input::File(FileFormat::ArrowFile) => "arrow",
            Input::File(FileFormat::ArrowStream) => "arrows",
            Input::File(FileFormat::Csv) => "csv",
            Input::Model => "model.arrow",
        }
    }

    /// The undamaged seed file `seed` written into `dir`: its bytes and,
    /// for data, the rows [`Input::read`] counts in it (CSV holds the flat
    /// columns only).
    fn seed(self, dir: &Path, seed: u64) -> (Vec<u8>, Option<usize>) {
        let path = dir.join(format!("seed-{seed}.{}", self.extension()));
        let format = match self {
            Input::File(format) => format,
            Input::Model => {
                let data = fuseflow::datasets::customers(400 + seed as usize, seed);
                let run = fuseflow::datasets::churn_pipeline(fuseflow::Table::from_batch(data))
                    .run()
                    .unwrap();
                let table = run.output("model").unwrap();
                model_from_table("model", table)
                    .unwrap()
                    .save(&path)
                    .unwrap();
                return (std::fs::read(&path).unwrap(), None);
            }
        };
        let mut rng = Rng::new(seed);
        let rows = 300 + seed as usize % 50;
        let batch = seed_batch(&mut rng, rows);
        let batch = match format {
            FileFormat::Csv => batch.project(&[0, 1, 2, 3, 4]).unwrap(),
            _ => batch,
        };
        let halves = vec![batch.slice(0, 150), batch.slice(150, rows - 150)];
        let table = fuseflow::Table::try_new(batch.schema(), halves).unwrap();
        write_table(&table, &path, format).unwrap();
        (std::fs::read(&path).unwrap(), Some(rows))
    }

    /// Read `path` to the end: what it reads as is the rows of a data file,
    /// the checksum of a model saved again; `Err` with the first error.
    fn read(self, path: &Path) -> fuseflow::Result<String> {
        match self {
            Input::File(format) => {
                let mut rows = 0;
                for batch in BatchReader::open(path, Some(format), BATCH_ROWS)? {
                    rows += batch?.num_rows();
                }
                Ok(rows.to_string())
            }
            Input::Model => {
                let batch = Model::load(path)?.to_batch()?;
                Ok(batch.schema().metadata()[CHECKSUM_KEY].clone())
            }
        }
    }
}

/// One seeded mutation of `bytes`, and its description.
fn mutate(rng: &mut Rng, bytes: &[u8]) -> (Vec<u8>, String) {
    let mut out = bytes.to_vec();
    let at = |rng: &mut Rng, len: usize| rng.below(len.max(1) as u64) as usize;
    match rng.below(5) {
        0 => {
            let len = at(rng, bytes.len());
            out.truncate(len);
            (out, format!("truncated to {len} bytes"))
        }
        1 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let i = at(rng, out.len());
                out[i] ^= 1 << rng.below(8);
            }
            (out, format!("{flips} bits flipped"))
        }
        2 | 3 => {
            // A little-endian length or offset field made extreme.
            let values: [u64; 6] = [
                u64::MAX,
                0x7fff_ffff,
                0xffff_ffff,
                0x8000_0000,
                1 << 40,
                bytes.len() as u64 * 1000,
            ];
            let value = *rng.pick(&values);
            let width = *rng.pick(&[4usize, 8]);
            let i = at(rng, out.len().saturating_sub(width));
            let end = (i + width).min(out.len());
            out[i..end].copy_from_slice(&value.to_le_bytes()[..end - i]);
            (out, format!("{width} bytes at {i} set to {value:#x}"))
        }
        _ => {
            // A stretch of the file repeated over another (swapped pages).
            let len = 1 + at(rng, 64);
            let (from, to) = (at(rng, out.len()), at(rng, out.len()));
            let len = len.min(out.len() - from).min(out.len() - to);
            let copy = out[from..from + len].to_vec();
            out[to..to + len].copy_from_slice(&copy);
            (out, format!("{len} bytes from {from} copied to {to}"))
        }
    }
}

/// What reading one damaged file did.
struct Outcome {
    panicked: Option<String>,
    error: Option<String>,
    /// What the file read as, when it did.
    read_as: Option<String>,
    peak: usize,
}

fn try_read(path: &Path, input: Input) -> Outcome {
    // A panic is counted below; the default hook's backtrace would count
    // against the read's memory.
    std::panic::set_hook(Box::new(|_| {}));
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = catch_unwind(AssertUnwindSafe(|| input.read(path)));
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    drop(std::panic::take_hook());
    match result {
        Ok(Ok(read_as)) => Outcome {
            panicked: None,
            error: None,
            read_as: Some(read_as),
            peak,
        },
        Ok(Err(e)) => Outcome {
            panicked: None,
            error: Some(e.to_string()),
            read_as: None,
            peak,
        },
        Err(panic) => Outcome {
            panicked: Some(panic_text(&panic)),
            error: None,
            read_as: None,
            peak,
        },
    }
}

/// A caught panic's message (`&str` or `String` payloads).
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    (panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// `mutations` damaged files from each seed of `input`: none panics, each
/// error names the file, and no read allocates beyond [`allowed_peak`].
fn refuses_damaged(input: Input, mutations: usize) {
    // One read at a time, so that each peak is its own.
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let (mut refused, mut read) = (0, 0);
    for seed in 0..4u64 {
        let (bytes, rows) = input.seed(dir.path(), seed);
        let seed_path = dir
            .path()
            .join(format!("seed-{seed}.{}", input.extension()));
        let undamaged = input
            .read(&seed_path)
            .expect("the undamaged seed file reads");
        if let Some(rows) = rows {
            assert_eq!(undamaged, rows.to_string(), "{input:?} seed {seed}");
        }
        let mut rng = Rng::new(1000 + seed);
        for m in 0..mutations {
            let (damaged, how) = mutate(&mut rng, &bytes);
            let path = dir
                .path()
                .join(format!("damaged-{seed}-{m}.{}", input.extension()));
            std::fs::write(&path, &damaged).unwrap();
            if std::env::var_os("HOSTILE_TRACE").is_some() {
                eprintln!("seed {seed}, mutation {m} ({how})");
            }
            let outcome = try_read(&path, input);
            let case = format!("seed {seed}, mutation {m} ({how})");
            if let Some(panic) = outcome.panicked {
                problems.push(format!("{case}: panicked: {panic}"));
            }
            if let Some(error) = &outcome.error {
                refused += 1;
                if !error.contains(&path.display().to_string()) {
                    problems.push(format!("{case}: the error does not name the file: {error}"));
                }
            } else {
                read += 1;
            }
            // A model carries a checksum: one that loads is the one saved.
            if matches!(input, Input::Model)
                && outcome.read_as.as_ref().is_some_and(|r| *r != undamaged)
            {
                problems.push(format!("{case}: read as a different model"));
            }
            if outcome.peak > allowed_peak(damaged.len()) {
                problems.push(format!(
                    "{case}: allocated {} bytes for a {}-byte file",
                    outcome.peak,
                    damaged.len()
                ));
            }
        }
    }
    let read_as = match input {
        Input::Model => "read as the model saved (damage in bytes that carry nothing)",
        Input::File(_) => "read (damage in values only)",
    };
    eprintln!(
        "{input:?}: {} damaged files: {refused} refused, {read} {read_as}, {} problems",
        4 * mutations,
        problems.len()
    );
    assert!(problems.is_empty(), "{input:?}:\n{}", problems.join("\n"));
}

#[test]
fn damaged_arrow_ipc_files_are_refused() {
    refuses_damaged(Input::File(FileFormat::ArrowFile), 150);
}

#[test]
fn damaged_arrow_ipc_streams_are_refused() {
    refuses_damaged(Input::File(FileFormat::ArrowStream), 150);
}

#[test]
fn damaged_parquet_files_are_refused() {
    refuses_damaged(Input::File(FileFormat::Parquet), 150);
}

#[test]
fn damaged_csv_files_are_refused() {
    refuses_damaged(Input::File(FileFormat::Csv), 150);
}

#[test]
fn damaged_model_files_are_refused() {
    refuses_damaged(Input::Model, 150);
}

/// Every file of the fuzz corpus and of the crashes the fuzzer kept, run
/// through its target: none panics (each target checks its own properties
/// too, such as errors naming the file).
#[test]
fn the_fuzz_corpus_and_every_kept_crash_replay_cleanly() {
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut problems = Vec::new();
    for target in targets::TARGETS {
        let mut inputs = 0;
        for dir in ["corpus", "crashes"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target.name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                inputs += 1;
                std::panic::set_hook(Box::new(|_| {}));
                let result = catch_unwind(AssertUnwindSafe(|| (target.run)(&bytes)));
                drop(std::panic::take_hook());
                if let Err(panic) = result {
                    problems.push(format!("{}: {}", path.display(), panic_text(&panic)));
                }
            }
        }
        assert!(
            inputs > 0,
            "no seed corpus for the fuzz target {}",
            target.name
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A CSV file with a header of thousands of columns (a few kilobytes) is
/// read within the same bound: arrow's decoder sizes its buffers by rows x
/// columns, so the reader cuts its batches by cells, not rows alone.
#[test]
fn a_csv_file_with_thousands_of_columns_reads_in_bounded_memory() {
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.csv");
    let columns = 3000;
    let header: Vec<String> = (0..columns).map(|i| format!("c{i}")).collect();
    let row: Vec<String> = (0..columns).map(|i| i.to_string()).collect();
    let text = format!(
        "{}\n{}\n{}\n",
        header.join(","),
        row.join(","),
        row.join(",")
    );
    std::fs::write(&path, &text).unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut rows = 0;
    for batch in BatchReader::open(&path, Some(FileFormat::Csv), 131_072).unwrap() {
        let batch = batch.unwrap();
        assert_eq!(batch.num_columns(), columns);
        rows += batch.num_rows();
    }
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    assert_eq!(rows, 2);
    assert!(
        peak <= allowed_peak(text.len()),
        "allocated {peak} bytes for a {}-byte file",
        text.len()
    );
}

/// Expressions of every form the parser reads: the expression target's seeds.
const SEED_EXPRESSIONS: &[&str] = &[
    "clip(fill_null(x, 0.0), -5.0, 5.0)",
    "sigmoid(0.1 + 0.2 * a - b / 3)",
    "if_else(is_null(a), 1, cast(b, f64))",
    "col(\"a name\") ** 2 >= 3 and not (c < 1 or d != 2)",
    "log1p(abs(x)) / sqrt(y) + exp(-z) - log(w)",
    "minimum(a, maximum(b, 1e-3)) == pow(c, 2.5)",
    "-x <= inf or y > -1.5e300 or is_null(z) or true",
];

/// Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/`): the seed
/// files above (seed 0 of each format, and a model), the example specs and
/// data, and [`SEED_EXPRESSIONS`]. Run it after a change of a file format or
/// of the spec or expression syntax:
/// `cargo test --release --test hostile_input -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus/; run by hand"]
fn write_the_fuzz_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = |target: &str| {
        let dir = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    for spec in ["prep.toml", "train.toml", "sweep.toml"] {
        std::fs::copy(
            root.join("examples").join(spec),
            dir("spec_file").join(spec),
        )
        .unwrap();
    }
    for (i, text) in SEED_EXPRESSIONS.iter().enumerate() {
        std::fs::write(dir("expression").join(format!("{i}.txt")), text).unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    for (target, input) in [
        ("ipc_file", Input::File(FileFormat::ArrowFile)),
        ("ipc_stream", Input::File(FileFormat::ArrowStream)),
        ("parquet", Input::File(FileFormat::Parquet)),
        ("csv", Input::File(FileFormat::Csv)),
        ("model", Input::Model),
    ] {
        let (bytes, _) = input.seed(scratch.path(), 0);
        std::fs::write(
            dir(target).join(format!("seed.{}", input.extension())),
            bytes,
        )
        .unwrap();
    }
    std::fs::copy(
        root.join("examples/data/customers.csv"),
        dir("csv").join("customers.csv"),
    )
    .unwrap();
}

/// The minimizer's shrinking finds the smallest failing part of an input:
/// a planted token alone, two tokens far apart with what lies between them
/// removed, and nothing left when everything fails; with no time left it
/// returns the input as it is.
#[test]
fn shrinking_keeps_only_what_makes_an_input_fail() {
    use std::time::{Duration, Instant};

    let mut rng = fuseflow::data::Rng::new(3);
    let noise: Vec<u8> = (0..5_000)
        .map(|_| (rng.next_u64() % 64) as u8 + b'a')
        .collect();
    let later = Instant::now() + Duration::from_secs(60);
    let planted = [&noise[..1_234], b"BUG", &noise[1_234..]].concat();
    let has = |data: &[u8], token: &[u8]| data.windows(token.len()).any(|w| w == token);
    let mut runs = 0;
    let shrunk = shrink::shrink(
        planted.clone(),
        |d| {
            runs += 1;
            has(d, b"BUG")
        },
        later,
    );
    assert_eq!(shrunk, b"BUG");
    assert!(runs < 400, "{runs} runs for a 5 KB input");

    let apart = [b"<".as_slice(), &noise[..4_000], b">", &noise[4_000..]].concat();
    let both = |d: &[u8]| has(d, b"<") && has(d, b">");
    assert_eq!(shrink::shrink(apart, both, later), b"<>");
    assert!(shrink::shrink(noise.clone(), |_| true, later).is_empty());
    assert_eq!(
        shrink::shrink(planted.clone(), |_| true, Instant::now()),
        planted
    );
}

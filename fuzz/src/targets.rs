//! The fuzz targets: each takes arbitrary bytes and checks what fuseflow
//! promises for any input, whatever it is:
//! - no panic escapes (a decoder's panic is contained and reported as an
//!   error; any other is a bug);
//! - an error names the file it is about;
//! - what parses prints back to text that parses to the same thing.
//!
//! Memory and time are bounded by the fuzzer (`scripts/fuzz.sh` runs it
//! with a limit on each input's RSS and run time).
//!
//! This file is also compiled into fuseflow's test suite, which replays the
//! corpus and every minimized crash through these functions.

use std::path::{Path, PathBuf};

use fuseflow::data::files::{BatchReader, FileFormat};

/// A fuzz target: its name (the binary's, and its corpus directory's) and
/// the function that takes one input.
pub struct Target {
    /// The binary's name and the directory of its corpus and crashes.
    pub name: &'static str,
    /// Runs one input; panics on a finding.
    pub run: fn(&[u8]),
}

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "spec_file",
        run: spec_file,
    },
    Target {
        name: "expression",
        run: expression,
    },
    Target {
        name: "ipc_file",
        run: ipc_file,
    },
    Target {
        name: "ipc_stream",
        run: ipc_stream,
    },
    Target {
        name: "parquet",
        run: parquet,
    },
    Target {
        name: "csv",
        run: csv,
    },
    Target {
        name: "model",
        run: model,
    },
];

/// A spec file's text: parsed (a sweep compiled) or refused naming the file.
pub fn spec_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzzed-spec.toml");
    if let Err(e) = fuseflow::pipeline::spec::parse(text, path) {
        let message = e.to_string();
        assert!(!message.is_empty());
    }
}

/// Expression text: parsed, then printed and parsed again to the same text.
pub fn expression(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = fuseflow::ir::parse_expr(text) else {
        return;
    };
    let printed = expr.to_string();
    let again = match fuseflow::ir::parse_expr(&printed) {
        Ok(again) => again,
        // Printing parenthesizes every operator, so an expression within
        // the parser's depth limit can print beyond it.
        Err(e) if e.to_string().contains("nested too deeply") => return,
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    };
    assert_eq!(again.to_string(), printed, "{text:?} does not print stably");
}

/// An Arrow IPC file.
pub fn ipc_file(data: &[u8]) {
    read_file(data, FileFormat::ArrowFile);
}

/// An Arrow IPC stream.
pub fn ipc_stream(data: &[u8]) {
    read_file(data, FileFormat::ArrowStream);
}

/// A Parquet file.
pub fn parquet(data: &[u8]) {
    read_file(data, FileFormat::Parquet);
}

/// A CSV file with a header.
pub fn csv(data: &[u8]) {
    read_file(data, FileFormat::Csv);
}

/// A saved model (an Arrow IPC file with a model's description).
pub fn model(data: &[u8]) {
    let path = scratch_file("model.arrow", data);
    if let Err(e) = fuseflow::ml::model::Model::load(&path) {
        assert_names(&e, &path);
    }
}

/// Read `data` as a file of `format` to its end, in small batches.
fn read_file(data: &[u8], format: FileFormat) {
    let name = match format {
        FileFormat::ArrowFile => "file.arrow",
        FileFormat::ArrowStream => "stream.arrows",
        FileFormat::Parquet => "file.parquet",
        FileFormat::Csv => "file.csv",
    };
    let path = scratch_file(name, data);
    let read = BatchReader::open(&path, Some(format), 1024)
        .and_then(|mut reader| reader.try_for_each(|batch| batch.map(drop)));
    if let Err(e) = read {
        assert_names(&e, &path);
    }
}

/// `data` written to this process's scratch file `name` (the readers take
/// paths, as users give them).
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("fuseflow-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("the scratch file can be written");
    path
}

fn assert_names(error: &fuseflow::Error, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the error does not name the file: {message}"
    );
}

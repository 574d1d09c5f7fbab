//! The crate's rooms import only the rooms below them: this test reads every
//! source file and fails on an import that runs upward. The order is the one
//! written in `docs/architecture.md` ("Layers"); change both together.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The top-level modules from the floor up: each may import only those
/// before it.
const LAYERS: &[&str] = &[
    "error",
    "ir",
    "data",
    "backend",
    "ml",
    "cache",
    "track",
    "pipeline",
    "plan",
    "workspace",
    "exec",
    "datasets",
    "serve",
];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::`, comments left out.
fn imported_modules(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    let ident = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b, c::{Y, Z}}`: the names at the group's top level.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        names.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(ident(rest));
        }
    }
    names.retain(|n| !n.is_empty() && n != "self");
    names
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    files.sort();
    let rank = |module: &str| LAYERS.iter().position(|l| *l == module);
    let mut upward = String::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let top = relative.components().next().expect("a first component");
        let top = top.as_os_str().to_string_lossy();
        let module = top.trim_end_matches(".rs");
        if module == "lib" || module == "bin" {
            continue;
        }
        let own = rank(module).unwrap_or_else(|| {
            panic!(
                "src/{module} is not in LAYERS; place it in the order (and in docs/architecture.md)"
            )
        });
        let source = std::fs::read_to_string(file).expect("a readable source file");
        for imported in imported_modules(&source) {
            match rank(&imported) {
                Some(r) if r > own => {
                    let _ = writeln!(
                        upward,
                        "src/{}: `{module}` imports `{imported}`, which is above it",
                        relative.display()
                    );
                }
                Some(_) => {}
                None => {
                    let _ = writeln!(
                        upward,
                        "src/{}: imports `crate::{imported}`, which is not in LAYERS",
                        relative.display()
                    );
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run upward (the order: {}):\n{upward}\
         move the name to the lower room it belongs to, or change the order here and in docs/architecture.md",
        LAYERS.join(" < ")
    );
}

#[test]
fn the_import_scanner_reads_groups_and_skips_comments() {
    let names = imported_modules(
        "use crate::{data::Table, ir::{col, lit}, error};\n\
         // use crate::exec::X;\n\
         let x = crate::backend::cpu();\n",
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["backend", "data", "error", "ir"]);
}

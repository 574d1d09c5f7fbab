//! The integration tests, in one binary so that the suite links once (each
//! test binary links the whole crate with wgpu, cudarc, arrow, parquet and
//! SQLite, and on a 2-core machine linking ~25 of them cost more than
//! compiling them). Each module is one area, named as its file; run one with
//! a filter on its path, e.g. `cargo test --test suite -- planner::`.
//! Bugs that were fixed each have a test in `regressions`, named after the bug.
//!
//! Everything here shares one process: tests must not change process-wide
//! state (environment variables, the working directory, signal dispositions).
//! A test that needs a process of its own re-runs this binary on itself
//! (`common::test_name` gives the `--exact` filter) or lives in another
//! binary (`tests/peak_rss.rs`, and why).

mod common;

mod backend_conformance;
mod batch_score;
mod cache_store;
mod cpu_kernel;
mod cuda_backend;
mod cuda_kernels;
mod dashboard;
mod devices;
mod expr_parse;
mod fault_loops;
mod io_formats;
mod layering;
mod metrics;
mod mlp;
mod models;
mod numeric_edges;
mod params;
mod parity;
mod pipeline_graph;
mod planner;
mod prep_steps;
mod regressions;
mod reuse;
mod row_group_pruning;
mod run_store;
mod scheduler;
mod serve;
mod serve_live;
mod siblings;
mod spec_files;
mod sweep;
mod train_on_device;
mod wgpu_backend;
mod workspace_processes;

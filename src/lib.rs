//! fuseflow: a GPU-native, in-process dataflow engine for machine-learning
//! pipelines over Apache Arrow.
//!
//! A pipeline is a DAG of steps (data preparation, training, evaluation,
//! scoring) that you build in Rust ([`Pipeline`]) or load from a TOML spec
//! file ([`pipeline::spec`]). fuseflow validates it, plans it (chains of
//! row-local steps fuse into one kernel over the Arrow buffers; each step is
//! placed on the CPU, a CUDA GPU or a wgpu GPU), runs independent steps at
//! the same time, and, with a [`Workspace`], caches every output by content
//! hash so that a re-run computes only what changed, and records every run.
//!
//! # A quick tour
//!
//! ```
//! use fuseflow::ir::col;
//! use fuseflow::pipeline::io::MemorySource;
//! use fuseflow::pipeline::prep::{Derive, FillNull, FillValue, FitStats, Scale, ScaleMethod};
//! use fuseflow::{Pipeline, Table, datasets};
//!
//! # fn main() -> fuseflow::Result<()> {
//! // 10,000 rows of a synthetic customer table (with nulls), in memory.
//! let data = Table::from_batch(datasets::customers(10_000, 7));
//!
//! let mut p = Pipeline::new("prep");
//! p.add("raw", MemorySource::new(data));
//! p.add("features", Derive::new([("income_log", col("income").log1p())]))
//!     .input("data", "raw");
//! p.add("stats", FitStats::new(["age", "income_log"])).input("data", "features");
//! p.add("filled", FillNull::new(["age", "income_log"], FillValue::Mean))
//!     .inputs(["features", "stats"]);
//! p.add("scaled", Scale::new(ScaleMethod::ZScore)).inputs(["filled", "stats"]);
//!
//! // Validates first (names, references, cycles, schemas), then plans and runs:
//! // derive -> fill_null -> scale run as one fused kernel.
//! let run = p.run()?;
//! assert_eq!(run.output("scaled")?.num_rows(), 10_000);
//! // Every step's output is there, fused or not.
//! assert_eq!(run.output("stats")?.num_rows(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! With a workspace, the same pipeline caches and records:
//! `p.run_with(&RunOptions::default().with_workspace(Arc::new(Workspace::open(dir)?)))`.
//!
//! # How a run flows
//!
//! ```text
//! Pipeline (builder or TOML spec)        pipeline::{Pipeline, spec}
//!    │  validate: names, references, cycles, schemas
//!    ▼
//! Graph ──lower, fuse, place──▶ PhysicalPlan    plan (what `fuseflow explain` prints)
//!    │
//!    ▼
//! Scheduler: ready steps run concurrently       exec
//!    │  with a workspace: key each step by content hash; reuse or run + store
//!    │  (cache: objects by hash; track: runs in SQLite)
//!    ▼
//! Steps over Arrow tables or streams             pipeline::{io, prep, models, metrics}
//!    │  row-local work as typed expressions      ir
//!    ▼
//! Devices: the Backend trait on CPU, wgpu, CUDA  backend
//! ```
//!
//! # The rooms
//!
//! From the floor up (each imports only those below it; a test checks):
//! [`error`] · [`ir`] (expressions, dtypes) · [`data`] (tables, streams,
//! files, content hashes) · [`backend`] (devices) · [`ml`] (model
//! algorithms) · [`cache`] (keys, the object store) · [`track`] (run
//! history) · [`pipeline`] (steps, graphs, specs) · [`plan`] (lowering,
//! fusion, placement) · [`workspace`] · [`exec`] (running) ·
//! [`datasets`] (example data).
//!
//! Start with [`Pipeline`], the [`Step`] trait (write your own step),
//! [`RunOptions`] and [`RunOutput`]; the CLI (`fuseflow run`, `explain`,
//! `runs`, `show`, `output`, `why`, `score`, `cache`) drives the same API.
//! To run on your own device, implement [`backend::Backend`] and wrap it in a
//! [`backend::Device`].
//!
//! The engine's inner rooms (the CPU, CUDA and wgpu backends' kernels and
//! code generation, the trainers' design matrices and device passes, the
//! planner's lowering, fusion and placement functions) are crate-private: the
//! `internals` feature makes them public for fuseflow's own tests and
//! benchmarks, and they are not a stable API.
#![deny(missing_docs)]

/// Declares a module that is part of the engine, not of its API: public with
/// the `internals` feature (which fuseflow's own tests and benchmarks turn
/// on), crate-private otherwise. Defined before the modules, so that it is in
/// scope in all of them.
macro_rules! internal_mod {
    ($name:ident) => {
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        pub(crate) mod $name;
    };
}

pub mod backend;
pub mod cache;
pub mod data;
pub mod datasets;
pub mod error;
pub mod exec;
pub mod ir;
pub mod ml;
pub mod pipeline;
pub mod plan;
pub mod serve;
pub mod track;
pub mod workspace;

pub use data::Table;
pub use error::{DeviceFailure, Error, Result};
pub use exec::{CachePolicy, CacheUse, Rerun, RunOptions, RunOutput, StepReport};
pub use pipeline::{Pipeline, Step, StepContext};
pub use workspace::Workspace;

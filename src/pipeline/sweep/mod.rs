//! Variant sweeps: a spec's `[sweep]` table declares alternatives, and the
//! cartesian product of them compiles into one pipeline in which each
//! distinct step instance appears once.
//!
//! ```toml
//! [sweep.params]
//! l2 = [0.1, 1.0, 10.0]                       # a list of values
//! threshold = { from = 0.2, to = 0.8, step = 0.3 }   # or a range
//!
//! [sweep.steps.scaled]                        # alternatives for step 'scaled'
//! zscore = { method = "zscore" }              # keys merged over the step's
//! minmax = { method = "minmax" }
//!
//! [sweep]
//! zip = [["l2", "threshold"]]                 # dimensions that vary together
//! exclude = [{ scaled = "minmax", l2 = 10.0 }]   # assignments left out
//! ```
//!
//! Each dimension is a swept parameter (its values typed and checked as
//! `--param` values are) or a step with alternatives (named; an alternative
//! that sets `kind` replaces the step's keys but its name and inputs, one
//! that does not is merged over them). Dimensions are ordered as declared,
//! parameters first. A variant is one value of every dimension, named by
//! its assignment (`scaled=minmax,l2=10`).
//!
//! Compiling builds every variant's pipeline and keeps one instance of each
//! distinct step: same name, kind and parameters (what its cache key
//! holds), same device and reuse, same input instances. A step with one instance keeps its
//! name; the instances of one that varies are named by the part of the
//! assignment they share (`model[l2=10_0,scaled=minmax]`, a `.` written
//! `_`, since it separates a step from its output in references). Shared prefixes
//! run once, independent variants concurrently, and a failing step stops
//! only the variants that read it (see [`Variant`]).
//!
//! From Rust, [`Sweep`] declares dimensions and builds each variant's
//! pipeline with a function of its [`Assignment`]; the variants are merged
//! the same way.

mod builder;
mod compile;
mod decl;
mod merge;

pub(crate) use compile::{StepTable, compile};
pub(crate) use decl::SweepDecl;

pub use crate::track::Variant;
pub use builder::{Assignment, Sweep};

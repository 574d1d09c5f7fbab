//! Pipelines: steps, their wiring, and the built-in step kinds.
//!
//! - [`Pipeline`]: the builder; [`Pipeline::validate`] turns it into a [`Graph`].
//! - [`Step`]: the trait every step implements; add your own.
//! - [`Table`]: the chunked Arrow data that flows between steps; [`Stream`]:
//!   data read batch by batch (a file), which steps that can scan instead of
//!   holding it whole.
//! - [`io`]: read and write files; [`prep`]: data preparation.
//! - [`spec`]: pipelines described in TOML files.

pub mod graph;
pub mod io;
pub mod metrics;
pub mod models;
pub mod prep;
pub mod spec;
pub mod step;

pub use crate::data::{Stream, Table};
pub use graph::{Graph, Pipeline, StepRef};
pub use step::{OpKind, RowLocal, Source, SourceContent, SourceFile, Step, StepContext};

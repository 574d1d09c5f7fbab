//! Pipelines: steps, their wiring, and the built-in step kinds.
//!
//! - [`Pipeline`]: the builder; [`Pipeline::validate`] turns it into a [`Graph`].
//! - [`Step`]: the trait every step implements; add your own.
//! - [`Table`]: the chunked Arrow data that flows between steps; [`Stream`]:
//!   data read batch by batch (a file), which steps that can scan instead of
//!   holding it whole.
//! - The built-in steps live one per file in `steps/`, and are used through
//!   [`io`] (read and write files), [`prep`] (data preparation), [`models`]
//!   (training and scoring) and [`metrics`] (evaluation).
//! - [`spec`]: pipelines described in TOML files.
//! - [`pruning`]: a step's row condition as a predicate on Parquet row-group
//!   statistics, for sources to skip the groups no row of which satisfies it.

pub mod clone;
pub mod graph;
pub mod params;
pub mod pruning;
pub mod spec;
pub mod step;
mod step_spec;
mod steps;
pub mod sweep;

pub use crate::data::{Stream, Table};
pub use graph::{Graph, Pipeline, StepRef};
pub use step::{
    OpKind, RowLocal, Source, SourceContent, SourceFile, Step, StepContext, TrainsTogether,
};

pub mod io {
    //! Data movement steps: read and write Parquet, Arrow IPC (file and stream)
    //! and CSV, and in-memory tables.
    //!
    //! Files are read in chunks of [`DEFAULT_BATCH_ROWS`](crate::data::files::DEFAULT_BATCH_ROWS)
    //! rows, so downstream steps see a table of many record batches, never one
    //! giant allocation. Writes go to a temporary file beside the target and are
    //! renamed into place, so a failed write never leaves a truncated file behind.

    pub use super::steps::{MemorySource, Read, Write, source_stream};
}

pub mod prep {
    //! Data-preparation steps.
    //!
    //! Row-local steps ([`Derive`], [`Scale`], [`FillNull`], [`Encode`] with index
    //! encoding, [`Filter`]) build expressions and run them as one fused kernel per
    //! chunk. Steps that learn from data are split in two: a fit step computes a
    //! small Arrow table ([`FitStats`], [`FitCategories`]), and an apply step reads
    //! it, so the statistics of the training split can be applied to any other data.

    pub(crate) use super::steps::row_local::{apply_batch, with_columns_schema};
    pub use super::steps::{
        Derive, Encode, EncodeMethod, FillNull, FillValue, Filter, FitCategories, FitStats,
        MAX_INDEX_LINEAGE, Rename, Scale, ScaleMethod, Select, Split, UnknownCategory,
    };
}

pub mod models {
    //! Training and scoring steps.
    //!
    //! A training step takes a prepared table and outputs the model as a one-batch
    //! Arrow table ([`Model::to_batch`](crate::ml::model::Model::to_batch)); the
    //! model keeps the lineage of its feature columns, so [`Score`] applies the
    //! training-time preparation to raw data by itself.

    pub use super::steps::{Score, Task, TrainLinear, TrainLogistic, TrainMlp, model_from_table};
}

pub mod metrics {
    //! The evaluation step: metrics of scored data against its label.

    pub use super::steps::Evaluate;
}

//! The built-in steps, one per file, each with its spec form.
//!
//! Data movement: [`Read`] (and [`source_stream`], a file it reads as a
//! stream), [`Write`], [`MemorySource`]. Preparation: [`Select`], [`Rename`],
//! [`Filter`], [`Derive`], [`FitStats`], [`Scale`], [`FillNull`],
//! [`FitCategories`], [`Encode`], [`Split`]. Models: [`TrainLinear`],
//! [`TrainLogistic`], [`TrainMlp`], [`Score`]; metrics: [`Evaluate`].
//! What several steps share: `row_local.rs` (expressions run as one kernel),
//! `fitted.rs` (reading fitted tables), `training.rs` (features, the model
//! table, device placement), `ports.rs` (`step_io!`) and `params.rs`
//! (column-name lists).

pub(crate) mod params;
pub(crate) mod ports;
pub(crate) mod row_local;
pub(crate) mod training;

mod derive;
mod encode;
mod evaluate;
mod fill_null;
mod filter;
mod fit_categories;
mod fit_stats;
mod fitted;
mod memory;
mod read;
mod rename;
mod scale;
mod score;
mod select;
mod split;
mod train_linear;
mod train_logistic;
mod train_mlp;
mod write;

pub use derive::Derive;
pub use encode::{Encode, EncodeMethod, MAX_INDEX_LINEAGE, UnknownCategory};
pub use evaluate::Evaluate;
pub use fill_null::{FillNull, FillValue};
pub use filter::Filter;
pub use fit_categories::FitCategories;
pub use fit_stats::FitStats;
pub use memory::MemorySource;
pub use read::{Read, source_stream};
pub use rename::Rename;
pub use scale::{Scale, ScaleMethod};
pub use score::{Score, model_from_table};
pub use select::Select;
pub use split::Split;
pub use train_linear::TrainLinear;
pub use train_logistic::TrainLogistic;
pub use train_mlp::{Task, TrainMlp};
pub use write::Write;

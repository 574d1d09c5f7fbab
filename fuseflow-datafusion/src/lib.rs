//! fuseflow's preparation and statistics inside [DataFusion](datafusion):
//!
//! - [`FusedProjection`]: a fuseflow expression (a chain of row-local
//!   operations, fitted statistics bound as constants) as one DataFusion
//!   scalar UDF, evaluated in one pass by fuseflow's fused CPU kernel, so a
//!   DataFusion plan computes exactly what an in-process fuseflow run does.
//! - [`FitStats`]: `fit_stats` as an aggregate UDF whose partial state is
//!   fuseflow's own (count, nulls, NaNs, mean, M2, min, max), merged by the
//!   same Chan update fuseflow merges blocks with, so partitions compute in
//!   parallel and merge exactly.
//!
//! ```
//! use datafusion::prelude::*;
//! use fuseflow::ir::parse_expr;
//! use fuseflow_datafusion::{FitStats, FusedProjection};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = SessionContext::new();
//! let df = ctx.read_batch(arrow_array::record_batch!(("x", Float64, [1.0, f64::NAN, 3.0]))?)?;
//! let scaled = FusedProjection::new("scaled", df.schema().as_arrow(), &parse_expr("clip(x, 0.0, 2.0) * 10.0")?)?;
//! let rows = df.clone().select(vec![scaled.into_expr()])?.collect().await?;
//! let stats = df.aggregate(vec![], vec![FitStats::udaf().call(vec![col("x")]).alias("x")])?;
//! # let _ = (rows, stats.collect().await?);
//! # Ok(())
//! # }
//! ```
//!
//! Bit for bit: a projection's values are the in-process run's on any
//! partitioning (rows are independent). Statistics are the in-process
//! run's to the last bit when one partition feeds the aggregate batches
//! whose lengths are multiples of fuseflow's block (8,192 rows), since then
//! the blocks and their merge order are the same; otherwise the merge order
//! differs and mean and M2 agree within a relative 1e-12 (count, nulls,
//! NaNs, min and max are always exact).
#![deny(missing_docs)]

mod fit_stats;
mod projection;

pub use fit_stats::FitStats;
pub use projection::FusedProjection;

/// A fuseflow error as DataFusion's, kept as its cause.
fn external(e: fuseflow::Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

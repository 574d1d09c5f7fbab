//! The [`Step`] trait: what every step, built-in or user-written, implements.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use arrow_schema::SchemaRef;

use crate::backend::{Device, Notes};
use crate::data::ContentHash;
use crate::data::files::FileFormat;
use crate::data::{Stream, Table};
use crate::error::Result;
use crate::ir::Expr;

/// Everything a step learns about the run it is part of.
#[derive(Clone, Copy, Debug)]
pub struct StepContext<'a> {
    /// The step's name in the pipeline; errors should name it.
    pub name: &'a str,
    /// The device placed for the step's compute (fused kernels, statistics,
    /// scoring); steps that do no numeric work ignore it.
    pub device: &'a Device,
    /// Where the step leaves notes for its run record (a fallback to the CPU).
    pub notes: &'a Notes,
}

impl<'a> StepContext<'a> {
    /// A context for running `name` on the CPU, its notes dropped.
    pub fn new(name: &'a str) -> Self {
        static CPU: OnceLock<Device> = OnceLock::new();
        static DROPPED: OnceLock<Notes> = OnceLock::new();
        StepContext {
            name,
            device: CPU.get_or_init(Device::cpu),
            notes: DROPPED.get_or_init(Notes::default),
        }
    }

    /// The same context on `device`, with notes going to `notes`.
    pub fn on(self, device: &'a Device, notes: &'a Notes) -> Self {
        StepContext {
            device,
            notes,
            ..self
        }
    }
}

/// A unit of work in a pipeline: named inputs in, named outputs out.
///
/// Implement this trait to add your own step; it then validates, schedules and
/// reports like the built-in ones.
///
/// ```
/// use fuseflow::pipeline::{Step, StepContext, Table};
/// use fuseflow::Result;
/// use arrow_schema::SchemaRef;
///
/// /// Keeps the first `n` rows.
/// #[derive(Debug)]
/// struct Head(usize);
///
/// impl Step for Head {
///     fn kind(&self) -> &str { "head" }
///     fn inputs(&self) -> &[&str] { &["data"] }
///     fn outputs(&self) -> &[&str] { &["out"] }
///     fn params(&self) -> String { format!("n={}", self.0) }
///     fn output_schemas(&self, _: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
///         Ok(vec![inputs[0].clone()])
///     }
///     fn run(&self, _: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
///         let batch = inputs[0].concat()?;
///         Ok(vec![Table::from_batch(batch.slice(0, self.0.min(batch.num_rows())))])
///     }
/// }
/// ```
pub trait Step: Send + Sync + fmt::Debug {
    /// The step kind, e.g. `"scale"`; the same for every instance of a type.
    fn kind(&self) -> &str;

    /// Names of the input ports, in the order `run` receives them.
    fn inputs(&self) -> &[&str];

    /// Names of the output ports, in the order `run` returns them.
    fn outputs(&self) -> &[&str];

    /// The parameters as one line of text, shown by `explain`.
    fn params(&self) -> String;

    /// The schema of each output given the schema of each input, checked before
    /// anything runs.
    ///
    /// # Errors
    /// [`Error::Schema`](crate::Error::Schema) naming the step and column when
    /// an input lacks a column or has the wrong type.
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>>;

    /// Whether the output schemas are only known after running (e.g. one-hot
    /// columns named after fitted categories). Steps downstream of such a step
    /// are schema-checked when their inputs exist rather than before the run.
    fn schema_depends_on_data(&self) -> bool {
        false
    }

    /// Compute the outputs.
    ///
    /// # Errors
    /// Any [`Error`](crate::Error); the executor attributes it to the step.
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>>;

    /// Whether the step can take its data input (the first) as a stream of
    /// batches with bounded memory, in [`Step::run_stream`]: a fit that
    /// merges partial statistics, a writer. Then a fused chain before it
    /// runs batch by batch into it, and a file it reads is scanned rather
    /// than held whole. The default (`false`) says the step needs its whole
    /// input as a table.
    fn streams_input(&self) -> bool {
        false
    }

    /// Compute the outputs from the data input as a stream and the other
    /// inputs (`side`) as tables; only called on steps that
    /// [stream their input](Step::streams_input). The default collects the
    /// stream and calls [`Step::run`].
    ///
    /// # Errors
    /// As [`Step::run`], and a failure to read the stream.
    fn run_stream(&self, ctx: StepContext, data: &Stream, side: &[Table]) -> Result<Vec<Table>> {
        let inputs: Vec<Table> = std::iter::once(data.collect())
            .chain(side.iter().cloned().map(Ok))
            .collect::<Result<_>>()?;
        self.run(ctx, &inputs)
    }

    /// The columns of its data input the step reads, when it reads only
    /// some (a fit of named columns): a source that can skip columns
    /// (Parquet) then decodes only those for it, and the others may come as
    /// nulls. `None` (the default): every column.
    fn columns_read(&self) -> Option<Vec<String>> {
        None
    }

    /// A boolean expression over the data input (the first) that every row
    /// the outputs depend on satisfies, when there is one (a filter's
    /// predicate): the outputs must be the same whether or not the input
    /// holds the rows where it is false or null. A source with row-group
    /// statistics (Parquet) then skips the row groups in which no row can
    /// satisfy it ([`pruning`](crate::pipeline::pruning)), and the step's
    /// notes say how many; the step still gets whole row groups and must
    /// apply the condition itself. `None` (the default): every row matters.
    fn row_condition(&self) -> Option<Expr> {
        None
    }

    /// The version of the step's code, part of its cache key: bump it when the
    /// step computes something different from the same inputs and parameters,
    /// so that outputs cached by the old code are not reused.
    fn code_version(&self) -> u32 {
        1
    }

    /// The data this step reads from outside the pipeline (files, in-memory
    /// tables), identified by content; part of the cache key, so that a step
    /// re-runs when its source changes even if its parameters did not.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) naming a source that cannot be read.
    fn sources(&self) -> Result<Vec<Source>> {
        Ok(Vec::new())
    }

    /// How to read the step's (one) output again from the file it came
    /// from, for a step that only reads a file: a workspace then records
    /// this reference instead of storing a copy of the file's data, and
    /// reads the file again (checking its content hash) when the output is
    /// needed later.
    fn source_file(&self) -> Option<SourceFile> {
        None
    }

    /// The files the step writes, when writing files is its side effect.
    /// With a workspace, such a step whose inputs and parameters did not
    /// change, and whose files still hold what it wrote (by content hash,
    /// through the stat cache), is not run again; a step with other side
    /// effects runs every time.
    fn written_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Whether running the step does something besides computing its outputs
    /// (writing a file). Such steps run every time: a cached result would skip
    /// the effect.
    fn has_side_effects(&self) -> bool {
        false
    }

    /// Whether the step computes on [`StepContext::device`]. Such steps are
    /// placed on the run's (or their pinned) device, and the device's numeric
    /// mode enters their cache key; the others always run on the CPU.
    fn uses_device(&self) -> bool {
        false
    }

    /// What kind of logical operation the step is, for the planner: reading
    /// or writing data, fitting statistics, mapping rows, training or
    /// applying a model, or computing metrics. The default is a map.
    fn op_kind(&self) -> OpKind {
        OpKind::Map
    }

    /// The step as row-local expressions, when it is one: then the planner
    /// may fuse it with the row-local steps before and after it into one
    /// kernel, without materializing the tables between them.
    fn row_local(&self) -> Option<&dyn RowLocal> {
        None
    }

    /// The step as a training step that trains together with others of its
    /// family ([`TrainsTogether`]), when it is one: the steps of one family
    /// that read the same inputs on the same device then run as one job,
    /// sharing their passes over the data.
    fn trains_together(&self) -> Option<&dyn TrainsTogether> {
        None
    }

    /// The bytes of data the step produces, when known before running (a
    /// source's size); the planner's cost model propagates it downstream.
    fn size_hint(&self) -> Option<u64> {
        None
    }
}

/// A step that computes named columns from the columns of the same row of its
/// first input (`data`), replacing columns of the same name and appending the
/// others; every other input is a small side table (fitted statistics).
///
/// Its output must equal `data` with these columns evaluated (and, for a
/// projection, only [`RowLocal::keeps`] kept): the executor relies on that
/// when it fuses a chain of such steps into one kernel.
pub trait RowLocal {
    /// The `(column, expression)` pairs over `data`, given the side inputs
    /// (the step's inputs after the first).
    ///
    /// # Errors
    /// As the step's `run` would fail on these inputs (a missing statistic).
    fn row_exprs(
        &self,
        ctx: StepContext,
        data: &SchemaRef,
        side: &[Table],
    ) -> Result<Vec<(String, Expr)>>;

    /// The columns the output keeps, in order, when the step is a projection
    /// (`select`): then its output is `data` with the expressions evaluated
    /// and only these columns kept, so a fused kernel computes and writes
    /// only what they need. `None` (the default) keeps every column.
    fn keeps(&self) -> Option<&[String]> {
        None
    }
}

/// A training step that trains together with steps like it: steps of one
/// type with equal [`family`](Self::family) that read the same inputs on
/// the same device (a sweep's models that differ only in their
/// regularization) run as one [`run_together`](Self::run_together) call,
/// each step's outputs what its own [`Step::run`] computes, to the
/// training's tolerance.
pub trait TrainsTogether: Any + Send + Sync {
    /// What steps of this type must share to train together (the label and
    /// the features), leaving out the settings they may differ in.
    fn family(&self) -> String;

    /// Train `steps` (this one first, then the others of its type and
    /// family, each with its own context) on the same `inputs`: each step's
    /// outputs, in the order of `steps`. A step that fails fails alone.
    fn run_together(
        &self,
        steps: &[(StepContext<'_>, &dyn TrainsTogether)],
        inputs: &[Table],
    ) -> Vec<Result<Vec<Table>>>;
}

/// External data a step reads: what it is, what identifies its content, and
/// an optional human version label recorded beside its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file path, or a description of an in-memory source.
    pub name: String,
    /// What the content hash is taken of.
    pub content: SourceContent,
    /// A label the user gave this version of the data (`"2026-q3"`).
    pub version: Option<String>,
}

/// What identifies a source's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceContent {
    /// A file, hashed (BLAKE3 of its bytes) by the run: through the
    /// workspace's stat cache, so an unchanged file (same size, modification
    /// time and inode) is not read again.
    File(PathBuf),
    /// Content already hashed (an in-memory table).
    Hash(ContentHash),
}

/// How a step's output is read again from its source file (see
/// [`Step::source_file`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceFile {
    /// The file.
    pub path: PathBuf,
    /// Its format, when the step names one rather than inferring it from
    /// the extension.
    pub format: Option<FileFormat>,
    /// Rows per chunk.
    pub batch_rows: usize,
}

/// What kind of work a step does, as the planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Reading or writing data (files, in-memory sources).
    Io,
    /// Learning small tables from data (statistics, categories).
    Fit,
    /// Transforming rows (derived columns, scaling, filtering, encoding).
    Map,
    /// Training a model: many passes over the data, a small table out.
    Train,
    /// Applying a model to rows.
    Model,
    /// Computing metrics from scores.
    Metric,
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpKind::Io => "io",
            OpKind::Fit => "fit",
            OpKind::Map => "map",
            OpKind::Train => "train",
            OpKind::Model => "model",
            OpKind::Metric => "metric",
        })
    }
}

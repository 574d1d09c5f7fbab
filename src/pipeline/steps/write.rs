//! The `write` step.
//!
//! Writes go to a temporary file beside the target and are renamed into
//! place, so a failed write never leaves a truncated file behind.

use std::path::PathBuf;

use arrow_schema::SchemaRef;

use super::ports::step_io;
use crate::data::files::{BatchWriter, FileFormat, write_table};
use crate::data::{Stream, Table};
use crate::error::Result;
use crate::pipeline::step::{OpKind, Step, StepContext};
use crate::pipeline::step_spec::{FromSpec, StepSpec};

/// Write a table to a file (`kind = "write"`).
#[derive(Debug, Clone)]
pub struct Write {
    path: PathBuf,
    format: Option<FileFormat>,
}

impl Write {
    /// Write to `path`, in the format its extension implies.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Write {
            path: path.into(),
            format: None,
        }
    }

    /// Name the format instead of inferring it from the extension.
    pub fn format(mut self, format: FileFormat) -> Self {
        self.format = Some(format);
        self
    }
}

impl Step for Write {
    fn op_kind(&self) -> OpKind {
        OpKind::Io
    }
    step_io!("write", ["data"], []);
    fn params(&self) -> String {
        format!("path={}", self.path.display())
    }
    fn output_schemas(&self, _: StepContext, _: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        FileFormat::given_or_from_path(self.format, &self.path)?;
        Ok(vec![])
    }
    fn run(&self, _: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let format = FileFormat::given_or_from_path(self.format, &self.path)?;
        write_table(&inputs[0], &self.path, format)?;
        Ok(vec![])
    }
    fn streams_input(&self) -> bool {
        true
    }
    fn run_stream(&self, _: StepContext, data: &Stream, _: &[Table]) -> Result<Vec<Table>> {
        let format = FileFormat::given_or_from_path(self.format, &self.path)?;
        let mut writer = BatchWriter::create(&self.path, format, data.schema())?;
        for batch in data.scan()? {
            writer.write(&batch?)?;
        }
        writer.finish()?;
        Ok(vec![])
    }
    fn has_side_effects(&self) -> bool {
        true
    }
    fn written_files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}

impl FromSpec for Write {
    /// `path`; `format`.
    fn from_spec(spec: &mut StepSpec) -> Result<Self> {
        let write = Write::new(spec.path("path")?);
        Ok(match spec.format()? {
            Some(format) => write.format(format),
            None => write,
        })
    }
}

//! The in-memory source step.

use arrow_schema::SchemaRef;

use super::ports::step_io;
use crate::data::{Table, hash_table, normalize_batch, normalize_schema};
use crate::error::Result;
use crate::pipeline::step::{OpKind, Source, SourceContent, Step, StepContext};

/// A table given in memory (`kind` is `"memory"`; not available in spec files).
#[derive(Debug, Clone)]
pub struct MemorySource {
    table: Table,
}

impl MemorySource {
    /// A source that yields `table` (its types normalized to fuseflow's dtypes).
    pub fn new(table: Table) -> Self {
        MemorySource { table }
    }
}

impl Step for MemorySource {
    fn op_kind(&self) -> OpKind {
        OpKind::Io
    }
    fn size_hint(&self) -> Option<u64> {
        Some(self.table.memory_size() as u64)
    }
    step_io!("memory", [], ["out"]);
    fn params(&self) -> String {
        format!("rows={}", self.table.num_rows())
    }
    fn sources(&self) -> Result<Vec<Source>> {
        Ok(vec![Source {
            name: "memory".into(),
            content: SourceContent::Hash(hash_table(&self.table)?),
            version: None,
        }])
    }
    fn output_schemas(&self, _: StepContext, _: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![normalize_schema(self.table.schema())])
    }
    fn run(&self, _: StepContext, _: &[Table]) -> Result<Vec<Table>> {
        let schema = normalize_schema(self.table.schema());
        let batches = self
            .table
            .batches()
            .iter()
            .cloned()
            .map(normalize_batch)
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![Table::try_new(schema, batches)?])
    }
}

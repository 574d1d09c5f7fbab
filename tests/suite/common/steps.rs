//! A custom step for tests, its boilerplate written once: one `data` input,
//! one `out` output with the input's schema, and a run given as a closure.

use std::fmt;

use arrow_schema::SchemaRef;
use fuseflow::{Step, StepContext, Table};

/// The run of a [`TestStep`].
type Run = dyn Fn(StepContext, &[Table]) -> fuseflow::Result<Vec<Table>> + Send + Sync;

/// A step of kind `kind` that runs `run` and keeps its input's schema.
pub struct TestStep {
    kind: &'static str,
    run: Box<Run>,
    schema_depends_on_data: bool,
}

impl TestStep {
    /// A step of kind `kind` running `run`.
    pub fn new(
        kind: &'static str,
        run: impl Fn(StepContext, &[Table]) -> fuseflow::Result<Vec<Table>> + Send + Sync + 'static,
    ) -> TestStep {
        TestStep {
            kind,
            run: Box::new(run),
            schema_depends_on_data: false,
        }
    }

    /// The same step, declaring its output schema known only after running.
    pub fn schema_depends_on_data(self) -> TestStep {
        TestStep {
            schema_depends_on_data: true,
            ..self
        }
    }
}

impl fmt::Debug for TestStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestStep({})", self.kind)
    }
}

impl Step for TestStep {
    fn kind(&self) -> &str {
        self.kind
    }
    fn inputs(&self) -> &[&str] {
        &["data"]
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        String::new()
    }
    fn output_schemas(
        &self,
        _: StepContext,
        inputs: &[SchemaRef],
    ) -> fuseflow::Result<Vec<SchemaRef>> {
        Ok(vec![inputs[0].clone()])
    }
    fn schema_depends_on_data(&self) -> bool {
        self.schema_depends_on_data
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> fuseflow::Result<Vec<Table>> {
        (self.run)(ctx, inputs)
    }
}

//! A fuseflow expression as one DataFusion scalar UDF over fuseflow's fused
//! CPU kernel.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr as DfExpr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::col;
use fuseflow::backend::CpuKernel;
use fuseflow::ir::{Expr, Projection};

use crate::external;

/// One named fuseflow expression as a DataFusion scalar function. Its
/// arguments are the columns the expression reads, in the input schema's
/// order ([`FusedProjection::arguments`]); one call evaluates the whole
/// expression in one pass of fuseflow's kernel, with fuseflow's semantics
/// (nulls, NaN, casts) rather than DataFusion's operators'.
#[derive(Debug)]
pub struct FusedProjection {
    name: String,
    /// The expression as fuseflow prints it: what identifies the function.
    text: String,
    arguments: Vec<String>,
    argument_schema: SchemaRef,
    output: DataType,
    signature: Signature,
    kernel: Arc<CpuKernel>,
}

impl FusedProjection {
    /// The function computing `expr` over rows of `input` as a column named
    /// `name`.
    ///
    /// # Errors
    /// fuseflow's type errors: a column the expression names that `input`
    /// lacks, or an operation its types do not allow.
    pub fn new(name: &str, input: &Schema, expr: &Expr) -> fuseflow::Result<Self> {
        let outputs = [(name.to_string(), expr.clone())];
        let read = Projection::try_new(Arc::new(input.clone()), &outputs)?.columns_read();
        // The kernel binds only the columns it reads; each may hold nulls
        // whatever `input` declares, as DataFusion hands it arrays.
        let fields: Vec<Field> = (input.fields().iter().zip(read))
            .filter(|(_, read)| *read)
            .map(|(f, _)| f.as_ref().clone().with_nullable(true))
            .collect();
        let argument_schema = Arc::new(Schema::new(fields));
        let projection = Projection::try_new(argument_schema.clone(), &outputs)?;
        let output = projection.output_schema().field(0).data_type().clone();
        let types = argument_schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone());
        Ok(FusedProjection {
            name: name.to_string(),
            text: expr.to_string(),
            arguments: argument_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            signature: Signature::exact(types.collect(), Volatility::Immutable),
            output,
            argument_schema,
            kernel: Arc::new(CpuKernel::compile(projection)),
        })
    }

    /// The columns the function takes, in order.
    pub fn arguments(&self) -> &[String] {
        &self.arguments
    }

    /// The call over the input's columns, named as the projection's output:
    /// what a `select` takes.
    pub fn into_expr(self) -> DfExpr {
        let (name, args) = (self.name.clone(), self.arguments.clone());
        ScalarUDF::new_from_impl(self)
            .call(args.iter().map(col).collect())
            .alias(name)
    }
}

impl PartialEq for FusedProjection {
    fn eq(&self, other: &Self) -> bool {
        (self.name == other.name)
            && (self.text == other.text)
            && (self.argument_schema == other.argument_schema)
    }
}

impl Eq for FusedProjection {}

impl Hash for FusedProjection {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.name, &self.text, &self.arguments).hash(state);
    }
}

impl ScalarUDFImpl for FusedProjection {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.output.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let options = RecordBatchOptions::new().with_row_count(Some(args.number_rows));
        let batch =
            RecordBatch::try_new_with_options(self.argument_schema.clone(), columns, &options)?;
        let out = self.kernel.evaluate(&batch).map_err(external)?;
        Ok(ColumnarValue::Array(out.column(0).clone()))
    }
}

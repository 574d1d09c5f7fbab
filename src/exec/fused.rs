//! Running a fused group: a chain of row-local steps as one kernel.
//!
//! Each member's expressions are written over its own input; composing them
//! (every column reference replaced by its definition so far) gives
//! expressions over the head's input alone, compiled into one projection.
//! Each chunk is then read once and written once, and the tables between
//! members never exist. A projection (`select`) at the end keeps only some
//! columns, so the kernel computes and writes only those.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::SchemaRef;

use crate::backend::{Device, Notes};
use crate::error::{Error, Result};
use crate::ir::{Expr, Projection, col};
use crate::pipeline::graph::StepNode;
use crate::pipeline::prep::{apply_kernel, with_columns_schema};
use crate::pipeline::step::StepContext;
use crate::pipeline::table::{Table, column_index};

/// A member of a fused group with its side inputs (all inputs but the data).
pub(crate) struct Member<'a> {
    pub(crate) node: &'a StepNode,
    pub(crate) side: Vec<Table>,
}

/// Run `members` (head first) over `data` as one kernel on `device`; the
/// result is the tail's output.
pub(crate) fn run_group(
    members: &[Member<'_>],
    data: &Table,
    device: &Device,
    notes: &Notes,
) -> Result<Table> {
    let tail = members
        .last()
        .ok_or_else(|| Error::Internal("an empty fused group".into()))?;
    let mut schema: SchemaRef = Arc::clone(data.schema());
    let mut defs: HashMap<String, Expr> = HashMap::new();
    for member in members {
        let name = &member.node.name;
        let row_local = member.node.step.row_local().ok_or_else(|| {
            Error::Internal(format!(
                "step '{name}' is in a fused group but is not row-local"
            ))
        })?;
        let exprs = row_local
            .row_exprs(StepContext::new(name), &schema, &member.side)
            .map_err(|e| e.in_step(name))?;
        // The member's own output schema, with the lineage its real
        // parameters give (as when it runs on its own).
        let mut next = with_columns_schema(name, &schema, &exprs)?.0;
        if let Some(kept) = row_local.keeps() {
            let indices = kept
                .iter()
                .map(|c| column_index(name, &next, c))
                .collect::<Result<Vec<_>>>()?;
            next = Arc::new(next.project(&indices)?);
        }
        let composed: Vec<(String, Expr)> = exprs
            .iter()
            .map(|(column, e)| {
                let e = e.map_columns(&|c| defs.get(c).cloned().unwrap_or_else(|| col(c)));
                (column.clone(), e)
            })
            .collect();
        defs.extend(composed);
        schema = next;
    }
    let exprs: Vec<(String, Expr)> = schema
        .fields()
        .iter()
        .filter_map(|f| defs.get(f.name()).map(|e| (f.name().clone(), e.clone())))
        .collect();
    let tail_name = &tail.node.name;
    let projection =
        Projection::try_new(Arc::clone(data.schema()), &exprs).map_err(|e| e.in_step(tail_name))?;
    let ctx = StepContext::new(tail_name).on(device, notes);
    apply_kernel(ctx, data, &schema, &device.kernel(projection))
}

//! Running a fused group: a chain of row-local steps as one kernel.
//!
//! Each member's expressions are written over its own input; composing them
//! (every column reference replaced by its definition so far) gives
//! expressions over the head's input alone, compiled into one projection.
//! Each chunk is then read once and written once, and the tables between
//! members never exist. A projection (`select`) at the end keeps only some
//! columns, so the kernel computes and writes only those. A group may end in
//! a step that streams its input (a fit, a writer): the kernel's batches
//! then flow into it one at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_schema::SchemaRef;

use super::data::Data;
use crate::backend::{Device, Notes};
use crate::data::Stream;
use crate::data::{Table, column_index};
use crate::error::{Error, Result};
use crate::ir::{Expr, Projection, col};
use crate::pipeline::graph::StepNode;
use crate::pipeline::prep::{apply_batch, with_columns_schema};
use crate::pipeline::step::{Step, StepContext};

/// A member of a fused group with its side inputs (all inputs but the data).
#[derive(Clone)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) step: Arc<dyn Step>,
    pub(crate) side: Vec<Table>,
}

impl Member {
    pub(crate) fn of(node: &StepNode, side: Vec<Table>) -> Self {
        Member {
            name: node.name.clone(),
            step: Arc::clone(&node.step),
            side,
        }
    }
}

/// What a fused group left besides its tail's outputs.
pub(crate) struct Ran {
    /// The tail's outputs.
    pub(crate) outputs: Vec<Table>,
    /// For a group ending in a sink: the rows that flowed into it.
    pub(crate) piped_rows: Option<usize>,
    /// The output of each row-local member whose output never existed
    /// (`(index in the group, output)`): a stream that computes it again
    /// from the group's input when scanned, so that every step of a run can
    /// be fetched afterwards without having been held.
    pub(crate) unheld: Vec<(usize, Stream)>,
}

/// Run `members` (head first) over `data` as one kernel on `device`. A
/// group whose tail streams its input (a [sink](crate::plan::FusedGroup::sink))
/// runs the kernel batch by batch into it, so the chain's output never exists
/// whole; otherwise the result is the tail's output.
pub(crate) fn run_group(
    members: &[Member],
    data: &Data,
    device: &Device,
    notes: &Notes,
) -> Result<Ran> {
    let tail = members
        .last()
        .ok_or_else(|| Error::Internal("an empty fused group".into()))?;
    let sink = tail.step.row_local().is_none();
    let chain = &members[..members.len() - usize::from(sink)];
    let kernel_tail = chain
        .last()
        .ok_or_else(|| Error::Internal("a fused group without a row-local step".into()))?;
    let whole = data.stream();
    let composed = compose(chain, whole.schema())?;
    // Every member whose output is not the group's result, computed lazily
    // from the whole input.
    let unheld: Vec<(usize, Stream)> = (0..chain.len() - usize::from(!sink))
        .map(|m| {
            let schema = Arc::clone(&composed.schemas[m]);
            (m, recomputed(&chain[..=m], schema, &whole, device))
        })
        .collect();
    // The kernel reads only the columns it uses: a Parquet source decodes
    // only those (and types the others' fields nullable, so the kernel is
    // composed over what it is given).
    let input = whole.reading_only(&composed.columns_used())?;
    let Composed {
        mut schemas,
        projection,
    } = compose(chain, input.schema())?;
    let schema = schemas.pop().expect("a composed member");
    let name = kernel_tail.name.clone();
    let kernel = Arc::new(device.kernel(projection));
    if !sink {
        let batches = input
            .scan()?
            .map(|b| apply_batch(&name, notes, &b?, &schema, &kernel))
            .collect::<Result<Vec<_>>>()?;
        let table = Table::try_new(Arc::clone(&schema), batches)?;
        return Ok(Ran {
            outputs: vec![table],
            piped_rows: None,
            unheld,
        });
    }
    // The kernel's notes (a fallback to the CPU) are gathered while the sink
    // scans, then handed on.
    let kernel_notes = Arc::new(Notes::default());
    let rows = Arc::new(AtomicUsize::new(0));
    let piped = {
        let (notes, rows, schema) = (
            Arc::clone(&kernel_notes),
            Arc::clone(&rows),
            Arc::clone(&schema),
        );
        input.map(Arc::clone(&schema), move |batch| {
            rows.fetch_add(batch.num_rows(), Ordering::Relaxed);
            apply_batch(&name, &notes, &batch, &schema, &kernel)
        })
    };
    let ctx = StepContext::new(&tail.name).on(device, notes);
    let outputs = tail.step.run_stream(ctx, &piped, &tail.side);
    for note in kernel_notes.take() {
        notes.add(note);
    }
    Ok(Ran {
        outputs: outputs?,
        piped_rows: Some(rows.load(Ordering::Relaxed)),
        unheld,
    })
}

/// The output of the last of `chain` over `input`, of `schema`, as a stream
/// that composes and compiles the chain's kernel when scanned.
fn recomputed(chain: &[Member], schema: SchemaRef, input: &Stream, device: &Device) -> Stream {
    let (chain, input, device) = (chain.to_vec(), input.clone(), device.clone());
    let name = chain.last().map(|m| m.name.clone()).unwrap_or_default();
    Stream::new(schema, None, move || {
        let Composed {
            mut schemas,
            projection,
        } = compose(&chain, input.schema())?;
        let schema = schemas.pop().expect("a composed member");
        let kernel = device.kernel(projection);
        let (name, notes) = (name.clone(), Notes::default());
        Ok(Box::new(input.scan()?.map(move |b| {
            apply_batch(&name, &notes, &b?, &schema, &kernel)
        })))
    })
}

/// A chain of row-local members composed over the head's input.
struct Composed {
    /// Each member's output schema, head first.
    schemas: Vec<SchemaRef>,
    /// The last member's computed columns over the head's input.
    projection: Projection,
}

impl Composed {
    /// Which input columns (by index) the chain reads: those its computed
    /// columns are computed from, and those it passes through.
    fn columns_used(&self) -> Vec<bool> {
        let input = self.projection.input_schema();
        let mut used = self.projection.columns_read();
        let output = self.schemas.last().expect("a composed member");
        for field in output.fields() {
            let computed = self
                .projection
                .outputs()
                .iter()
                .any(|(name, _)| name == field.name());
            if !computed && let Ok(i) = input.index_of(field.name()) {
                used[i] = true;
            }
        }
        used
    }
}

/// The expressions of a chain of row-local members composed over the head's
/// input (`input`): each member's output schema and the projection
/// computing the last one's columns.
fn compose(chain: &[Member], input: &SchemaRef) -> Result<Composed> {
    let mut schema: SchemaRef = Arc::clone(input);
    let mut schemas = Vec::with_capacity(chain.len());
    let mut defs: HashMap<String, Expr> = HashMap::new();
    for member in chain {
        let name = &member.name;
        let row_local = member.step.row_local().ok_or_else(|| {
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
        schemas.push(Arc::clone(&next));
        schema = next;
    }
    let exprs: Vec<(String, Expr)> = schema
        .fields()
        .iter()
        .filter_map(|f| defs.get(f.name()).map(|e| (f.name().clone(), e.clone())))
        .collect();
    let tail_name = chain.last().map_or("", |m| m.name.as_str());
    let projection =
        Projection::try_new(Arc::clone(input), &exprs).map_err(|e| e.in_step(tail_name))?;
    Ok(Composed {
        schemas,
        projection,
    })
}

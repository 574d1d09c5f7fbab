//! Fetching a step output that a run never stored: the output of a step that
//! ran inside a fused chain is computed again from what the run did store.
//!
//! The run's recorded spec gives the steps. From the step asked for, the
//! chain is walked back along data inputs to the first producer whose output
//! was stored (the chain's input, or a source read again from its file); the
//! members then run one by one on the CPU over that input and their side
//! inputs, loaded by the hashes the run recorded. Before each member runs,
//! its cache key is computed again from the spec's step and those hashes and
//! must equal the key the run recorded, so a spec that no longer says what
//! ran (or a code change in the step) is an error, never a wrong table. The
//! CPU computes fused and unfused alike bit for bit; a chain that ran on a
//! GPU is recomputed within the GPU's tolerance.

use std::path::Path;

use super::reuse::{SourceHashes, StepKey};
use crate::backend::Device;
use crate::cache::{CacheKey, KeyFields};
use crate::data::ContentHash;
use crate::data::Table;
use crate::error::{Error, Result};
use crate::pipeline::graph::{Pipeline, StepNode};
use crate::pipeline::params::ParamValues;
use crate::pipeline::spec;
use crate::pipeline::step::StepContext;
use crate::track::{RunId, StepRecord, spec_param_values};
use crate::workspace::Workspace;

/// An output of a step of a past run (`run`: an id, a unique prefix or
/// `latest`; `port` may be left out for a step with one output): loaded when
/// the run stored it, else computed again as the module docs describe.
///
/// # Errors
/// As [`Workspace::fetch_output`]; for an output computed again,
/// [`Error::Execution`] naming the step when the run was not started from a
/// spec file (an API run records no spec to rebuild its steps from), when an
/// input of its chain is no longer stored, or when the recorded spec no
/// longer gives the key the step ran with.
pub fn fetch_output(ws: &Workspace, run: &str, step: &str, port: Option<&str>) -> Result<Table> {
    let row = ws.runs().step_run(run, step)?;
    if !row.record.outputs.is_empty() {
        return ws.fetch_output(run, step, port);
    }
    let stored_only = ws.fetch_output(run, step, port).unwrap_err();
    let cannot = |why: String| {
        Error::execution(
            step.to_string(),
            format!("{stored_only}; it cannot be computed again: {why}"),
        )
    };
    let pipeline = recorded_pipeline(ws, &row.run)?.map_err(|e| {
        cannot(format!(
            "the run's recorded definition is not a spec file ({e}); keep the step (--keep {step}) or cache every step to store it"
        ))
    })?;
    replay(ws, &pipeline, row.run.as_str(), step, port).map_err(|e| cannot(e.to_string()))
}

/// The pipeline `run` ran: its recorded spec parsed with its parameters'
/// recorded values. The outer result is the store's; the inner one fails
/// ([`Error::Spec`]) where the recorded definition is not a spec file (a
/// run started from the Rust API records its `explain` text).
///
/// # Errors
/// [`Error::RunStore`] when the store cannot be read.
pub(crate) fn recorded_pipeline(ws: &Workspace, run: &RunId) -> Result<Result<Pipeline>> {
    let text = ws.runs().spec_of(run)?;
    let mut values = ParamValues::new();
    for (name, value) in spec_param_values(&ws.runs().params_of(run)?).unwrap_or_default() {
        values = values.value(&name, value);
    }
    Ok(spec::parse_with(&text, Path::new("recorded.toml"), &values).map(|(p, _)| p))
}

/// What a past run recorded, read back for the recorded spec's steps.
struct Recorded<'a> {
    ws: &'a Workspace,
    pipeline: &'a Pipeline,
    run: &'a str,
    /// The step whose output is asked for (errors loading data name it).
    step: &'a str,
}

impl Recorded<'_> {
    /// The position of the step `name` in the recorded spec.
    fn index(&self, name: &str) -> Result<usize> {
        self.pipeline
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| Error::Internal(format!("the recorded spec has no step '{name}'")))
    }

    /// The hash the run stored output `output` of `producer` under, if it stored it.
    fn output_hash(&self, producer: usize, output: usize) -> Result<Option<ContentHash>> {
        let node = &self.pipeline.nodes[producer];
        let row = self.ws.runs().step_run(self.run, &node.name)?;
        let port = node.step.outputs()[output];
        row.record
            .outputs
            .iter()
            .find(|(p, _)| p == port)
            .map(|(_, h)| h.parse())
            .transpose()
    }

    /// A stored object, `what` naming it in the error when it is gone.
    fn load(&self, hash: &ContentHash, what: &str) -> Result<Table> {
        self.ws.load(hash)?.found().map_err(|why| {
            Error::execution(
                self.step.to_string(),
                format!("{what} ({}) {why}", hash.short()),
            )
        })
    }

    /// The chain that computed `step`, head first, walked back along data
    /// inputs to the first stored one: with that input's producer and hash.
    fn chain(&self, edges: &[Vec<(usize, usize)>]) -> Result<(Vec<usize>, usize, ContentHash)> {
        let step = self.step;
        let mut chain = vec![self.index(step)?];
        let (input, data_hash) = loop {
            let &(producer, output) = edges[*chain.last().expect("a member")]
                .first()
                .ok_or_else(|| Error::Internal(format!("step '{step}' has no data input")))?;
            match self.output_hash(producer, output)? {
                Some(hash) => break (producer, hash),
                None => chain.push(producer),
            }
        };
        chain.reverse();
        Ok((chain, input, data_hash))
    }

    /// The side inputs of member `m` (all but its data input), loaded, with
    /// their hashes.
    fn side_inputs(
        &self,
        edges: &[Vec<(usize, usize)>],
        m: usize,
    ) -> Result<(Vec<Table>, Vec<ContentHash>)> {
        let nodes = &self.pipeline.nodes;
        let mut side = Vec::new();
        let mut side_hashes = Vec::new();
        for &(producer, output) in &edges[m][1..] {
            let hash = self.output_hash(producer, output)?.ok_or_else(|| {
                Error::execution(
                    nodes[m].name.clone(),
                    format!(
                        "its input from '{}' was not stored either",
                        nodes[producer].name
                    ),
                )
            })?;
            let what = format!("its input from '{}'", nodes[producer].name);
            side.push(self.load(&hash, &what)?);
            side_hashes.push(hash);
        }
        Ok((side, side_hashes))
    }
}

/// Compute `step`'s output in `run` again over `pipeline`'s steps.
fn replay(
    ws: &Workspace,
    pipeline: &Pipeline,
    run: &str,
    step: &str,
    port: Option<&str>,
) -> Result<Table> {
    let edges = pipeline.edges()?;
    let recorded = Recorded {
        ws,
        pipeline,
        run,
        step,
    };
    let (chain, input, data_hash) = recorded.chain(&edges)?;
    let mut data = recorded.load(
        &data_hash,
        &format!(
            "the chain's input, the output of '{}',",
            pipeline.nodes[input].name
        ),
    )?;
    let sources = SourceHashes { ws, verify: false };
    let cpu = Device::cpu();
    let mut previous: Option<(String, ContentHash)> = None;
    for &m in &chain {
        let node = &pipeline.nodes[m];
        let record = ws.runs().step_run(run, &node.name)?.record;
        let (side, side_hashes) = recorded.side_inputs(&edges, m)?;
        let mut key = match &previous {
            None => StepKey::new(
                node,
                &[&[data_hash][..], &side_hashes].concat(),
                &cpu,
                sources,
            )?,
            Some((producer, before)) => {
                StepKey::fused_on(node, producer, *before, &side_hashes, &cpu, sources)?
            }
        };
        let again = key_as_it_ran(node, &mut key, &record)?;
        let inputs: Vec<Table> = std::iter::once(data).chain(side).collect();
        let mut outputs = node
            .step
            .run(StepContext::new(&node.name), &inputs)
            .map_err(|e| e.in_step(&node.name))?;
        data = outputs.swap_remove(0);
        previous = Some((
            node.name.clone(),
            ContentHash::from_bytes(*again.as_bytes()),
        ));
    }
    let node = &pipeline.nodes[*chain.last().expect("a member")];
    if let Some(port) = port
        && node.step.outputs().first() != Some(&port)
    {
        return Err(Error::InvalidParameter {
            step: node.name.clone(),
            message: format!(
                "has no output '{port}'; its output is '{}'",
                node.step.outputs()[0]
            ),
        });
    }
    Ok(data)
}

/// `key`, computed again on the CPU, keyed as the step ran (the numeric
/// mode it recorded): it must be the key the run recorded in `record`.
///
/// # Errors
/// [`Error::Execution`] naming what differs when it is not.
fn key_as_it_ran(node: &StepNode, key: &mut StepKey, record: &StepRecord) -> Result<CacheKey> {
    let recorded = KeyFields::from_text(&record.key_fields)?;
    key.fields.numeric_mode = recorded.numeric_mode.clone();
    let again = key.fields.key();
    if again.to_string() != record.cache_key {
        let changes: Vec<String> = key
            .fields
            .diff(&recorded)
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(Error::execution(
            node.name.clone(),
            format!(
                "the recorded spec gives it another cache key than it ran with ({}); run the pipeline again to recompute it",
                changes.join("; ")
            ),
        ));
    }
    Ok(again)
}

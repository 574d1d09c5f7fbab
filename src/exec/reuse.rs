//! Reuse: how the scheduler keys, finds and stores step outputs in a
//! [`Workspace`] (the run recorder records them: `recorder.rs`).
//!
//! A step's key covers its kind, parameters, code version, numeric mode and
//! the content hashes of its inputs and sources (see [`crate::cache::key`]).
//! Downstream keys use output content hashes, never run ids, so a step that
//! re-runs and produces the same output lets its dependents hit the cache
//! (early cutoff).

use std::path::Path;

use rayon::prelude::*;

use super::data::Data;
use crate::backend::Device;
use crate::cache::{CacheKey, FORMAT_VERSION, KeyFields};
use crate::data::ContentHash;
use crate::error::{Error, Result};
use crate::pipeline::graph::StepNode;
use crate::pipeline::{Source, SourceContent};
use crate::track::{RunId, StepRunRow};
use crate::workspace::Workspace;

/// Input ports carrying a source's content hash are named `source:<name>`.
const SOURCE_PREFIX: &str = "source:";

/// The files a step wrote are recorded beside its outputs, by content hash,
/// on ports named `file:<path>`.
pub(super) const FILE_PREFIX: &str = "file:";

/// The data input of a step inside a fused group is keyed by its producer's
/// cache key, on a port named `fused:<producer>`.
const FUSED_PREFIX: &str = "fused:";

/// A step's cache identity in one run.
#[derive(Debug)]
pub(crate) struct StepKey {
    /// The device the step was placed on, as recorded.
    pub(crate) device: String,
    pub(crate) fields: KeyFields,
    pub(crate) key: CacheKey,
    /// The step's sources, each with the content hash the key used.
    pub(crate) sources: Vec<(Source, ContentHash)>,
}

/// How a run learns its sources' content hashes: files through the
/// workspace's stat cache, or rehashed when the run verifies its sources.
#[derive(Clone, Copy)]
pub(crate) struct SourceHashes<'a> {
    pub(crate) ws: &'a Workspace,
    pub(crate) verify: bool,
}

impl SourceHashes<'_> {
    fn hash(&self, source: &Source) -> Result<ContentHash> {
        match &source.content {
            SourceContent::Hash(h) => Ok(*h),
            SourceContent::File(path) => self.ws.source_hash(path, self.verify),
        }
    }
}

impl StepKey {
    /// Key `node` given the content hashes of its inputs, in port order.
    pub(crate) fn new(
        node: &StepNode,
        inputs: &[ContentHash],
        device: &Device,
        sources: SourceHashes<'_>,
    ) -> Result<StepKey> {
        StepKey::from_ports(node, named_ports(node, inputs), device, sources)
    }

    /// Key a member of a fused group whose data input, never materialized,
    /// is the output of `previous` (the step `producer`): that input is
    /// keyed by the producer's cache key, on a port named `fused:<producer>`.
    /// `side` are the content hashes of the member's other inputs.
    pub(crate) fn fused(
        node: &StepNode,
        producer: &str,
        previous: &StepKey,
        side: &[ContentHash],
        device: &Device,
        sources: SourceHashes<'_>,
    ) -> Result<StepKey> {
        let data = ContentHash::from_bytes(*previous.key.as_bytes());
        StepKey::fused_on(node, producer, data, side, device, sources)
    }

    /// [`StepKey::fused`] given the producer's cache key as `data`.
    pub(crate) fn fused_on(
        node: &StepNode,
        producer: &str,
        data: ContentHash,
        side: &[ContentHash],
        device: &Device,
        sources: SourceHashes<'_>,
    ) -> Result<StepKey> {
        let mut ports = named_ports(node, &[&[data], side].concat());
        ports[0].0 = format!("{FUSED_PREFIX}{producer}");
        StepKey::from_ports(node, ports, device, sources)
    }

    fn from_ports(
        node: &StepNode,
        mut ports: Vec<(String, ContentHash)>,
        device: &Device,
        hashes: SourceHashes<'_>,
    ) -> Result<StepKey> {
        let step = &node.step;
        let in_step = |e: Error| e.in_step(&node.name);
        let sources = step
            .sources()
            .map_err(in_step)?
            .into_iter()
            .map(|s| {
                let hash = hashes.hash(&s).map_err(in_step)?;
                Ok((s, hash))
            })
            .collect::<Result<Vec<_>>>()?;
        ports.extend(
            sources
                .iter()
                .map(|(s, h)| (format!("{SOURCE_PREFIX}{}", s.name), *h)),
        );
        let fields = KeyFields {
            format_version: FORMAT_VERSION,
            step_kind: step.kind().to_string(),
            params: step.params(),
            code_version: format!(
                "fuseflow {} / {} v{}",
                env!("CARGO_PKG_VERSION"),
                step.kind(),
                step.code_version()
            ),
            numeric_mode: device.numeric_mode(),
            inputs: ports,
            spec_params: node.spec_params.clone(),
        };
        Ok(StepKey {
            device: device.to_string(),
            key: fields.key(),
            fields,
            sources,
        })
    }

    /// Notes recorded with the step run: its sources' versions.
    pub(super) fn notes(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|(s, hash)| match &s.version {
                Some(v) => format!("source {} version '{v}' ({})", s.name, hash.short()),
                None => format!("source {} ({})", s.name, hash.short()),
            })
            .collect()
    }
}

/// Input hashes paired with the step's port names (`#i` past the declared ports).
fn named_ports(node: &StepNode, inputs: &[ContentHash]) -> Vec<(String, ContentHash)> {
    let declared = node.step.inputs();
    declared
        .iter()
        .map(|p| p.to_string())
        .chain((declared.len()..inputs.len()).map(|i| format!("#{i}")))
        .zip(inputs.iter().copied())
        .collect()
}

/// An earlier step run whose outputs can stand in for running the step, when
/// every output is still in the workspace.
pub(crate) fn find_reusable(ws: &Workspace, key: &CacheKey) -> Result<Option<StepRunRow>> {
    let Some(row) = ws.runs().reusable(&key.to_string())? else {
        return Ok(None);
    };
    let hashes = output_hashes(&row)?;
    let there = row
        .record
        .outputs
        .iter()
        .zip(&hashes)
        .all(|((port, _), hash)| {
            match port.strip_prefix(FILE_PREFIX) {
                // A file the step wrote must still hold what it wrote.
                Some(path) => ws.source_hash(Path::new(path), false).ok() == Some(*hash),
                None => ws.has(hash),
            }
        });
    Ok(there.then_some(row))
}

/// The run that computed a recorded step run's outputs: itself, or for a
/// cache hit the run it reused them from.
pub(crate) fn producer(row: &StepRunRow) -> RunId {
    row.record
        .reused_from
        .clone()
        .unwrap_or_else(|| row.run.clone())
}

/// The content hashes of a recorded step run's outputs, in port order.
pub(crate) fn output_hashes(row: &StepRunRow) -> Result<Vec<ContentHash>> {
    row.record
        .outputs
        .iter()
        .map(|(_, hex)| hex.parse())
        .collect()
}

/// Hash and store every output (in parallel); their hashes in port order,
/// then those of the files the step wrote. The output of a step that only
/// reads a file is not copied: the workspace keeps a reference to the file,
/// under an identity derived from the step's key (which covers the file's
/// content hash).
pub(crate) fn store_outputs(
    ws: &Workspace,
    node: &StepNode,
    key: Option<&StepKey>,
    tables: &[Data],
) -> Result<Vec<ContentHash>> {
    let mut hashes = match (node.step.source_file(), key, tables) {
        (Some(file), Some(key), [data]) if key.sources.len() == 1 => {
            let hash = key.key.source_output();
            ws.store_source(hash, data.as_table(), &file, key.sources[0].1)?;
            vec![hash]
        }
        _ => tables
            .par_iter()
            .map(|t| ws.store(&t.table()?))
            .collect::<Result<_>>()?,
    };
    // The files the step wrote follow its outputs, so that a re-run can
    // tell whether they still hold what it wrote.
    for file in node.step.written_files() {
        hashes.push(ws.source_hash(&file, true)?);
    }
    Ok(hashes)
}

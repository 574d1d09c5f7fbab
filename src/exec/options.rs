//! The knobs of one run: [`RunOptions`], with what a run with a workspace
//! stores ([`CachePolicy`]) and which steps it runs again ([`Rerun`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::progress::RunObserver;
use crate::backend::DeviceChoice;
use crate::backend::DeviceSet;
use crate::plan::Calibration;
use crate::track::RunId;
use crate::workspace::Workspace;

/// Knobs for one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Most steps running at once (each may use all cores through rayon).
    pub max_concurrent_steps: usize,
    /// Where step outputs are cached and the run is recorded; `None` runs
    /// everything in memory and records nothing.
    pub workspace: Option<Arc<Workspace>>,
    /// Steps to run even when their cached outputs could be reused.
    pub rerun: Rerun,
    /// The pipeline's definition as recorded in the run store (the CLI passes
    /// the spec file's text); by default, the pipeline's `explain` output.
    pub spec: Option<String>,
    /// The values of the spec's parameters, `(name, value as TOML writes
    /// it)`, recorded with the run (`fuseflow show`) and used again when an
    /// output of the run is computed again
    /// ([`spec::load_with`](crate::pipeline::spec::load_with) returns them).
    pub params: Vec<(String, String)>,
    /// The device for steps that compute ([`Step::uses_device`](crate::Step::uses_device))
    /// and are not pinned to one; `auto` (the default) lets the planner's cost
    /// model choose per step. A device that cannot be opened leaves its steps
    /// on the CPU, with a note.
    pub device: DeviceChoice,
    /// Let devices without f64 (wgpu) compute f64 work in f32 instead of
    /// sending it to the CPU. The precision used enters the cache key and the
    /// step records.
    pub allow_f32: bool,
    /// Fuse (the default): chains of row-local steps run as one kernel
    /// wherever the tables between them are needed by nothing else (with a
    /// workspace, only under [`CachePolicy::Materialized`]), and each step's
    /// expressions run as one kernel; sibling training steps (see
    /// [`TrainsTogether`](crate::pipeline::TrainsTogether)) train together.
    /// Unfused: every step on its own, and its expressions op by op with
    /// every intermediate materialized, to check fused results against.
    /// Fused and unfused runs agree: bit for bit on the CPU, but for models
    /// trained with siblings, which agree to the training's tolerance
    /// (their Newton steps may share a Hessian). The default is `false` when the
    /// environment variable `FUSEFLOW_FUSE` is `0`, so any test or run can be
    /// repeated unfused without changing code. Unfused outputs are cached
    /// apart.
    pub fuse: bool,
    /// Steps whose outputs must exist after the run even where fusion would
    /// compute them only in registers.
    pub keep: Vec<String>,
    /// Which outputs a run with a workspace stores.
    pub cache: CachePolicy,
    /// The devices the planner may use; `None` opens those the run's device
    /// choices need (under `auto`: every GPU backend, once per process).
    pub devices: Option<DeviceSet>,
    /// The cost model's constants; `None` reads the workspace's calibration
    /// (`fuseflow calibrate`), else the documented defaults.
    pub calibration: Option<Calibration>,
    /// Hash every source file again instead of trusting the workspace's stat
    /// cache (which takes a file with the size, modification time and inode
    /// it had when hashed to be unchanged).
    pub verify_sources: bool,
    /// Told of each step as it starts and finishes (progress display).
    pub observer: Option<Arc<dyn RunObserver>>,
    /// Bytes of data a run may keep resident: a memory-mapped source larger
    /// than this is scanned with each batch's pages released once it has
    /// been used, so that a file larger than memory streams in bounded
    /// memory; smaller ones stay mapped, so that a second pass over them
    /// costs no page faults. The default is a quarter of physical memory,
    /// or `FUSEFLOW_MEMORY_BUDGET` (bytes) when set.
    pub memory_budget: u64,
    /// Stops the run before its next step once cancelled: the steps running
    /// then finish and are recorded, and the run ends as
    /// [`Error::Cancelled`](crate::Error::Cancelled) (recorded as
    /// `cancelled`).
    pub cancel: Option<Cancel>,
    /// A run already recorded as queued
    /// ([`RunStore::queue_run`](crate::track::RunStore::queue_run)) to record
    /// this run into, rather than a new one; a run cancelled while queued
    /// does not start ([`Error::Cancelled`](crate::Error::Cancelled)).
    pub queued_run: Option<RunId>,
}

/// A flag that cancels a run ([`RunOptions::cancel`]); clones share it.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Cancel the run: no further step starts.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RunOptions {
            max_concurrent_steps: cores.max(4),
            workspace: None,
            rerun: Rerun::Nothing,
            spec: None,
            params: Vec::new(),
            device: DeviceChoice::Auto,
            allow_f32: false,
            fuse: std::env::var("FUSEFLOW_FUSE").map_or(true, |v| v != "0"),
            keep: Vec::new(),
            cache: CachePolicy::default(),
            devices: None,
            calibration: None,
            verify_sources: false,
            observer: None,
            memory_budget: default_memory_budget(),
            cancel: None,
            queued_run: None,
        }
    }
}

/// A quarter of physical memory, or `FUSEFLOW_MEMORY_BUDGET` when set.
fn default_memory_budget() -> u64 {
    if let Some(bytes) = std::env::var("FUSEFLOW_MEMORY_BUDGET")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return bytes;
    }
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page)) {
        (Ok(pages), Ok(page)) if pages > 0 && page > 0 => pages * page / 4,
        _ => 4 << 30,
    }
}

impl RunOptions {
    /// Cache outputs in and record the run to `workspace`.
    pub fn with_workspace(mut self, workspace: Arc<Workspace>) -> Self {
        self.workspace = Some(workspace);
        self
    }
}

/// Which step outputs a run with a workspace stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// Every step's outputs, so that each can be reused on its own and
    /// fetched later from the store. The tables between row-local steps are
    /// then written anyway, so each such step runs as its own kernel.
    EveryStep,
    /// Only the outputs the plan materializes: the last step of each fused
    /// chain (unless the chain runs batch by batch into a fit or a writer,
    /// which then is the chain's end), outputs read by several steps, those
    /// in [`RunOptions::keep`], and results. Chains of row-local steps run
    /// fused as without a workspace. Each step inside a chain still has its
    /// own cache key (its data input is keyed by the previous member's key)
    /// and run record, so a re-run reuses the chain's output while the
    /// chain's input and steps are unchanged; the outputs inside it are not
    /// stored, and `fuseflow output` (or [`fetch_output`](crate::exec::fetch_output))
    /// computes them again from the chain's stored input. The default.
    #[default]
    Materialized,
}

impl std::str::FromStr for CachePolicy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "every-step" => Ok(CachePolicy::EveryStep),
            "materialized" => Ok(CachePolicy::Materialized),
            _ => Err(format!(
                "unknown cache policy '{s}' (use every-step or materialized)"
            )),
        }
    }
}

/// Which steps to run even when their cached outputs could be reused. Their
/// dependents then key on the new outputs: when those are identical, the
/// dependents still hit the cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Rerun {
    /// Reuse whatever can be reused.
    #[default]
    Nothing,
    /// Run every step.
    All,
    /// Run these steps (by name).
    Steps(Vec<String>),
}

impl Rerun {
    /// Whether `step` is to run again.
    pub(super) fn includes(&self, step: &str) -> bool {
        match self {
            Rerun::Nothing => false,
            Rerun::All => true,
            Rerun::Steps(names) => names.iter().any(|n| n == step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CachePolicy, Rerun};

    #[test]
    fn rerun_names_the_steps_it_runs_again() {
        assert!(!Rerun::Nothing.includes("fit"));
        assert!(Rerun::All.includes("fit"));
        let some = Rerun::Steps(vec!["fit".into()]);
        assert!(some.includes("fit"));
        assert!(!some.includes("fit_stats"));
    }

    #[test]
    fn cache_policy_parses_as_the_cli_spells_it() {
        assert_eq!("every-step".parse(), Ok(CachePolicy::EveryStep));
        assert_eq!("materialized".parse(), Ok(CachePolicy::Materialized));
        assert!("all".parse::<CachePolicy>().is_err());
    }
}

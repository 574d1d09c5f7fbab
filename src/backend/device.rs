//! The device a step runs on: what users choose, what opens, and fused
//! evaluation that falls back to the CPU instead of failing.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::{ArrayRef, RecordBatch};

use super::cpu::stats::{self, ColumnStats};
use super::cpu::{CpuBackend, CpuKernel};
use super::{Backend, DeviceInfo, DeviceKind};
use crate::error::{DeviceFailure, Error, Result};
use crate::ir::{DType, Node, Projection};

/// Which device to run on, as written on the command line (`--device`) and in
/// spec files (`device = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    /// Let fuseflow decide. Until the cost-based planner lands this is the
    /// CPU, which is never slower than a software GPU driver.
    #[default]
    Auto,
    /// The CPU (rayon).
    Cpu,
    /// The first wgpu adapter (`FUSEFLOW_WGPU_BACKEND`, `FUSEFLOW_WGPU_ADAPTER` choose another).
    Wgpu,
    /// CUDA device 0.
    Cuda,
}

impl DeviceChoice {
    /// Every choice, in the order the CLI lists them.
    pub const ALL: [DeviceChoice; 4] = [
        DeviceChoice::Auto,
        DeviceChoice::Cpu,
        DeviceChoice::Wgpu,
        DeviceChoice::Cuda,
    ];

    /// The name users write.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Cuda => "cuda",
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        DeviceChoice::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown device '{s}' (use auto, cpu, wgpu or cuda)"))
    }
}

/// A device steps run on: a shared handle to its backend.
#[derive(Clone)]
pub struct Device(Arc<dyn Backend>);

impl Device {
    /// The CPU.
    pub fn cpu() -> Device {
        static CPU: OnceLock<Device> = OnceLock::new();
        CPU.get_or_init(|| Device(CpuBackend::shared())).clone()
    }

    /// A device over any backend.
    pub fn new(backend: Arc<dyn Backend>) -> Device {
        Device(backend)
    }

    /// Open the device `choice` names; the GPU backends are opened once per
    /// process and shared.
    ///
    /// # Errors
    /// [`Error::Device`] with [`DeviceFailure::Unavailable`] when the device is
    /// missing, with what to install or choose instead.
    pub fn open(choice: DeviceChoice) -> Result<Device> {
        Ok(match choice {
            DeviceChoice::Auto | DeviceChoice::Cpu => Device::cpu(),
            DeviceChoice::Wgpu => Device(super::wgpu::WgpuBackend::shared()?),
            DeviceChoice::Cuda => Device(super::cuda::CudaBackend::shared()?),
        })
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        self.0.info()
    }

    /// The backend's verbs.
    pub fn backend(&self) -> &dyn Backend {
        self.0.as_ref()
    }

    /// Whether this is the CPU.
    pub fn is_cpu(&self) -> bool {
        self.info().kind == DeviceKind::Cpu
    }

    /// How the device computes, for cache keys: results from different modes
    /// agree within tolerance, not bit for bit, so they are cached apart.
    pub fn numeric_mode(&self) -> String {
        match self.info().kind {
            DeviceKind::Cpu => "cpu".into(),
            kind => format!("{kind}/{}", self.info().name),
        }
    }

    /// Statistics of each column (`columns[c]` is the chunks of column `c`),
    /// reduced on this device chunk by chunk and combined in chunk order.
    /// Columns the device cannot hold, and any device failure, are computed
    /// on the CPU instead, with a note.
    ///
    /// # Errors
    /// [`Error::Type`] for a column that is not numeric.
    pub fn column_stats(
        &self,
        columns: &[(String, Vec<ArrayRef>)],
        notes: &Notes,
    ) -> Result<Vec<ColumnStats>> {
        if self.is_cpu() {
            return stats::column_stats(columns);
        }
        columns
            .iter()
            .map(|column @ (name, chunks)| {
                let on_device = chunks.iter().try_fold(ColumnStats::EMPTY, |acc, chunk| {
                    let reduced = self.backend().reduce(&self.backend().upload(chunk)?)?;
                    Ok::<_, Error>(acc.merge(reduced))
                });
                match on_device {
                    Ok(stats) => Ok(stats),
                    Err(Error::Device { message, .. }) => {
                        notes.add(format!(
                            "statistics of '{name}' computed on the CPU: {message}"
                        ));
                        Ok(stats::column_stats(std::slice::from_ref(column))?[0])
                    }
                    Err(other) => Err(other),
                }
            })
            .collect()
    }

    /// Compile `projection` for this device.
    pub fn kernel(&self, projection: Projection) -> Kernel {
        let live = projection.live_nodes();
        let unsupported = projection
            .arena()
            .ids()
            .filter(|id| live[id.index()])
            .map(|id| projection.arena().dtype(id))
            .find(|d| !self.info().supports(*d));
        Kernel {
            device: self.clone(),
            unsupported,
            reads: columns_read(&projection, &live),
            cpu: CpuKernel::compile(projection),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({})", self.info())
    }
}

/// `cpu` for the CPU; for a GPU its kind, name and API, which run records keep.
impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_cpu() {
            f.write_str("cpu")
        } else {
            self.info().fmt(f)
        }
    }
}

/// Notes a step leaves for its run record, such as a fallback to the CPU.
#[derive(Debug, Default)]
pub struct Notes(Mutex<Vec<String>>);

impl Notes {
    /// Add a note unless the same one is there already.
    pub fn add(&self, note: impl Into<String>) {
        let note = note.into();
        let mut notes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !notes.contains(&note) {
            notes.push(note);
        }
    }

    /// The notes so far, in order.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A projection compiled for a device, with the CPU kernel beside it for fallback.
#[derive(Debug)]
pub struct Kernel {
    device: Device,
    /// A dtype the device cannot compute on, if the projection has one.
    unsupported: Option<DType>,
    /// Which input columns the projection reads (only those are uploaded).
    reads: Vec<bool>,
    cpu: CpuKernel,
}

/// Rows below which an out-of-memory launch is not split further.
const MIN_SPLIT_ROWS: usize = 1 << 16;

impl Kernel {
    /// The projection this kernel evaluates.
    pub fn projection(&self) -> &Projection {
        self.cpu.projection()
    }

    /// Evaluate over one batch on the device. When the device cannot (a dtype
    /// it lacks, a compile or launch failure, no memory even for small
    /// pieces), the batch runs on the CPU and `notes` says why.
    ///
    /// # Errors
    /// What the CPU kernel reports (a missing or mistyped column).
    pub fn evaluate(&self, batch: &RecordBatch, notes: &Notes) -> Result<RecordBatch> {
        if self.device.is_cpu() {
            return self.cpu.evaluate(batch);
        }
        if let Some(dtype) = self.unsupported {
            notes.add(format!(
                "ran on the CPU: {} cannot compute on {dtype}",
                self.device.info().kind
            ));
            return self.cpu.evaluate(batch);
        }
        match self.on_device(batch) {
            Ok(out) => Ok(out),
            Err(Error::Device {
                failure, message, ..
            }) => {
                notes.add(format!(
                    "ran on the CPU after {} failed ({}: {message})",
                    self.device.info().kind,
                    failure.reason()
                ));
                self.cpu.evaluate(batch)
            }
            Err(other) => Err(other),
        }
    }

    /// Upload the columns read, launch, download; halve the batch on out of memory.
    fn on_device(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let projection = self.projection();
        let backend = self.device.backend();
        let inputs = projection
            .input_schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                if !self.reads[i] {
                    return Ok(None);
                }
                let array: &ArrayRef =
                    batch
                        .column_by_name(field.name())
                        .ok_or_else(|| Error::Schema {
                            step: "<expression>".into(),
                            column: field.name().clone(),
                            message: "the column is missing from this batch".into(),
                        })?;
                backend.upload(array).map(Some)
            })
            .collect::<Result<Vec<_>>>();
        let launched = inputs.and_then(|inputs| {
            let refs: Vec<_> = inputs.iter().map(Option::as_ref).collect();
            let outputs = backend.launch(projection, &refs)?;
            outputs
                .iter()
                .map(|o| backend.download(o))
                .collect::<Result<Vec<_>>>()
        });
        match launched {
            Ok(columns) => Ok(RecordBatch::try_new(projection.output_schema(), columns)?),
            Err(Error::Device {
                failure: DeviceFailure::OutOfMemory,
                ..
            }) if batch.num_rows() >= 2 * MIN_SPLIT_ROWS => {
                let half = batch.num_rows() / 2;
                let parts = [
                    self.on_device(&batch.slice(0, half))?,
                    self.on_device(&batch.slice(half, batch.num_rows() - half))?,
                ];
                Ok(arrow_select::concat::concat_batches(
                    &projection.output_schema(),
                    &parts,
                )?)
            }
            Err(e) => Err(e),
        }
    }
}

/// Which input columns the `live` nodes of a projection read.
fn columns_read(projection: &Projection, live: &[bool]) -> Vec<bool> {
    let mut reads = vec![false; projection.input_schema().fields().len()];
    let arena = projection.arena();
    for id in arena.ids().filter(|id| live[id.index()]) {
        if let Node::Column(c) = arena.node(id) {
            reads[*c] = true;
        }
    }
    reads
}

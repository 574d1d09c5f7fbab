//! The device a step runs on: what users choose, what opens, and fused
//! evaluation that falls back to the CPU instead of failing.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float32Array, Float64Array, RecordBatch};
use arrow_schema::DataType;

use super::cpu::stats::{self, ColumnStats};
use super::cpu::{CpuBackend, CpuKernel};
use super::{Backend, DeviceInfo, DeviceKind};
use crate::backend::DeviceTier;
use crate::error::{DeviceFailure, Error, Result};
use crate::ir::{DType, OpByOp, Projection};

/// Which device to run on, as written on the command line (`--device`) and in
/// spec files (`device = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    /// Let the planner's cost model decide per step among the CPU and hardware
    /// GPUs (see [`crate::plan`]).
    #[default]
    Auto,
    /// One kind of device: the CPU (rayon), the first wgpu adapter
    /// (`FUSEFLOW_WGPU_BACKEND`, `FUSEFLOW_WGPU_ADAPTER` choose another) or
    /// CUDA device 0. Where it is missing the planner puts the work on the
    /// CPU and says why.
    On(DeviceKind),
}

impl DeviceChoice {
    /// Every choice, in the order the CLI lists them.
    pub const ALL: [DeviceChoice; 4] = [
        DeviceChoice::Auto,
        DeviceChoice::On(DeviceKind::Cpu),
        DeviceChoice::On(DeviceKind::Wgpu),
        DeviceChoice::On(DeviceKind::Cuda),
    ];

    /// The name users write.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::On(kind) => kind.name(),
        }
    }

    /// The one device kind this choice names; `None` for `auto`.
    pub fn kind(self) -> Option<DeviceKind> {
        match self {
            DeviceChoice::Auto => None,
            DeviceChoice::On(kind) => Some(kind),
        }
    }
}

impl From<DeviceKind> for DeviceChoice {
    fn from(kind: DeviceKind) -> DeviceChoice {
        DeviceChoice::On(kind)
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl DeviceChoice {
    /// The choice given as `--device NAME` among a program's arguments
    /// (`std::env::args()`), `auto` when there is none: how the examples
    /// take a device.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `--device` for an unknown name or a
    /// missing value.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<DeviceChoice> {
        let invalid = |message: String| Error::InvalidParameter {
            step: "--device".into(),
            message,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--device" {
                let name = args.next().ok_or_else(|| {
                    invalid("give a device after --device: auto, cpu, wgpu or cuda".into())
                })?;
                return name.parse().map_err(invalid);
            }
        }
        Ok(DeviceChoice::Auto)
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

/// A device steps run on: a shared handle to its backend, whether f64 work
/// may run in f32 on it, and whether expressions run fused.
#[derive(Clone)]
pub struct Device {
    backend: Arc<dyn Backend>,
    /// The device lacks f64 and the user accepted computing f64 work in f32.
    f64_as_f32: bool,
    /// Projections run as one fused kernel (the default) or op by op.
    fused: bool,
}

impl Device {
    /// The CPU.
    pub fn cpu() -> Device {
        static CPU: OnceLock<Device> = OnceLock::new();
        CPU.get_or_init(|| Device::new(CpuBackend::shared()))
            .clone()
    }

    /// A device over any backend.
    pub fn new(backend: Arc<dyn Backend>) -> Device {
        Device {
            backend,
            f64_as_f32: false,
            fused: true,
        }
    }

    /// The same device, evaluating each projection as one fused kernel
    /// (`fused`, the default) or op by op, one kernel per operator with every
    /// intermediate materialized on the device. The unfused form is slower; it
    /// is there to check fused kernels against (on the CPU the two agree bit
    /// for bit, since both round the same operations in the same order).
    pub fn fusing(self, fused: bool) -> Device {
        Device { fused, ..self }
    }

    /// Whether projections run as one fused kernel.
    pub fn fuses(&self) -> bool {
        self.fused
    }

    /// The same device, computing f64 work in f32 when `allow` is set and the
    /// device has no f64 (wgpu). Without it such work runs on the CPU. The
    /// choice is part of the device's [`numeric_mode`](Device::numeric_mode)
    /// and its description, so run records say which precision was used.
    pub fn allowing_f32(self, allow: bool) -> Device {
        let f64_as_f32 = allow && !self.info().f64;
        Device { f64_as_f32, ..self }
    }

    /// Whether f64 work runs in f32 on this device.
    pub fn f64_as_f32(&self) -> bool {
        self.f64_as_f32
    }

    /// Whether this device computes work of `dtype`: natively, or f64 in f32
    /// where that is accepted.
    pub fn computes(&self, dtype: DType) -> bool {
        self.info().supports(dtype) || (dtype == DType::Float64 && self.f64_as_f32)
    }

    /// Open the device of `kind`; the GPU backends are opened once per
    /// process and shared.
    ///
    /// # Errors
    /// [`Error::Device`] with [`DeviceFailure::Unavailable`] when the device is
    /// missing, with what to install or choose instead.
    pub fn open(kind: DeviceKind) -> Result<Device> {
        Ok(match kind {
            DeviceKind::Cpu => Device::cpu(),
            DeviceKind::Wgpu => Device::new(super::wgpu::WgpuBackend::shared()?),
            DeviceKind::Cuda => Device::new(super::cuda::CudaBackend::shared()?),
        })
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        self.backend.info()
    }

    /// The backend's verbs.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Whether this is the CPU.
    pub fn is_cpu(&self) -> bool {
        self.info().kind == DeviceKind::Cpu
    }

    /// How the device computes, for cache keys: results from different modes
    /// agree within tolerance, not bit for bit, so they are cached apart.
    pub fn numeric_mode(&self) -> String {
        let mut mode = match self.info().kind {
            DeviceKind::Cpu => "cpu".to_string(),
            kind => format!("{kind}/{}", self.info().name),
        };
        if self.f64_as_f32 {
            mode.push_str("/f64-as-f32");
        }
        if !self.fused {
            mode.push_str("/unfused");
        }
        mode
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
        let mut stats = vec![ColumnStats::EMPTY; columns.len()];
        self.column_stats_onto(&mut stats, columns, notes)?;
        Ok(stats)
    }

    /// Merge the statistics of more chunks of each column into `stats`, in
    /// chunk order (so that a stream fitted window by window gets the
    /// statistics of all its chunks at once), computed here with the same
    /// fallback as [`Device::column_stats`].
    ///
    /// # Errors
    /// As [`Device::column_stats`].
    pub fn column_stats_onto(
        &self,
        stats: &mut [ColumnStats],
        columns: &[(String, Vec<ArrayRef>)],
        notes: &Notes,
    ) -> Result<()> {
        if self.is_cpu() {
            return stats::column_stats_onto(stats, columns);
        }
        for (acc, column @ (name, chunks)) in stats.iter_mut().zip(columns) {
            let on_device = chunks.iter().try_fold(*acc, |acc, chunk| {
                let reduced = self.backend().reduce(&self.upload(chunk)?)?;
                Ok::<_, Error>(acc.merge(reduced))
            });
            let on_device = on_device.and_then(|s| self.finite_or_refused(s));
            *acc = notes.or_on_cpu(
                on_device,
                |_, message| format!("statistics of '{name}' computed on the CPU: {message}"),
                || {
                    let mut merged = [*acc];
                    stats::column_stats_onto(&mut merged, std::slice::from_ref(column))?;
                    Ok(merged[0])
                },
            )?;
        }
        Ok(())
    }

    /// `stats` as the device computed them, unless their mean, spread or
    /// range is not finite: the device computes in f32 (wgpu's partials, f64
    /// values narrowed for a device without f64), where a value beyond
    /// f32's range becomes infinite and squared deviations overflow where
    /// the CPU's f64 holds them. Such a column is computed on the CPU, whose
    /// statistics then decide whether it can be fitted.
    fn finite_or_refused(&self, stats: ColumnStats) -> Result<ColumnStats> {
        let figures = [stats.mean, stats.m2, stats.min, stats.max];
        if stats.finite_count() == 0 || figures.iter().all(|v| v.is_finite()) {
            return Ok(stats);
        }
        Err(Error::device(
            &self.info().name,
            DeviceFailure::Unsupported,
            "its values or their spread exceed f32's range on this device",
        ))
    }

    /// Copy a column to the device, an f64 column as f32 when this device
    /// computes f64 work in f32 (uncached; see [`DeviceTier`] for the cache).
    pub(crate) fn upload(&self, array: &ArrayRef) -> Result<crate::backend::DeviceArray> {
        if self.f64_as_f32 && array.data_type() == &DataType::Float64 {
            let narrowed = narrowed(array.as_primitive::<Float64Type>()).map_err(|(row, v)| {
                Error::device(
                    &self.info().name,
                    DeviceFailure::Unsupported,
                    format!("the value {v:e} (row {row} of a chunk) is beyond f32's range, so its f64 work stays in f64"),
                )
            })?;
            self.backend().upload(&narrowed)
        } else {
            self.backend().upload(array)
        }
    }

    /// Compile `projection` for this device.
    pub fn kernel(&self, projection: Projection) -> Kernel {
        let narrowed = self
            .f64_as_f32
            .then(|| projection.with_f64_as_f32())
            .flatten();
        let on_device = narrowed.as_ref().unwrap_or(&projection);
        let live = on_device.live_nodes();
        let unsupported = on_device
            .arena()
            .ids()
            .filter(|id| live[id.index()])
            .map(|id| on_device.arena().dtype(id))
            .find(|d| !self.info().supports(*d));
        Kernel {
            device: self.clone(),
            unsupported,
            reads: on_device.columns_read(),
            unfused: (!self.fused).then(|| on_device.op_by_op()),
            narrowed,
            cpu: CpuKernel::compile(projection),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({self})")
    }
}

/// `cpu` for the CPU; for a GPU its kind, name and API, which run records keep.
impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_cpu() {
            f.write_str("cpu")?;
        } else {
            self.info().fmt(f)?;
        }
        if self.f64_as_f32 {
            f.write_str(" [f64 computed in f32]")?;
        }
        if !self.fused {
            f.write_str(" [unfused]")?;
        }
        Ok(())
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

    /// `attempt`'s result, or, when it failed on the device
    /// ([`Error::Device`]), `on_cpu`'s, with the note `note(failure, message)`
    /// saying why: how work placed on a device falls back to the CPU instead
    /// of failing. Other errors are returned as they are.
    ///
    /// # Errors
    /// `attempt`'s error when it is not a device error; `on_cpu`'s error.
    pub fn or_on_cpu<T>(
        &self,
        attempt: Result<T>,
        note: impl FnOnce(DeviceFailure, &str) -> String,
        on_cpu: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        match attempt {
            Err(Error::Device {
                failure, message, ..
            }) => {
                self.add(note(failure, &message));
                on_cpu()
            }
            other => other,
        }
    }
}

/// `values` rounded to f32, or the first valid row, and its value, that
/// f32 cannot hold (a finite value that would become an infinity).
fn narrowed(values: &Float64Array) -> std::result::Result<ArrayRef, (usize, f64)> {
    let narrow: Vec<f32> = values.values().iter().map(|&v| v as f32).collect();
    let overflows = |(row, (v, n)): (usize, (&f64, &f32))| {
        (n.is_infinite() && v.is_finite() && values.is_valid(row)).then_some((row, *v))
    };
    match values
        .values()
        .iter()
        .zip(&narrow)
        .enumerate()
        .find_map(overflows)
    {
        Some(overflow) => Err(overflow),
        None => Ok(Arc::new(Float32Array::new(
            narrow.into(),
            values.nulls().cloned(),
        ))),
    }
}

/// A projection compiled for a device, with the CPU kernel beside it for fallback.
#[derive(Debug)]
pub struct Kernel {
    device: Device,
    /// A dtype the device cannot compute on, if the projection has one.
    unsupported: Option<DType>,
    /// Which input columns the projection run on the device reads (only
    /// those are uploaded).
    reads: Vec<bool>,
    /// The projection computed in f32, when the device runs f64 work in f32.
    narrowed: Option<Projection>,
    /// The projection op by op, when the device does not fuse.
    unfused: Option<OpByOp>,
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
        if self.device.is_cpu() && self.device.fused {
            return self.cpu.evaluate(batch);
        }
        if let Some(dtype) = self.unsupported {
            notes.add(format!(
                "ran on the CPU: {} cannot compute on {dtype}",
                self.device.info().kind
            ));
            return self.cpu.evaluate(batch);
        }
        let on_device = self.on_device(batch);
        if on_device.is_ok() && self.narrowed.is_some() {
            notes.add(format!(
                "f64 computed in f32 on {} (f32 precision accepted)",
                self.device.info().kind
            ));
        }
        notes.or_on_cpu(
            on_device,
            |failure, message| {
                format!(
                    "ran on the CPU after {} failed ({}: {message})",
                    self.device.info().kind,
                    failure.reason()
                )
            },
            || self.cpu.evaluate(batch),
        )
    }

    /// Upload the columns read, launch, download; halve the batch on out of memory.
    fn on_device(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let projection = self.narrowed.as_ref().unwrap_or(self.projection());
        let backend = self.device.backend();
        let inputs = (0..projection.input_schema().fields().len())
            .map(|i| {
                if !self.reads[i] {
                    return Ok(None);
                }
                let array = projection.input_column(batch, i)?;
                // The CPU's "upload" is a handle to the host array: nothing to cache.
                if self.device.is_cpu() {
                    self.device.upload(array).map(Some)
                } else {
                    DeviceTier::global().upload(&self.device, array).map(Some)
                }
            })
            .collect::<Result<Vec<_>>>();
        let schema = self.projection().output_schema();
        let launched = inputs.and_then(|inputs| {
            let outputs = match &self.unfused {
                None => {
                    let refs: Vec<_> = inputs.iter().map(Option::as_ref).collect();
                    backend.launch(projection, &refs)?
                }
                Some(unfused) => backend.launch_op_by_op(unfused, inputs)?,
            };
            outputs
                .iter()
                .zip(schema.fields())
                .map(|(o, field)| {
                    // Outputs computed in f32 go back to the f64 the step declared.
                    let column = backend.download(o)?;
                    if column.data_type() == field.data_type() {
                        Ok(column)
                    } else {
                        Ok(arrow_cast::cast(&column, field.data_type())?)
                    }
                })
                .collect::<Result<Vec<_>>>()
        });
        match launched {
            Ok(columns) => Ok(RecordBatch::try_new(schema, columns)?),
            Err(Error::Device {
                failure: DeviceFailure::OutOfMemory,
                ..
            }) if batch.num_rows() >= 2 * MIN_SPLIT_ROWS => {
                DeviceTier::global().evict_device(&self.device);
                let half = batch.num_rows() / 2;
                let parts = [
                    self.on_device(&batch.slice(0, half))?,
                    self.on_device(&batch.slice(half, batch.num_rows() - half))?,
                ];
                Ok(arrow_select::concat::concat_batches(
                    &self.projection().output_schema(),
                    &parts,
                )?)
            }
            Err(e) => Err(e),
        }
    }
}

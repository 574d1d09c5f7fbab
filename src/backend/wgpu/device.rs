//! The wgpu adapter and device, and the guarded calls every verb goes through.
//!
//! wgpu reports misuse and allocation failures through error scopes, or else
//! through a handler that panics by default. Every device call here runs
//! inside [`WgpuBackend::scoped`], which turns what the scopes caught into an
//! [`Error::Device`]; the uncaptured-error handler only logs, for errors raised
//! outside any scope (there should be none).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use wgpu::util::DeviceExt;

use super::codegen::validate;
use crate::backend::{DeviceInfo, DeviceKind};
use crate::error::{DeviceFailure, Error, Result};

/// Rows of a column are cut into pieces that are whole multiples of this, so
/// that every piece starts on a word of the bit words and on a block of the
/// reduction (see `kernels/wgsl/reduce.wgsl`).
const PIECE_GRANULE: u64 = 4096;

/// A GPU (or a software Vulkan driver) through wgpu.
///
/// Open it once per process with [`WgpuBackend::shared`]; every verb of
/// [`Backend`](crate::backend::Backend) is safe to call from several threads.
pub struct WgpuBackend {
    pub(super) info: DeviceInfo,
    /// The device as errors name it: `wgpu: <adapter>`, with `[software]` for CPU adapters.
    name: String,
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    /// The largest byte range bound to one storage binding: the adapter's
    /// limit, or less when tests force columns to be split.
    binding_limit: u64,
    /// Compiled pipelines by their WGSL source.
    pipelines: Mutex<HashMap<String, wgpu::ComputePipeline>>,
}

/// One dispatch of a pipeline: its bindings and its workgroup grid.
pub(crate) struct Dispatch<'a> {
    pub entries: Vec<wgpu::BindGroupEntry<'a>>,
    pub groups: [u32; 3],
}

impl<'a> Dispatch<'a> {
    /// A dispatch binding `resources` to bindings 0, 1, 2, ... in order.
    pub fn new(
        resources: impl IntoIterator<Item = wgpu::BindingResource<'a>>,
        groups: [u32; 3],
    ) -> Self {
        let entries = (0u32..)
            .zip(resources)
            .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource })
            .collect();
        Dispatch { entries, groups }
    }
}

impl WgpuBackend {
    /// Open the adapter chosen by the environment and a device on it.
    ///
    /// `FUSEFLOW_WGPU_BACKEND` (`vulkan`, `metal` or `dx12`) restricts the
    /// graphics API and `FUSEFLOW_WGPU_ADAPTER` picks adapters whose name
    /// contains it (case-insensitive); among the rest a discrete GPU is
    /// preferred, then an integrated one, then a software driver. The device
    /// gets the adapter's own limits, not WebGPU's conservative defaults.
    ///
    /// # Errors
    /// [`DeviceFailure::Unavailable`] when no adapter matches or the device
    /// cannot be opened.
    pub fn open() -> Result<WgpuBackend> {
        let unavailable =
            |message: String| Error::device("wgpu", DeviceFailure::Unavailable, message);
        let adapter = choose_adapter()?;
        let adapter_info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("fuseflow"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| {
            unavailable(format!(
                "adapter {} refused a device: {e}; try another adapter (FUSEFLOW_WGPU_ADAPTER) or --device cpu",
                adapter_info.name
            ))
        })?;
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            eprintln!("fuseflow: wgpu error outside any error scope (please report this): {e}");
        }));
        let software = adapter_info.device_type == wgpu::DeviceType::Cpu;
        let name = format!(
            "wgpu: {}{}",
            adapter_info.name,
            if software { " [software]" } else { "" }
        );
        let api = match adapter_info.backend {
            wgpu::Backend::Vulkan => "Vulkan".to_string(),
            wgpu::Backend::Metal => "Metal".to_string(),
            wgpu::Backend::Dx12 => "DX12".to_string(),
            other => format!("{other:?}"),
        };
        Ok(WgpuBackend {
            info: DeviceInfo {
                kind: DeviceKind::Wgpu,
                name: adapter_info.name,
                software,
                api,
                f64: false,
                i64: false,
            },
            name,
            device,
            queue,
            binding_limit: limits.max_storage_buffer_binding_size,
            limits,
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// The name of the adapter [`WgpuBackend::open`] would use, when it is a
    /// software one (Mesa's lavapipe): `auto` leaves such an adapter alone,
    /// so the planner asks this rather than open a device it would not use
    /// (which costs tens of milliseconds and of megabytes).
    pub fn software_adapter() -> Option<String> {
        let info = choose_adapter().ok()?.get_info();
        (info.device_type == wgpu::DeviceType::Cpu).then_some(info.name)
    }

    /// The process-wide backend, opened on first use.
    ///
    /// # Errors
    /// The error of [`WgpuBackend::open`], the same on every call when opening failed.
    pub fn shared() -> Result<Arc<WgpuBackend>> {
        static SHARED: OnceLock<std::result::Result<Arc<WgpuBackend>, (DeviceFailure, String)>> =
            OnceLock::new();
        let opened = SHARED.get_or_init(|| match WgpuBackend::open() {
            Ok(backend) => Ok(Arc::new(backend)),
            Err(Error::Device {
                failure, message, ..
            }) => Err((failure, message)),
            Err(other) => Err((DeviceFailure::Unavailable, other.to_string())),
        });
        match opened {
            Ok(backend) => Ok(Arc::clone(backend)),
            Err((failure, message)) => Err(Error::device("wgpu", *failure, message.clone())),
        }
    }

    /// Limit storage bindings to `bytes` (rounded to whole pieces), so that
    /// tests can make columns split into several launches without allocating
    /// gigabytes.
    #[doc(hidden)]
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        self.binding_limit = bytes.min(self.limits.max_storage_buffer_binding_size);
        self
    }

    /// The device as errors name it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The most workgroups along one dimension of a dispatch.
    pub(crate) fn max_groups(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    /// The largest byte range one storage binding may cover.
    pub(crate) fn binding_limit(&self) -> u64 {
        self.binding_limit
    }

    /// Rows per piece of a column of 4-byte values: the most that fit one
    /// binding, in whole granules (each piece's bit words then start on a
    /// binding offset the device accepts).
    pub(crate) fn piece_rows(&self) -> usize {
        let align = u64::from(self.limits.min_storage_buffer_offset_alignment);
        let granule = PIECE_GRANULE.max(align * 8);
        let rows = (self.binding_limit / 4 / granule).max(1) * granule;
        rows.min(1 << 30) as usize
    }

    /// An error of kind `failure` on this device.
    pub(crate) fn error(&self, failure: DeviceFailure, message: impl Into<String>) -> Error {
        Error::device(self.name.clone(), failure, message)
    }

    /// Run `f` inside error scopes and turn what they caught into an error:
    /// out of memory as [`DeviceFailure::OutOfMemory`], validation errors as
    /// `validation`, internal errors as [`DeviceFailure::Launch`].
    pub(crate) fn scoped<T>(
        &self,
        what: &str,
        validation: DeviceFailure,
        f: impl FnOnce() -> T,
    ) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let invalid = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        // Scopes pop in reverse order of their pushes.
        let caught = [
            (pollster::block_on(internal.pop()), DeviceFailure::Launch),
            (pollster::block_on(invalid.pop()), validation),
            (pollster::block_on(oom.pop()), DeviceFailure::OutOfMemory),
        ];
        match caught.into_iter().find_map(|(e, kind)| e.map(|e| (e, kind))) {
            None => Ok(out),
            Some((e, DeviceFailure::OutOfMemory)) => Err(self.error(
                DeviceFailure::OutOfMemory,
                format!("{what}: out of device memory ({e}); process smaller batches or use --device cpu"),
            )),
            Some((e, kind)) => Err(self.error(
                kind,
                format!("{what}: {e} (a bug in fuseflow's use of wgpu; please report it, and use --device cpu meanwhile)"),
            )),
        }
    }

    /// A zeroed storage buffer of at least `bytes` (rounded up to whole words).
    ///
    /// # Errors
    /// [`DeviceFailure::OutOfMemory`] above the device's largest buffer or when
    /// the allocation fails.
    pub(crate) fn buffer(
        &self,
        what: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        let size = bytes.div_ceil(4).max(1) * 4;
        if size > self.limits.max_buffer_size {
            return Err(self.error(
                DeviceFailure::OutOfMemory,
                format!(
                    "{what} needs {} MiB in one buffer, the device allows {} MiB; process smaller \
                     batches or use --device cpu",
                    size >> 20,
                    self.limits.max_buffer_size >> 20
                ),
            ));
        }
        self.scoped(
            &format!("allocating {what}"),
            DeviceFailure::OutOfMemory,
            || {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(what),
                    size,
                    usage,
                    mapped_at_creation: false,
                })
            },
        )
    }

    /// A storage buffer for a kernel's output or a column.
    pub(crate) fn storage(&self, what: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.buffer(
            what,
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// A uniform buffer holding `words` (a kernel's parameters), padded to 16 bytes.
    pub(crate) fn uniform(&self, words: &[u32]) -> Result<wgpu::Buffer> {
        let mut padded = words.to_vec();
        padded.resize(words.len().div_ceil(4).max(1) * 4, 0);
        self.scoped(
            "allocating kernel parameters",
            DeviceFailure::OutOfMemory,
            || {
                self.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("params"),
                        contents: bytemuck::cast_slice(&padded),
                        usage: wgpu::BufferUsages::UNIFORM,
                    })
            },
        )
    }

    /// The compute pipeline of `source` (entry point `main`), compiled on first use.
    ///
    /// # Errors
    /// [`DeviceFailure::Compile`] when the shader does not validate.
    pub(crate) fn pipeline(&self, what: &str, source: &str) -> Result<wgpu::ComputePipeline> {
        let cache = || {
            self.pipelines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(pipeline) = cache().get(source) {
            return Ok(pipeline.clone());
        }
        // naga's own report names the line at fault, which wgpu's summary does not.
        validate(source).map_err(|report| {
            self.error(
                DeviceFailure::Compile,
                format!("{what} does not compile (a bug in fuseflow; please report it, and use --device cpu meanwhile):\n{report}"),
            )
        })?;
        let pipeline = self.scoped(&format!("compiling {what}"), DeviceFailure::Compile, || {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(what),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(what),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })?;
        Ok(cache()
            .entry(source.to_string())
            .or_insert(pipeline)
            .clone())
    }

    /// Compile a WGSL compute shader (entry point `main`) as kernels are
    /// compiled, to check that a bad shader is a typed error.
    #[doc(hidden)]
    pub fn compile_wgsl(&self, source: &str) -> Result<()> {
        self.pipeline("test shader", source).map(drop)
    }

    /// The workgroup grid for `groups` workgroups in a row: at most the
    /// device's limit along x, the rest along y. Kernels number their
    /// workgroup `y * grid[0] + x` and skip those past the end.
    pub(crate) fn grid(&self, groups: u64) -> Result<[u32; 3]> {
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension);
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x).max(1);
        if y > max {
            return Err(self.error(
                DeviceFailure::OutOfMemory,
                format!("{groups} workgroups exceed the device's grid; process smaller batches"),
            ));
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Record `dispatches` of `pipeline` in one command buffer and submit it.
    pub(crate) fn dispatch(
        &self,
        what: &str,
        pipeline: &wgpu::ComputePipeline,
        dispatches: Vec<Dispatch<'_>>,
    ) -> Result<()> {
        self.scoped(what, DeviceFailure::Launch, || {
            let layout = pipeline.get_bind_group_layout(0);
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(what) });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(what),
                    timestamp_writes: None,
                });
                pass.set_pipeline(pipeline);
                for d in &dispatches {
                    let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(what),
                        layout: &layout,
                        entries: &d.entries,
                    });
                    pass.set_bind_group(0, &group, &[]);
                    let [x, y, z] = d.groups;
                    pass.dispatch_workgroups(x, y, z);
                }
            }
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Copy the first `count` elements of `buffer` to the host, waiting for
    /// the work queued before.
    pub(crate) fn read<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        count: usize,
    ) -> Result<Vec<T>> {
        let bytes = (count * size_of::<T>()) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.buffer(
            "download staging",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let size = staging.size();
        let (tx, rx) = std::sync::mpsc::channel();
        self.scoped("download", DeviceFailure::Launch, || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("download"),
                });
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
            self.queue.submit([encoder.finish()]);
            staging
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |mapped| drop(tx.send(mapped)));
        })?;
        self.wait()?;
        let failed = |e: &dyn fmt::Display| {
            self.error(
                DeviceFailure::Launch,
                format!(
                    "download: mapping the staging buffer failed: {e}; retry, or use --device cpu"
                ),
            )
        };
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(&e)),
            Err(e) => return Err(failed(&e)),
        }
        let out = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| failed(&e))?;
            bytemuck::pod_collect_to_vec(&view[..bytes as usize])
        };
        staging.unmap();
        Ok(out)
    }

    /// The binding of `bytes` bytes of `buffer` from byte `offset`.
    pub(crate) fn range(
        buffer: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size: NonZeroU64::new(bytes.div_ceil(4).max(1) * 4),
        })
    }

    /// Wait until all work queued on the device has finished.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(drop)
            .map_err(|e| {
                self.error(
                    DeviceFailure::Launch,
                    format!("waiting for the device failed: {e}; the device may be lost, use --device cpu"),
                )
            })
    }
}

/// The adapter [`WgpuBackend::open`] would use: among those with compute
/// shaders (and, with `FUSEFLOW_WGPU_ADAPTER`, a matching name), a discrete
/// GPU first and a software one last.
fn choose_adapter() -> Result<wgpu::Adapter> {
    let unavailable = |message: String| Error::device("wgpu", DeviceFailure::Unavailable, message);
    let (backends, apis) = match std::env::var("FUSEFLOW_WGPU_BACKEND") {
        Err(_) => (
            wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
            "Vulkan, Metal or DX12",
        ),
        Ok(name) => match name.to_ascii_lowercase().as_str() {
            "vulkan" => (wgpu::Backends::VULKAN, "Vulkan"),
            "metal" => (wgpu::Backends::METAL, "Metal"),
            "dx12" => (wgpu::Backends::DX12, "DX12"),
            _ => {
                return Err(unavailable(format!(
                    "FUSEFLOW_WGPU_BACKEND={name:?} is not one of vulkan, metal, dx12; fix or unset it"
                )));
            }
        },
    };
    let wanted = std::env::var("FUSEFLOW_WGPU_ADAPTER")
        .ok()
        .map(|s| s.to_lowercase());
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let found: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    adapters
        .into_iter()
        .filter(|a| {
            let caps = a.get_downlevel_capabilities();
            caps.flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .filter(|a| {
            wanted
                .as_deref()
                .is_none_or(|w| a.get_info().name.to_lowercase().contains(w))
        })
        .min_by_key(|a| preference(a.get_info().device_type))
        .ok_or_else(|| {
            let filter = match &wanted {
                Some(w) => format!(" whose name contains {w:?} (FUSEFLOW_WGPU_ADAPTER)"),
                None => String::new(),
            };
            let advice = if found.is_empty() {
                "no adapter was found. Install a Vulkan driver (on Debian/Ubuntu: apt-get \
                     install mesa-vulkan-drivers libvulkan1), or use --device cpu"
                    .to_string()
            } else {
                format!(
                    "adapters found: {}. Pick one with FUSEFLOW_WGPU_ADAPTER, or use --device cpu",
                    found.join(", ")
                )
            };
            unavailable(format!(
                "no {apis} adapter with compute shaders{filter}; {advice}"
            ))
        })
}

/// Lower is better: real GPUs before software drivers.
fn preference(kind: wgpu::DeviceType) -> u8 {
    match kind {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

impl fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WgpuBackend")
            .field("info", &self.info)
            .field("binding_limit", &self.binding_limit)
            .finish_non_exhaustive()
    }
}

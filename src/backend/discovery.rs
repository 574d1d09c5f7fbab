//! Device discovery: which devices this process can use, opened once.

use super::{Device, DeviceChoice, DeviceKind};

/// The devices a run may use: the CPU always, and each GPU that opened,
/// with the reason for each one that did not.
#[derive(Clone, Debug)]
pub struct DeviceSet {
    devices: Vec<Device>,
    missing: Vec<(DeviceKind, String)>,
    /// Software adapters `auto` found and left alone without opening them.
    unopened_software: Vec<(DeviceKind, String)>,
}

impl DeviceSet {
    /// Only the CPU.
    pub fn cpu_only() -> DeviceSet {
        DeviceSet {
            devices: vec![Device::cpu()],
            missing: Vec::new(),
            unopened_software: Vec::new(),
        }
    }

    /// The CPU and `gpus` (devices over any backend, e.g. a test's).
    pub fn with(gpus: impl IntoIterator<Item = Device>) -> DeviceSet {
        let mut set = DeviceSet::cpu_only();
        set.devices.extend(gpus.into_iter().filter(|d| !d.is_cpu()));
        set
    }

    /// Open the GPUs that `choices` may need: the named ones, and under
    /// `auto` every kind. Each GPU backend is opened once per process.
    pub fn probe(choices: impl IntoIterator<Item = DeviceChoice>) -> DeviceSet {
        let mut kinds: Vec<DeviceKind> = Vec::new();
        let mut wgpu_named = false;
        for choice in choices {
            let wanted = match choice {
                DeviceChoice::Auto => vec![DeviceKind::Cuda, DeviceKind::Wgpu],
                DeviceChoice::On(DeviceKind::Cpu) => vec![],
                DeviceChoice::On(kind) => {
                    wgpu_named |= kind == DeviceKind::Wgpu;
                    vec![kind]
                }
            };
            for w in wanted {
                if !kinds.contains(&w) {
                    kinds.push(w);
                }
            }
        }
        let mut set = DeviceSet::cpu_only();
        for kind in kinds {
            // Wanted only by `auto`, a software wgpu adapter is not opened;
            // on Linux, without a GPU device node no other kind can exist, so
            // the Vulkan loader (which loads the software driver) is not even
            // started.
            let auto_only = kind == DeviceKind::Wgpu && !wgpu_named;
            if auto_only && !gpu_device_nodes() {
                set.missing.push((
                    DeviceKind::Wgpu,
                    "no GPU device node (/dev/dri/renderD*, /dev/nvidia*): only a software adapter could open, which auto leaves alone".into(),
                ));
                continue;
            }
            if auto_only && let Some(name) = super::wgpu::WgpuBackend::software_adapter() {
                set.missing.push((
                    DeviceKind::Wgpu,
                    format!("only the software adapter {name}, which auto leaves alone"),
                ));
                set.unopened_software.push((DeviceKind::Wgpu, name));
                continue;
            }
            match Device::open(kind) {
                Ok(device) => set.devices.push(device),
                Err(e) => set.missing.push((kind, e.to_string())),
            }
        }
        set
    }

    /// The same set, each device configured by `f` (how it computes, whether it fuses).
    pub fn map(self, f: impl FnMut(Device) -> Device) -> DeviceSet {
        DeviceSet {
            devices: self.devices.into_iter().map(f).collect(),
            ..self
        }
    }

    /// The device of `kind`, when it opened.
    pub fn get(&self, kind: DeviceKind) -> Option<&Device> {
        self.devices.iter().find(|d| d.info().kind == kind)
    }

    /// Hardware GPUs: the ones `auto` may choose (software adapters are no
    /// faster than the CPU backend).
    pub fn hardware_gpus(&self) -> impl Iterator<Item = &Device> {
        self.devices
            .iter()
            .filter(|d| !d.is_cpu() && !d.info().software)
    }

    /// Software adapters that opened (`auto` leaves them alone).
    pub fn software_gpus(&self) -> impl Iterator<Item = &Device> {
        self.devices
            .iter()
            .filter(|d| !d.is_cpu() && d.info().software)
    }

    /// Software adapters `auto` found and did not open, as `(kind, name)`.
    pub fn unopened_software(&self) -> impl Iterator<Item = &(DeviceKind, String)> {
        self.unopened_software.iter()
    }

    pub(crate) fn why_missing(&self, kind: DeviceKind) -> String {
        self.missing
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or_else(|| format!("{kind} was not opened"), |(_, why)| why.clone())
    }
}

/// Whether this machine may have a hardware GPU: always off Linux; on Linux,
/// when a render node or an NVIDIA device node exists (a hardware Vulkan,
/// Metal-less GPU is reached through one of them).
fn gpu_device_nodes() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let named = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    named("/dev/dri", "renderD") || named("/dev", "nvidia")
}

//! The cost model: how long an op takes on each kind of device.
//!
//! An op that reads `in` bytes, writes `out` bytes and does `flops`
//! arithmetic operations (an estimate from its kind and shape: a few per
//! value for statistics and row-local maps, `2 d²` per row and iteration for
//! training, see [`LogicalOp::flops`](super::logical::LogicalOp::flops)) costs
//!
//! - on the CPU: `(in + out) / cpu_gbs + flops / cpu_gflops + launches *
//!   cpu_launch_us`;
//! - on a GPU: `launches * launch_us + (in + out) / bandwidth_gbs + flops /
//!   gflops + (in + out) / link_gbs`, the last term being the upload of its
//!   input and the download of its output over the host link (step outputs
//!   live in host memory as Arrow).
//!
//! (`launches` is 1 for a fit or a fused map, and a few per iteration for
//! training; see [`Work`].)
//!
//! The constants come from `fuseflow calibrate`, which measures this machine
//! and stores them in the workspace (`calibration.toml`); without it, the
//! defaults below apply. They describe a typical workstation: a CPU streaming
//! 20 GB/s through fused kernels and computing 50 GFLOP/s (f64, all cores),
//! with 10 µs to start a kernel; a PCIe 4 link at a practical 12 GB/s and a
//! data-centre GPU at 1 TB/s and 20 TFLOP/s (f32), with 100 µs per CUDA step
//! for launching, synchronizing and the fixed latency of its copies (300 µs
//! through wgpu, at 8 GB/s, 200 GB/s and 5 TFLOP/s). With these numbers
//! streaming work on data in host memory (statistics, normalization, linear
//! scoring) stays on the CPU, since the CPU reads it faster than the link
//! carries it to a GPU, while training, which makes many compute-heavy
//! passes over data copied once, goes to the GPU. The model is deliberately
//! simple: it decides well when one side wins by a wide margin, and it keeps
//! small work on the CPU, where launches and transfers dominate.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::DeviceKind;
use crate::error::{Error, Result};

/// The file, in the workspace directory, that `fuseflow calibrate` writes.
pub const CALIBRATION_FILE: &str = "calibration.toml";

/// How fast a kind of GPU computes and how fast data reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuProfile {
    /// Device memory bandwidth reached by fused kernels, GB/s.
    pub bandwidth_gbs: f64,
    /// Host-to-device and device-to-host copy bandwidth, GB/s.
    pub link_gbs: f64,
    /// Fixed cost of one kernel launch including its synchronization, µs.
    pub launch_us: f64,
    /// Arithmetic throughput on f32 dense products, GFLOP/s.
    pub gflops: f64,
}

/// The cost model's constants for this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Where the numbers come from: `defaults`, or what `calibrate` measured.
    pub source: String,
    /// Bytes per second the CPU streams through a fused kernel, GB/s.
    pub cpu_gbs: f64,
    /// Fixed cost of starting a kernel on the CPU (rayon fork/join), µs.
    pub cpu_launch_us: f64,
    /// Arithmetic throughput of the CPU trainers' dense passes (f64, all
    /// cores), GFLOP/s.
    pub cpu_gflops: f64,
    /// CUDA GPUs.
    pub cuda: GpuProfile,
    /// wgpu adapters.
    pub wgpu: GpuProfile,
}

impl Default for Calibration {
    /// The documented defaults (see the module documentation).
    fn default() -> Self {
        Calibration {
            source: "defaults".into(),
            cpu_gbs: 20.0,
            cpu_launch_us: 10.0,
            cpu_gflops: 50.0,
            cuda: GpuProfile {
                bandwidth_gbs: 1000.0,
                link_gbs: 12.0,
                launch_us: 100.0,
                gflops: 20_000.0,
            },
            wgpu: GpuProfile {
                bandwidth_gbs: 200.0,
                link_gbs: 8.0,
                launch_us: 300.0,
                gflops: 5_000.0,
            },
        }
    }
}

/// What an op does, as the cost model counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Bytes read from the op's inputs (in host memory).
    pub bytes_in: u64,
    /// Bytes written to its outputs (in host memory).
    pub bytes_out: u64,
    /// Arithmetic operations.
    pub flops: f64,
    /// Kernels launched and waited for: 1 for a fused map or a fit, several
    /// per iteration for training.
    pub launches: f64,
}

/// The estimated cost of an op on one device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The kind of device.
    pub device: DeviceKind,
    /// Estimated seconds, transfers included.
    pub seconds: f64,
    /// Bytes copied between host and device.
    pub transfer_bytes: u64,
}

impl Calibration {
    /// The profile of a kind of GPU; `None` for the CPU.
    pub fn gpu(&self, kind: DeviceKind) -> Option<&GpuProfile> {
        match kind {
            DeviceKind::Cpu => None,
            DeviceKind::Cuda => Some(&self.cuda),
            DeviceKind::Wgpu => Some(&self.wgpu),
        }
    }

    /// The cost of `work` on `device`.
    pub fn estimate(&self, device: DeviceKind, work: &Work) -> Estimate {
        let moved = (work.bytes_in + work.bytes_out) as f64;
        match self.gpu(device) {
            None => Estimate {
                device,
                seconds: moved / (self.cpu_gbs * 1e9)
                    + work.flops / (self.cpu_gflops * 1e9)
                    + work.launches * self.cpu_launch_us * 1e-6,
                transfer_bytes: 0,
            },
            Some(gpu) => Estimate {
                device,
                seconds: work.launches * gpu.launch_us * 1e-6
                    + moved / (gpu.bandwidth_gbs * 1e9)
                    + work.flops / (gpu.gflops * 1e9)
                    + moved / (gpu.link_gbs * 1e9),
                transfer_bytes: work.bytes_in + work.bytes_out,
            },
        }
    }

    /// The calibration stored in workspace directory `dir`, or the defaults
    /// when none was stored.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it exists but cannot be read or parsed.
    pub fn load(dir: &Path) -> Result<Calibration> {
        let path = dir.join(CALIBRATION_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Calibration::default());
            }
            Err(e) => {
                return Err(
                    Error::io(&path, format!("cannot read the calibration: {e}")).caused_by(e),
                );
            }
        };
        let calibration: Calibration = toml::from_str(&text).map_err(|e| {
            Error::io(
                &path,
                format!(
                    "not a calibration file ({}); run `fuseflow calibrate` again or delete it",
                    e.message()
                ),
            )
        })?;
        calibration.check(&path)?;
        Ok(calibration)
    }

    /// Write the calibration into workspace directory `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be written.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let path = dir.join(CALIBRATION_FILE);
        let text = toml::to_string(self)
            .map_err(|e| Error::Internal(format!("cannot encode the calibration: {e}")))?;
        std::fs::write(&path, text).map_err(|e| Error::io_from(&path, e))
    }

    /// Every rate positive and finite, so estimates are meaningful.
    fn check(&self, path: &Path) -> Result<()> {
        let rates = [
            ("cpu_gbs", self.cpu_gbs),
            ("cpu_launch_us", self.cpu_launch_us),
            ("cpu_gflops", self.cpu_gflops),
            ("cuda.gflops", self.cuda.gflops),
            ("wgpu.gflops", self.wgpu.gflops),
            ("cuda.bandwidth_gbs", self.cuda.bandwidth_gbs),
            ("cuda.link_gbs", self.cuda.link_gbs),
            ("cuda.launch_us", self.cuda.launch_us),
            ("wgpu.bandwidth_gbs", self.wgpu.bandwidth_gbs),
            ("wgpu.link_gbs", self.wgpu.link_gbs),
            ("wgpu.launch_us", self.wgpu.launch_us),
        ];
        for (name, value) in rates {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::io(
                    path,
                    format!(
                        "'{name}' is {value}; it must be a positive number (run `fuseflow calibrate` again)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Estimate {
    /// The cost alone: `30.0 ms incl. 1.3 GB transfer`.
    pub fn cost(&self) -> String {
        let time = format_seconds(self.seconds);
        match self.transfer_bytes {
            0 => time,
            bytes => format!("{time} incl. {} transfer", crate::data::format_bytes(bytes)),
        }
    }
}

/// `cuda 30.0 ms incl. 1.3 GB transfer`.
impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.device, self.cost())
    }
}

/// A duration for people: `12 µs`, `3.4 ms`, `1.25 s`.
pub(crate) fn format_seconds(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.0} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

//! Placement: the device of each op or fused group.

use super::cost::{Calibration, Estimate};
use super::logical::LogicalOp;
use crate::backend::{Device, DeviceKind, DeviceSet};

/// Where an op (or a fused group) runs, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The device.
    pub device: DeviceKind,
    /// Why: the pin, the run's device, or the cost model's comparison.
    pub reason: String,
    /// The cost model's estimate on the chosen device, when sizes are known.
    pub estimate: Option<Estimate>,
    /// The note the step's run record gets: where `auto` chose, or where the
    /// device asked for was missing. `None` when the step computes where it
    /// asked to.
    pub note: Option<String>,
}

impl Placement {
    /// The placement with the note `op` gets under it: a step that computes
    /// on a device is told where `auto` put it, or that the device it asked
    /// for was missing.
    pub(super) fn noted_for(self, op: &LogicalOp) -> Placement {
        let asked = op.device.kind();
        let note = (op.uses_device && asked != Some(self.device))
            .then(|| format!("placed: {}", self.reason));
        Placement { note, ..self }
    }
}

/// Place `op` (for a fused group: an op spanning the group) on the device it
/// asks for, among `devices`, with costs from `calibration`.
pub fn place(op: &LogicalOp, devices: &DeviceSet, calibration: &Calibration) -> Placement {
    let estimate = |kind| match (op.bytes_in, op.bytes_out) {
        (Some(i), Some(o)) => Some(calibration.estimate(kind, &op.work(i, o))),
        (None, Some(o)) => Some(calibration.estimate(kind, &op.work(0, o))),
        _ => None,
    };
    let on = |device: DeviceKind, reason: String| Placement {
        device,
        reason,
        estimate: estimate(device),
        note: None,
    };
    if !op.uses_device {
        return Placement {
            estimate: None,
            ..on(DeviceKind::Cpu, "no device work".into())
        };
    }
    let how = if op.pinned { "pinned to" } else { "run device" };
    match op.device.kind() {
        None => auto(op, devices, &estimate),
        Some(DeviceKind::Cpu) => on(DeviceKind::Cpu, format!("{how} cpu")),
        Some(kind) => match devices.get(kind) {
            Some(_) => on(kind, format!("{how} {kind}")),
            None => on(
                DeviceKind::Cpu,
                format!("{how} {kind}, unavailable: {}", devices.why_missing(kind)),
            ),
        },
    }
}

/// The cost model's choice among the CPU and the hardware GPUs that can
/// compute on every type the op uses.
fn auto(
    op: &LogicalOp,
    devices: &DeviceSet,
    estimate: &dyn Fn(DeviceKind) -> Option<Estimate>,
) -> Placement {
    let cpu = |reason: &str| Placement {
        device: DeviceKind::Cpu,
        reason: format!("auto: cpu ({reason})"),
        estimate: estimate(DeviceKind::Cpu),
        note: None,
    };
    let gpus: Vec<&Device> = devices.hardware_gpus().collect();
    if gpus.is_empty() {
        return cpu("no GPU");
    }
    let able: Vec<&Device> = gpus
        .iter()
        .copied()
        .filter(|d| op.dtypes.iter().all(|t| d.computes(*t)))
        .collect();
    if able.is_empty() {
        let lacking = op
            .dtypes
            .iter()
            .find(|t| !gpus[0].computes(**t))
            .map_or_else(String::new, |t| t.to_string());
        return cpu(&format!(
            "{} cannot compute on {lacking}",
            gpus[0].info().kind
        ));
    }
    let Some(on_cpu) = estimate(DeviceKind::Cpu) else {
        return cpu("size unknown before running");
    };
    let mut estimates: Vec<Estimate> = vec![on_cpu];
    estimates.extend(able.iter().filter_map(|d| estimate(d.info().kind)));
    let best = estimates
        .iter()
        .copied()
        .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .unwrap_or(on_cpu);
    let others: Vec<String> = estimates
        .iter()
        .filter(|e| e.device != best.device)
        .map(ToString::to_string)
        .collect();
    Placement {
        device: best.device,
        reason: format!(
            "auto: {}, est. {} vs {}",
            best.device,
            best.cost(),
            others.join(", ")
        ),
        estimate: Some(best),
        note: None,
    }
}

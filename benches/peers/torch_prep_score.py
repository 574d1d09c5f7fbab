#!/usr/bin/env python3
"""PyTorch on CUDA for fuseflow's "prep+score" workload (see prep_score.py).

Workload: N rows x 32 float32 feature columns f0..f31, 1% nulls in f0..f7.
fit: per column, mean and population std (ddof=0) of the non-null values,
accumulated in f64. apply: x = fill_null(f_j, mean_j), z = clip((x - mean_j) /
std_j, -5, 5), score = sigmoid(sum_j w_j z_j + b), one f32 column.

Data comes from prep_score.generate (same seed, same values). Nulls are a
bool mask per nullable column, torch having no validity bitmaps. Timed:

* device  -- data already in GPU memory; fit and apply run there.
* host    -- data in pinned host memory; each phase includes copying its
             inputs to the device (apply also copies the scores back).

Times are CUDA-event times, median of --repeats after a warm-up. GB/s counts
the bytes a phase must move at least once: the feature values (4 B/row/col),
masks (1 B/row/col, nullable columns), and for apply the f32 scores. Also
measured: device-to-device copy bandwidth (1 GiB `copy_`, read + write bytes)
and host-to-device bandwidth (1 GiB from pinned memory). Results are checked
against numpy (prep_score.fit_numpy_naive / apply_numpy_blocked).
"""

import argparse
import importlib.util
import json
import statistics
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
for _optional in ("polars", "pyarrow"):  # prep_score's other peers; generate() needs numpy only
    if importlib.util.find_spec(_optional) is None:
        sys.modules[_optional] = types.ModuleType(_optional)
import prep_score as peer  # noqa: E402

COPY_BYTES = peer.COPY_BYTES


def median_ms(repeats: int, fn) -> tuple[float, object]:
    """Median CUDA-event time of `fn()` in ms after one warm-up, and its last result."""
    result = fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        result = fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), result


def fit(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and population std over valid rows, in f64 (two passes).

    x: (32, N) f32; valid: (8, N) bool for the nullable columns f0..f7.
    """
    x64 = x.to(torch.float64)
    n_null = x.shape[0] - valid.shape[0]
    keep = torch.cat([valid, torch.ones(n_null, x.shape[1], dtype=torch.bool, device=x.device)])
    x64 = torch.where(keep, x64, 0.0)
    count = keep.sum(dim=1, dtype=torch.float64)
    mean = x64.sum(dim=1) / count
    dev = torch.where(keep, x64 - mean[:, None], 0.0)
    std = torch.sqrt((dev * dev).sum(dim=1) / count)
    return mean, std


def apply(x: torch.Tensor, valid: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """score = sigmoid(w . clip((fill_null(x, mean) - mean) / std, -5, 5) + b), in f32."""
    m32, s32 = mean.to(torch.float32)[:, None], std.to(torch.float32)[:, None]
    nv = valid.shape[0]
    filled = torch.cat([torch.where(valid, x[:nv], m32[:nv]), x[nv:]])
    z = ((filled - m32) / s32).clamp_(-peer.CLIP, peer.CLIP)
    return torch.sigmoid(w @ z + peer.BIAS)


def bandwidths(repeats: int) -> dict:
    dev = torch.device("cuda")
    src = torch.ones(COPY_BYTES // 4, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    d2d_ms, _ = median_ms(repeats, lambda: dst.copy_(src))
    host = torch.ones(COPY_BYTES // 4, dtype=torch.float32).pin_memory()
    h2d_ms, _ = median_ms(repeats, lambda: dst.copy_(host, non_blocking=True))
    d2h_ms, _ = median_ms(repeats, lambda: host.copy_(dst, non_blocking=True))
    return {
        "d2d_copy_gbps": 2 * COPY_BYTES / d2d_ms / 1e6,
        "h2d_gbps": COPY_BYTES / h2d_ms / 1e6,
        "d2h_gbps": COPY_BYTES / d2h_ms / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=10, help="report the median of this many runs")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with numpy")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch.cuda is not available: this peer needs an NVIDIA GPU")

    data = peer.generate(args.rows)
    rows, cols = args.rows, peer.N_COLUMNS
    x_host = torch.from_numpy(np.stack(data.columns)).pin_memory()
    valid_host = torch.from_numpy(~np.stack(data.null_masks[: peer.N_NULLABLE])).pin_memory()
    w = torch.tensor(peer.WEIGHTS, dtype=torch.float32, device="cuda")
    x_dev, valid_dev = x_host.cuda(), valid_host.cuda()
    scores_host = torch.empty(rows, dtype=torch.float32).pin_memory()

    def fit_host():
        return fit(x_host.cuda(non_blocking=True), valid_host.cuda(non_blocking=True))

    def apply_host(stats):
        out = apply(x_host.cuda(non_blocking=True), valid_host.cuda(non_blocking=True), *stats, w)
        return scores_host.copy_(out, non_blocking=True)

    in_bytes = rows * (4 * cols + peer.N_NULLABLE)
    out_bytes = rows * 4
    report = {"rows": rows, "repeats": args.repeats, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    fit_ms, stats = median_ms(args.repeats, lambda: fit(x_dev, valid_dev))
    apply_ms, scores = median_ms(args.repeats, lambda: apply(x_dev, valid_dev, *stats, w))
    hfit_ms, _ = median_ms(args.repeats, fit_host)
    happly_ms, _ = median_ms(args.repeats, lambda: apply_host(stats))
    phases = [
        ("device fit", fit_ms, in_bytes),
        ("device apply", apply_ms, in_bytes + out_bytes),
        ("host fit", hfit_ms, in_bytes),
        ("host apply", happly_ms, in_bytes + out_bytes),
    ]
    report.update(bandwidths(args.repeats))
    print(f"torch {torch.__version__} on {report['gpu']}, {rows} rows x {cols} columns, median of {args.repeats}")
    print(f"| phase | ms | GB/s |\n| --- | ---: | ---: |")
    for name, ms, nbytes in phases:
        print(f"| {name} | {ms:.2f} | {nbytes / ms / 1e6:.1f} |")
        report[name.replace(" ", "_") + "_ms"] = ms
    print(f"device-to-device copy: {report['d2d_copy_gbps']:.1f} GB/s (read + write)")
    print(f"host-to-device: {report['h2d_gbps']:.1f} GB/s, device-to-host: {report['d2h_gbps']:.1f} GB/s (pinned)")

    if not args.no_check:
        ref_stats = peer.fit_numpy_naive(data)
        ref_scores = peer.apply_numpy_blocked(data, ref_stats)
        got = (stats[0].cpu().numpy(), stats[1].cpu().numpy())
        report["check"] = peer.verify("torch", got, scores.cpu().numpy(), ref_stats, ref_scores.astype(np.float64))
        print(f"check against numpy: {report['check']}")
    print("TORCH_JSON " + json.dumps(report))


if __name__ == "__main__":
    main()

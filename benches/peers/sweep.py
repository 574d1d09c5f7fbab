#!/usr/bin/env python3.11
"""Sweep benchmark: a 3 x 2 x 3 variant sweep as one run, against its 18
variants run one by one (with a workspace, and without one).

Data: N rows (default 1,000,000; `--rows`) x 32 standardized-ish float32
columns f0..f31 and a 0/1 label y drawn from a logistic model (numpy seed 42),
in one Parquet file under target/sweep-data/ (made once per row count).

Pipeline (one variant):

    read -> fit_stats(f0..f31, quantiles) -> scale(zscore | minmax | robust)
         -> train_logistic(features: all 32 | the first 16, l2: 0.1 | 1 | 10)

Modes, each one wall-clock time of the whole thing through the CLI:

* sweep          `fuseflow run sweep.toml` in a new workspace: the 18 variants
                 compiled into one pipeline (read and statistics once, each
                 scaling once, 18 fits), variants run concurrently.
* separate-ws    the 18 variant specs, `fuseflow run` one after another in one
                 new workspace (each reuses what an earlier one cached: what a
                 user of a cached pipeline tool gets by looping).
* separate-none  the 18 variant specs with `--no-workspace` (what a Hydra
                 multirun or a DVC queue of uncached jobs does: every job
                 recomputes everything).

Usage: python3.11 benches/peers/sweep.py [--rows N] [--fuseflow PATH]
Prints a markdown table; `--markdown-out FILE` writes it too.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURES = 32
SCALINGS = ["zscore", "minmax", "robust"]
FEATURE_SETS = {"all": FEATURES, "half": FEATURES // 2}
L2S = [0.1, 1.0, 10.0]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_data(rows: int, path: Path) -> None:
    """rows x 32 float32 features and a 0/1 int32 label y, in Parquet."""
    rng = np.random.default_rng(42)
    x = rng.standard_normal((rows, FEATURES)).astype(np.float32)
    w = ((np.arange(FEATURES) % 9) - 4) / 8
    z = x.astype(np.float64) @ w - 0.25
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-z))).astype(np.int32)
    columns = {f"f{j}": x[:, j] for j in range(FEATURES)}
    columns["y"] = y
    pq.write_table(pa.table(columns), path, row_group_size=1 << 20)


def features(name: str) -> str:
    return "[" + ", ".join(f'"f{j}"' for j in range(FEATURE_SETS[name])) + "]"


def spec(data: Path, scaling: str, feature_set: str, l2: str, sweep: str = "") -> str:
    """A variant's spec, or with `sweep`, the sweep's."""
    columns = "[" + ", ".join(f'"f{j}"' for j in range(FEATURES)) + "]"
    return f"""name = "sweep-bench"
{sweep}
[[steps]]
name = "raw"
kind = "read"
path = "{data}"

[[steps]]
name = "stats"
kind = "fit_stats"
input = "raw"
columns = {columns}
quantiles = true

[[steps]]
name = "scaled"
kind = "scale"
inputs = {{ data = "raw", stats = "stats" }}
method = "{scaling}"

[[steps]]
name = "model"
kind = "train_logistic"
input = "scaled"
label = "y"
features = {features(feature_set)}
l2 = {l2}
"""


def sweep_spec(data: Path) -> str:
    alternatives = "\n".join(f'{s} = {{ method = "{s}" }}' for s in SCALINGS)
    sets = "\n".join(f"{n} = {{ features = {features(n)} }}" for n in FEATURE_SETS)
    table = f"""
[params.l2]
type = "float"
default = 1.0

[sweep.params]
l2 = {L2S}

[sweep.steps.scaled]
{alternatives}

[sweep.steps.model]
{sets}
"""
    return spec(data, "zscore", "all", '"${l2}"', table)


def run(argv: list[str]) -> float:
    log("$ " + " ".join(argv))
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        log(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{argv[0]} failed with exit status {proc.returncode}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--fuseflow", default=str(REPO_ROOT / "target" / "release" / "fuseflow"))
    ap.add_argument("--markdown-out", type=Path)
    args = ap.parse_args()
    data_dir = REPO_ROOT / "target" / "sweep-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / f"sweep_{args.rows}.parquet"
    if not data.exists():
        log(f"writing {data}")
        make_data(args.rows, data)
    ff = args.fuseflow
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fuseflow-sweep-") as tmp:
        tmp = Path(tmp)
        sweep = tmp / "sweep.toml"
        sweep.write_text(sweep_spec(data))
        variants = []
        for i, (l2, scaling, feature_set) in enumerate(itertools.product(L2S, SCALINGS, FEATURE_SETS)):
            path = tmp / f"variant{i:02}.toml"
            path.write_text(spec(data, scaling, feature_set, repr(l2)))
            variants.append(path)
        times["sweep"] = run([ff, "--workspace", str(tmp / "ws-sweep"), "run", str(sweep), "-q"])
        ws = tmp / "ws-separate"
        times["separate-ws"] = sum(run([ff, "--workspace", str(ws), "run", str(v), "-q"]) for v in variants)
        times["separate-none"] = sum(run([ff, "run", str(v), "--no-workspace", "-q"]) for v in variants)
        shutil.rmtree(tmp / "ws-sweep", ignore_errors=True)
    load = "/".join(f"{v:.2f}" for v in os.getloadavg())
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        f"Sweep benchmark: {args.rows:,} rows x {FEATURES} features, 3 scalings x 2 feature sets x 3 L2 = 18 variants; "
        f"{os.cpu_count()} cores ({cpu}), load {load} at the end; one run of each mode.",
        "",
        "| mode | wall time | the sweep is faster by |",
        "|---|---:|---:|",
    ]
    for mode, t in times.items():
        lines.append(f"| {mode} | {t:.2f} s | {t / times['sweep']:.2f}x |")
    table = "\n".join(lines)
    print(table)
    if args.markdown_out:
        args.markdown_out.write_text(table + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3.11
"""Peer comparison for fuseflow's headline "prep+score" benchmark.

Workload: N rows x 32 float32 feature columns f0..f31; f0..f7 carry 1% nulls.

* fit   -- per column, population mean and standard deviation (ddof=0) over
  the non-null values, accumulated in f64.
* apply -- per column x = fill_null(f_j, mean_j), z = clip((x - mean_j) / std_j,
  -5, 5); then score = sigmoid(sum_j w_j * z_j + b) with w_j = ((j % 7) - 3) / 10
  and b = 0.1, one float32 column of N rows.

The script times numpy (a naive whole-array version and a cache-blocked one)
and polars on data generated here, optionally runs fuseflow's Rust bench
(`benches/peers/prep_score.rs`) for the same workload, checks that the peers
agree, and prints a markdown table. See README.md next to this file.
"""

# Annotations stay unevaluated, so that torch_prep_score.py can import this
# module's data generator where polars and pyarrow are not installed.
from __future__ import annotations

import os

# The blocked numpy fit calls np.dot on blocks of rows; OpenBLAS' thread
# hand-off makes those calls slower, and pinning BLAS keeps every numpy
# variant single-threaded as the table says. Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import polars as pl
import pyarrow as pa

N_COLUMNS = 32
N_NULLABLE = 8
NULL_FRACTION = 0.01
SEED = 42
CLIP = 5.0
BIAS = 0.1
WEIGHTS = [((j % 7) - 3) / 10.0 for j in range(N_COLUMNS)]
BLOCK_ROWS = 131_072  # fastest of 32K..256K rows for both phases on the 2-core EPYC dev box
COPY_BYTES = 1 << 30
SCORE_TOLERANCE = 1e-4
STATS_REL_TOLERANCE = 1e-6
FUSEFLOW_MARKER = "FUSEFLOW_JSON "
FUSEFLOW_KEYS = {"rows", "fit_s", "apply_s", "copy_gbps", "threads"}
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FUSEFLOW_CMD = "cargo bench --bench peers_prep_score -- --rows {rows} --repeats {repeats}"

# Per-column (mean, std) in f64, as two arrays of length N_COLUMNS.
Stats = tuple[np.ndarray, np.ndarray]


@dataclass
class Dataset:
    """The columns as numpy arrays plus a boolean null mask per column.

    Values under a null are NaN, so a kernel that ignores the mask shows up
    as a failed check rather than as a slightly different number.
    """

    columns: list[np.ndarray]
    null_masks: list[Optional[np.ndarray]]

    @property
    def rows(self) -> int:
        return len(self.columns[0])


@dataclass
class Result:
    """Best-of-repeats timings of one implementation."""

    name: str
    threads: int
    fit_s: float
    apply_s: float


@dataclass
class Peer:
    """A Python implementation: its fit and apply phases, bound to its data."""

    name: str
    threads: int
    fit: Callable[[], Stats]
    apply: Callable[[Stats], np.ndarray]


def column_name(j: int) -> str:
    return f"f{j}"


def generate(rows: int) -> Dataset:
    """Deterministic data (seed 42): normal values with per-column mean and
    scale, and exactly 1% null rows, chosen at random, in f0..f7."""
    rng = np.random.default_rng(SEED)
    means = rng.uniform(-10.0, 10.0, N_COLUMNS)
    scales = rng.uniform(0.5, 5.0, N_COLUMNS)
    columns, null_masks = [], []
    for j in range(N_COLUMNS):
        values = rng.standard_normal(rows, dtype=np.float32)
        values *= np.float32(scales[j])
        values += np.float32(means[j])
        mask = None
        if j < N_NULLABLE:
            mask = np.zeros(rows, dtype=bool)
            mask[rng.choice(rows, int(rows * NULL_FRACTION), replace=False)] = True
            values[mask] = np.nan
        columns.append(values)
        null_masks.append(mask)
    return Dataset(columns, null_masks)


def to_polars(data: Dataset) -> pl.DataFrame:
    """The same columns as a polars DataFrame, nulls as real (validity) nulls."""
    arrays = {
        column_name(j): pa.array(col, mask=mask)
        for j, (col, mask) in enumerate(zip(data.columns, data.null_masks))
    }
    return pl.from_arrow(pa.table(arrays))


# --- numpy naive -------------------------------------------------------------


def fit_numpy_naive(data: Dataset) -> Stats:
    """np.mean / np.std (two-pass, f64) on the compressed non-null values."""
    means, stds = np.empty(N_COLUMNS), np.empty(N_COLUMNS)
    for j, (col, mask) in enumerate(zip(data.columns, data.null_masks)):
        values = col if mask is None else col[~mask]
        means[j] = np.mean(values, dtype=np.float64)
        stds[j] = np.std(values, dtype=np.float64)
    return means, stds


def apply_numpy_naive(data: Dataset, stats: Stats) -> np.ndarray:
    """The formula as written, one whole-column float32 temporary per step."""
    means, stds = stats[0].tolist(), stats[1].tolist()  # Python floats keep the ops in float32
    logit = np.full(data.rows, BIAS, dtype=np.float32)
    for j, (col, mask) in enumerate(zip(data.columns, data.null_masks)):
        x = col if mask is None else np.where(mask, means[j], col)
        z = np.clip((x - means[j]) / stds[j], -CLIP, CLIP)
        logit += WEIGHTS[j] * z
    return 1.0 / (1.0 + np.exp(-logit))


# --- numpy blocked -----------------------------------------------------------


def fit_numpy_blocked(data: Dataset, block_rows: int = BLOCK_ROWS) -> Stats:
    """One pass per column: each block of rows is widened into a reused f64 buffer,
    nulls are zeroed there, and sum and sum of squares (np.dot) accumulate."""
    means, stds = np.empty(N_COLUMNS), np.empty(N_COLUMNS)
    buffer = np.empty(block_rows, dtype=np.float64)
    for j, (col, mask) in enumerate(zip(data.columns, data.null_masks)):
        total = total_sq = 0.0
        for start in range(0, data.rows, block_rows):
            stop = min(start + block_rows, data.rows)
            block = buffer[: stop - start]
            np.copyto(block, col[start:stop])
            if mask is not None:
                np.copyto(block, 0.0, where=mask[start:stop])
            total += block.sum()
            total_sq += np.dot(block, block)
        count = data.rows if mask is None else data.rows - np.count_nonzero(mask)
        means[j] = total / count
        stds[j] = np.sqrt(max(total_sq / count - means[j] ** 2, 0.0))
    return means, stds


def apply_numpy_blocked(data: Dataset, stats: Stats, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """Blocks of rows through two reused cache-sized float32 buffers.

    Uses w * clip((x - m) / s, -5, 5) == (w / s) * clip(x, m - 5s, m + 5s) - w*m/s,
    so a column costs a clip, a multiply and an add (a null fill for f0..f7),
    and all the constants start in the accumulator. The accumulator holds the
    negated logit, so the sigmoid is exp, +1 and a reciprocal. Every weight is
    used, zero ones included: they stand for a general linear model.
    """
    means, stds = stats[0].tolist(), stats[1].tolist()  # Python floats keep the ops in float32
    slopes = [WEIGHTS[j] / stds[j] for j in range(N_COLUMNS)]
    lows = [np.float32(means[j] - CLIP * stds[j]) for j in range(N_COLUMNS)]
    highs = [np.float32(means[j] + CLIP * stds[j]) for j in range(N_COLUMNS)]
    neg_offset = -(BIAS - sum(slopes[j] * means[j] for j in range(N_COLUMNS)))
    scores = np.empty(data.rows, dtype=np.float32)
    x_buffer = np.empty(block_rows, dtype=np.float32)
    acc_buffer = np.empty(block_rows, dtype=np.float32)
    for start in range(0, data.rows, block_rows):
        stop = min(start + block_rows, data.rows)
        x, acc = x_buffer[: stop - start], acc_buffer[: stop - start]
        acc.fill(neg_offset)
        for j, (col, mask) in enumerate(zip(data.columns, data.null_masks)):
            np.clip(col[start:stop], lows[j], highs[j], out=x)
            if mask is not None:
                np.copyto(x, means[j], where=mask[start:stop])
            np.multiply(x, -slopes[j], out=x)
            np.add(acc, x, out=acc)
        np.exp(acc, out=acc)
        acc += 1.0
        np.divide(1.0, acc, out=scores[start:stop])
    return scores


# --- polars ------------------------------------------------------------------


def fit_polars(df: pl.DataFrame) -> Stats:
    """One select computing every column's mean and std(ddof=0)."""
    names = [column_name(j) for j in range(N_COLUMNS)]
    row = df.select(
        [pl.col(c).mean().alias(f"mean_{c}") for c in names]
        + [pl.col(c).std(ddof=0).alias(f"std_{c}") for c in names]
    ).row(0)
    return np.array(row[:N_COLUMNS], dtype=np.float64), np.array(row[N_COLUMNS:], dtype=np.float64)


def apply_polars(df: pl.DataFrame, stats: Stats) -> np.ndarray:
    """One lazy query: fill_null, standardise, clip, weighted sum, sigmoid.

    The weighted terms are summed with a chain of `+` expressions starting from
    a float32 bias literal: 5-20% faster here than pl.sum_horizontal or pl.fold.
    """
    means, stds = stats[0].tolist(), stats[1].tolist()
    terms = [
        ((pl.col(column_name(j)).fill_null(means[j]) - means[j]) / stds[j])
        .clip(-CLIP, CLIP)
        * WEIGHTS[j]
        for j in range(N_COLUMNS)
    ]
    logit = sum(terms, pl.lit(BIAS, dtype=pl.Float32))
    score = (1.0 / (1.0 + (-logit).exp())).alias("score")
    return df.lazy().select(score).collect().to_series().to_numpy()


# --- measurement -------------------------------------------------------------


def best_of(repeats: int, fn: Callable, *args):
    """(best wall time in seconds, result of the last call)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def numpy_copy_gbps(repeats: int) -> float:
    """STREAM-style copy bandwidth of one thread: np.copyto of 1 GiB,
    bytes read + written over the best time, in GB/s."""
    src = np.ones(COPY_BYTES // 8, dtype=np.float64)
    dst = np.zeros_like(src)
    seconds, _ = best_of(max(repeats, 3), np.copyto, dst, src)
    return 2 * COPY_BYTES / seconds / 1e9


def run_fuseflow(command: str) -> tuple[Optional[dict], Optional[str]]:
    """Run the fuseflow bench in the repo root and parse its FUSEFLOW_JSON line.

    Returns (figures, None) on success, (None, reason) otherwise.
    """
    print(f"running fuseflow: {command}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(shlex.split(command), cwd=REPO_ROOT, capture_output=True, text=True)
    except OSError as err:
        return None, f"could not start {command!r}: {err}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith(FUSEFLOW_MARKER)]
    if proc.returncode == 0 and lines:
        try:
            parsed = json.loads(lines[-1][len(FUSEFLOW_MARKER) :])
        except json.JSONDecodeError as err:
            return None, f"unparsable {FUSEFLOW_MARKER.strip()} line: {err}"
        missing = FUSEFLOW_KEYS - set(parsed) if isinstance(parsed, dict) else FUSEFLOW_KEYS
        if missing:
            return None, f"{FUSEFLOW_MARKER.strip()} object lacks {sorted(missing)}"
        return parsed, None
    tail = "\n".join(proc.stderr.splitlines()[-20:])
    reason = f"exit status {proc.returncode}" if proc.returncode else f"no {FUSEFLOW_MARKER.strip()} line"
    return None, f"{reason}; stderr tail:\n{tail}"


def verify(name: str, stats: Stats, scores: np.ndarray, ref_stats: Stats, ref_scores: np.ndarray) -> dict:
    """Compare one implementation against numpy naive; print a warning on mismatch."""
    stats_rel = max(float(np.max(np.abs(got - want) / np.abs(want))) for got, want in zip(stats, ref_stats))
    if scores.shape == ref_scores.shape:
        score_abs = float(np.max(np.abs(scores.astype(np.float64) - ref_scores)))
    else:
        score_abs = float("inf")
    ok = stats_rel <= STATS_REL_TOLERANCE and score_abs <= SCORE_TOLERANCE
    if not ok:
        print(
            f"WARNING: {name} disagrees with numpy naive: stats max rel diff {stats_rel:.2e} "
            f"(limit {STATS_REL_TOLERANCE:g}), score max abs diff {score_abs:.2e} (limit {SCORE_TOLERANCE:g})"
        )
    return {"stats_max_rel_diff": stats_rel, "score_max_abs_diff": score_abs, "ok": ok}


def run_peers(peers: list[Peer], repeats: int) -> tuple[list[Result], dict]:
    """Time every peer's fit and apply, and check each against the first (the reference)."""
    results, checks, reference = [], {}, None
    for peer in peers:
        print(f"timing {peer.name}", file=sys.stderr, flush=True)
        fit_s, stats = best_of(repeats, peer.fit)
        apply_s, scores = best_of(repeats, peer.apply, stats)
        results.append(Result(peer.name, peer.threads, fit_s, apply_s))
        if reference is None:
            reference = (stats, scores.astype(np.float64))
        else:
            checks[peer.name] = verify(peer.name, stats, scores, *reference)
    return results, checks


# --- report ------------------------------------------------------------------


def figures(results: list[Result], rows: int, copy_gbps: float) -> list[dict]:
    """Derived figures per implementation; speedups are against fuseflow when it ran."""
    apply_bytes = rows * N_COLUMNS * 4 + rows * 4
    fuseflow = next((r for r in results if r.name == "fuseflow"), None)
    out = []
    for r in results:
        gbps = apply_bytes / r.apply_s / 1e9
        out.append(
            {
                **asdict(r),
                "apply_gbps": gbps,
                "copy_fraction": gbps / copy_gbps,
                "fuseflow_speedup_fit": r.fit_s / fuseflow.fit_s if fuseflow else None,
                "fuseflow_speedup_apply": r.apply_s / fuseflow.apply_s if fuseflow else None,
            }
        )
    return out


def markdown_table(rows: list[dict]) -> str:
    def ratio(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{value:.2f}x"

    lines = [
        "| implementation | threads | fit (ms) | apply (ms) | apply GB/s | % of copy BW "
        "| fuseflow speedup, fit | fuseflow speedup, apply |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['threads']} | {r['fit_s'] * 1e3:.1f} | {r['apply_s'] * 1e3:.1f} "
            f"| {r['apply_gbps']:.2f} | {r['copy_fraction'] * 100:.0f}% "
            f"| {ratio(r['fuseflow_speedup_fit'])} | {ratio(r['fuseflow_speedup_apply'])} |"
        )
    return "\n".join(lines)


def print_report(report: dict) -> None:
    checked = ", ".join(f"{name} {'ok' if c['ok'] else 'MISMATCH'}" for name, c in report["checks"].items())
    print(
        f"\n## prep+score: {report['rows']:,} rows x {N_COLUMNS} float32 columns "
        f"({NULL_FRACTION:.0%} nulls in f0..f{N_NULLABLE - 1}), best of {report['repeats']}\n"
    )
    print(f"- machine: {report['cores']} cores, {report['cpu']}; {report['software']}")
    print(f"- date: {report['date']}")
    print(f"- copy bandwidth: {report['copy_gbps']:.2f} GB/s, from {report['copy_source']}")
    print(f"- apply GB/s counts the {N_COLUMNS} input columns plus the score column, each once")
    print(f"- scores and stats checked against numpy naive: {checked} (fuseflow reports timings only)")
    print("- ratios were measured in one run on this machine; they do not carry over to other machines\n")
    print(markdown_table(report["implementations"]))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="report the best time of each phase")
    parser.add_argument(
        "--fuseflow-cmd",
        default=DEFAULT_FUSEFLOW_CMD,
        help="run in the repo root; {rows} and {repeats} are substituted (default: %(default)s)",
    )
    parser.add_argument("--skip-fuseflow", action="store_true", help="time the peers only")
    parser.add_argument("--json-out", type=Path, help="also write all figures to this JSON file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = datetime.datetime.now().astimezone()

    results, fuseflow_error, copy_gbps, copy_source = [], None, None, None
    if not args.skip_fuseflow:
        command = args.fuseflow_cmd.replace("{rows}", str(args.rows)).replace("{repeats}", str(args.repeats))
        ff, fuseflow_error = run_fuseflow(command)
        if ff is not None:
            if ff["rows"] != args.rows:
                print(f"WARNING: fuseflow ran {ff['rows']} rows, the peers run {args.rows}")
            results.append(Result("fuseflow", ff["threads"], ff["fit_s"], ff["apply_s"]))
            copy_gbps = ff["copy_gbps"]
            copy_source = f"fuseflow's multithreaded copy ({ff['threads']} threads)"
        else:
            print(f"fuseflow gave no figures, continuing with the peers only: {fuseflow_error}")
    if copy_gbps is None:
        print("measuring copy bandwidth with numpy", file=sys.stderr, flush=True)
        copy_gbps = numpy_copy_gbps(args.repeats)
        copy_source = "numpy np.copyto of 1 GiB (single-threaded)"

    print(f"generating {args.rows} rows", file=sys.stderr, flush=True)
    data = generate(args.rows)
    df = to_polars(data)
    peers = [
        Peer("numpy naive", 1, partial(fit_numpy_naive, data), partial(apply_numpy_naive, data)),
        Peer("numpy blocked", 1, partial(fit_numpy_blocked, data), partial(apply_numpy_blocked, data)),
        Peer("polars", pl.thread_pool_size(), partial(fit_polars, df), partial(apply_polars, df)),
    ]
    peer_results, checks = run_peers(peers, args.repeats)

    report = {
        "workload": "prep+score",
        "rows": args.rows,
        "columns": N_COLUMNS,
        "repeats": args.repeats,
        "date": started.isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "software": f"python {sys.version.split()[0]}, numpy {np.__version__}, polars {pl.__version__}",
        "copy_gbps": copy_gbps,
        "copy_source": copy_source,
        "fuseflow_error": fuseflow_error,
        "implementations": figures(results + peer_results, args.rows, copy_gbps),
        "checks": checks,
    }
    print_report(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

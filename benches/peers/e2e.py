#!/usr/bin/env python3.11
"""End-to-end peer benchmark "e2e": a file in, a scored file out.

Workload: the prep+score data of prep_score.py (N rows, default 10,000,000, x 32
float32 columns f0..f31, 1% nulls in f0..f7, numpy seed 42, per-column mean and
scale), stored once in a data directory (default target/e2e-data/, one set of
files per row count, regenerated only when missing) as

* an Arrow IPC file (record batches of 131,072 rows, uncompressed), and
* a Parquet file (snappy, row groups of 1,048,576 rows).

The pipeline, end to end:

    read -> fit_stats(f0..f31) -> fill_null(f0..f31, mean) -> scale(zscore)
         -> derive score = sigmoid(0.1 + sum_j w_j * clip(f_j, -5, 5))
         -> select [score] -> write Parquet

with w_j = ((j % 7) - 3) / 10; every weight, the zero ones included, is in the
expression. This is prep_score.py's "fit" and "apply" plus the I/O around them.

Modes, each timed best-of-R wall clock:

* polars-lazy-{ipc,parquet}   pl.scan_ipc / pl.scan_parquet; one collect of the
                              32 means and std(ddof=0), then one lazy select
                              sunk with sink_parquet.
* polars-eager-{ipc,parquet}  pl.read_ipc / pl.read_parquet, then the same on the
                              DataFrame, written with write_parquet.
* fuseflow-mem-{ipc,parquet}  `fuseflow run SPEC --no-workspace` (fused, no cache).
* fuseflow-cold-ipc           `fuseflow run SPEC --workspace NEW_DIR` (the default policy,
                              materialized: what the plan materializes is stored).
* fuseflow-cold-every-ipc     the same with `--cache every-step` (every step stored).
* fuseflow-warm-ipc           a rerun of the unchanged pipeline in a workspace that
                              one untimed run filled (every step a cache hit; the
                              source is checked by its stat against the
                              workspace's stat cache; the write step runs).
* blake3-{ipc,parquet}        BLAKE3 of the source file, memory-mapped, all cores:
                              what a cold run cannot avoid (fuseflow keys a read
                              step on the file's BLAKE3).

Polars runs in a child process per mode and fuseflow in one per run, so each
gets its own peak RSS (os.wait4's ru_maxrss, what /usr/bin/time -v reports).
Each output's score column is checked against Polars' (max abs diff 1e-5,
nulls at the same rows), and one markdown table is printed.

    pip install numpy polars pyarrow blake3
    python3.11 benches/peers/e2e.py                                   # 10M rows, best of 3
    python3.11 benches/peers/e2e.py --rows 1000000 --repeats 1
    python3.11 benches/peers/e2e.py --rows 200000 --skip-fuseflow
    python3.11 benches/peers/e2e.py --modes polars-lazy-ipc,fuseflow-mem-ipc --json-out e2e.json

See README.md next to this file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prep_score import BIAS, CLIP, N_COLUMNS, N_NULLABLE, NULL_FRACTION, WEIGHTS, column_name, generate  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / "target" / "e2e-data"
DEFAULT_FUSEFLOW_BIN = REPO_ROOT / "target" / "release" / "fuseflow"
IPC_BATCH_ROWS = 131_072
PARQUET_ROW_GROUP_ROWS = 1 << 20
GENERATE_CHUNK_ROWS = 20_000_000
SCORE_TOLERANCE = 1e-5
# fuseflow's Parquet writer uses the arrow-rs defaults (no compression); Polars
# writes the same, so neither pays for compressing a column of random floats.
OUTPUT_COMPRESSION = "uncompressed"
STDERR_TAIL_LINES = 15
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
NAMES = [column_name(j) for j in range(N_COLUMNS)]

# mode -> (label in the table, source)
MODES = {
    "polars-lazy-ipc": ("Polars lazy", "ipc"),
    "polars-lazy-parquet": ("Polars lazy", "parquet"),
    "polars-eager-ipc": ("Polars eager", "ipc"),
    "polars-eager-parquet": ("Polars eager", "parquet"),
    "fuseflow-mem-ipc": ("fuseflow in-memory (--no-workspace)", "ipc"),
    "fuseflow-mem-parquet": ("fuseflow in-memory (--no-workspace)", "parquet"),
    "fuseflow-cold-ipc": ("fuseflow cold, default workspace (materialized)", "ipc"),
    "fuseflow-cold-every-ipc": ("fuseflow cold, --cache every-step", "ipc"),
    "fuseflow-warm-ipc": ("fuseflow warm rerun (default workspace)", "ipc"),
    "blake3-ipc": ("BLAKE3 hash of the source", "ipc"),
    "blake3-parquet": ("BLAKE3 hash of the source", "parquet"),
}


@dataclass
class Files:
    """Everything one row count uses in the data directory."""

    data_dir: Path
    rows: int

    def source(self, kind: str) -> Path:
        return self.data_dir / f"e2e-{self.rows}.{'arrow' if kind == 'ipc' else 'parquet'}"

    def spec(self, kind: str) -> Path:
        return self.data_dir / f"e2e-{self.rows}-{kind}.toml"

    def output(self, mode: str) -> Path:
        return self.data_dir / "out" / f"e2e-{self.rows}-{mode}.parquet"

    def fuseflow_output(self, kind: str) -> Path:
        """The path the spec's write step writes (one per source; every fuseflow mode on it)."""
        return self.data_dir / "out" / f"e2e-{self.rows}-fuseflow-{kind}.parquet"

    def workspace(self, name: str) -> Path:
        return self.data_dir / "workspaces" / name


@dataclass
class Result:
    """One mode: best wall time and what else was measured."""

    mode: str
    label: str
    source: str
    seconds: Optional[float] = None  # best of the repeats that succeeded
    all_seconds: list[float] = field(default_factory=list)
    peak_rss_bytes: Optional[int] = None  # largest over the repeats
    workspace_bytes: Optional[int] = None  # growth of the workspace directory over one run
    check: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    failed: bool = False
    stdout_tail: str = ""  # fuseflow's report of its last run (JSON only)


# --- data --------------------------------------------------------------------


def ensure_data(files: Files) -> None:
    """Generate the data set and write whichever of the two files is missing.

    Up to GENERATE_CHUNK_ROWS rows are one generate() call (the data of
    prep_score.py); larger sets are written chunk by chunk, chunk k generated
    with seed 42 + k, so that 100M rows never sit in memory at once."""
    missing = [kind for kind in ("ipc", "parquet") if not files.source(kind).exists()]
    if not missing:
        return
    print(f"generating {files.rows} rows for {', '.join(missing)}", file=sys.stderr, flush=True)
    files.data_dir.mkdir(parents=True, exist_ok=True)
    chunks = [(start, min(files.rows, start + GENERATE_CHUNK_ROWS)) for start in range(0, files.rows, GENERATE_CHUNK_ROWS)]

    def chunk_table(k: int, rows: int) -> pa.Table:
        data = generate(rows) if len(chunks) == 1 else generate_seeded(rows, k)
        return pa.table(
            {column_name(j): pa.array(col, mask=mask) for j, (col, mask) in enumerate(zip(data.columns, data.null_masks))}
        )

    def write_all(ipc: Optional[Path], parquet: Optional[Path]) -> None:
        ipc_writer = parquet_writer = None
        try:
            for k, (start, end) in enumerate(chunks):
                table = chunk_table(k, end - start)
                if ipc is not None:
                    if ipc_writer is None:
                        ipc_sink = pa.OSFile(str(ipc), "wb")
                        ipc_writer = pa.ipc.new_file(ipc_sink, table.schema)
                    for batch in table.to_batches(max_chunksize=IPC_BATCH_ROWS):
                        ipc_writer.write_batch(batch)
                if parquet is not None:
                    if parquet_writer is None:
                        # No dictionaries: random floats do not repeat, and a dictionary that
                        # overflows and falls back makes the file half again as large.
                        parquet_writer = pq.ParquetWriter(str(parquet), table.schema, compression="snappy", use_dictionary=False)
                    parquet_writer.write_table(table, row_group_size=PARQUET_ROW_GROUP_ROWS)
                del table
        finally:
            if ipc_writer is not None:
                ipc_writer.close()
                ipc_sink.close()
            if parquet_writer is not None:
                parquet_writer.close()

    tmp = {kind: files.source(kind).with_name(files.source(kind).name + ".tmp") for kind in missing}
    write_all(tmp.get("ipc"), tmp.get("parquet"))
    for kind, path in tmp.items():
        os.replace(path, files.source(kind))


def generate_seeded(rows: int, chunk: int):
    """generate(rows) with seed 42 + chunk (one chunk of a large data set)."""
    import prep_score

    saved = prep_score.SEED
    prep_score.SEED = saved + chunk
    try:
        return generate(rows)
    finally:
        prep_score.SEED = saved


def score_expression_text() -> str:
    """The score in fuseflow's expression syntax, every weight written out."""
    terms = " + ".join(f"({WEIGHTS[j]!r}) * clip({name}, {-CLIP!r}, {CLIP!r})" for j, name in enumerate(NAMES))
    return f"sigmoid({BIAS!r} + {terms})"


def spec_text(kind: str, source: Path, output: Path) -> str:
    columns = json.dumps(NAMES)
    return f"""# Generated by benches/peers/e2e.py: the "e2e" workload on the {kind} source.
name = "e2e-{kind}"

[[steps]]
name = "raw"
kind = "read"
path = {json.dumps(str(source))}

[[steps]]
name = "stats"
kind = "fit_stats"
input = "raw"
columns = {columns}

[[steps]]
name = "filled"
kind = "fill_null"
inputs = {{ data = "raw", stats = "stats" }}
columns = {columns}
value = "mean"

[[steps]]
name = "scaled"
kind = "scale"
inputs = {{ data = "filled", stats = "stats" }}
method = "zscore"

[[steps]]
name = "scored"
kind = "derive"
input = "scaled"
columns = {{ score = {json.dumps(score_expression_text())} }}

[[steps]]
name = "selected"
kind = "select"
input = "scored"
columns = ["score"]

[[steps]]
name = "save"
kind = "write"
input = "selected"
path = {json.dumps(str(output))}
"""


def write_specs(files: Files) -> None:
    (files.data_dir / "out").mkdir(parents=True, exist_ok=True)
    for kind in ("ipc", "parquet"):
        files.spec(kind).write_text(spec_text(kind, files.source(kind), files.fuseflow_output(kind)))


# --- polars ------------------------------------------------------------------


def polars_stats(frame: pl.DataFrame | pl.LazyFrame) -> tuple[list[float], list[float]]:
    """Every column's mean and std(ddof=0), in one select."""
    query = frame.select(
        [pl.col(c).mean().alias(f"mean_{c}") for c in NAMES] + [pl.col(c).std(ddof=0).alias(f"std_{c}") for c in NAMES]
    )
    row = (query.collect() if isinstance(query, pl.LazyFrame) else query).row(0)
    return list(row[:N_COLUMNS]), list(row[N_COLUMNS:])


def polars_score(means: list[float], stds: list[float]) -> pl.Expr:
    """fill_null(mean), z-score, clip, weighted sum (a chain of +, as in prep_score.py), sigmoid."""
    terms = [
        ((pl.col(c).fill_null(means[j]) - means[j]) / stds[j]).clip(-CLIP, CLIP) * WEIGHTS[j]
        for j, c in enumerate(NAMES)
    ]
    logit = sum(terms, pl.lit(BIAS, dtype=pl.Float32))
    return (1.0 / (1.0 + (-logit).exp())).alias("score")


def polars_lazy(source: Path, kind: str, output: Path) -> None:
    scan = pl.scan_ipc(source) if kind == "ipc" else pl.scan_parquet(source)
    means, stds = polars_stats(scan)
    scan.select(polars_score(means, stds)).sink_parquet(output, compression=OUTPUT_COMPRESSION)


def polars_eager(source: Path, kind: str, output: Path) -> None:
    df = pl.read_ipc(source) if kind == "ipc" else pl.read_parquet(source)
    means, stds = polars_stats(df)
    df.select(polars_score(means, stds)).write_parquet(output, compression=OUTPUT_COMPRESSION)


POLARS_PEERS = {"lazy": polars_lazy, "eager": polars_eager}


def polars_child(style: str, source: Path, kind: str, output: Path, repeats: int) -> None:
    """Entry point of the child process: time the peer, print the seconds as JSON."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        POLARS_PEERS[style](source, kind, output)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds}))


# --- processes ---------------------------------------------------------------


@dataclass
class Child:
    returncode: int
    seconds: float
    peak_rss_bytes: int
    stdout: str
    stderr: str


def run_child(argv: list[str], cwd: Path, timeout_s: float) -> Child:
    """Run a command; its wall time and its own peak RSS.

    The RSS comes from GNU time (`/usr/bin/time -v`), a small process between
    this script and the command. Without it, from os.wait4 on the command
    itself, whose ru_maxrss Linux starts at this script's RSS when it forks,
    so small figures read too high.
    """
    with tempfile.NamedTemporaryFile("w+") as rusage, tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile(
        "w+"
    ) as err:
        wrapped = [GNU_TIME, "-v", "-o", rusage.name, *argv] if GNU_TIME else argv
        start = time.perf_counter()
        # A session of its own, so that a timeout kills the command, not just GNU time.
        proc = subprocess.Popen(wrapped, cwd=cwd, stdout=out, stderr=err, text=True, start_new_session=True)
        timer = threading.Timer(timeout_s, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it; keep Popen from waiting again
        peak = usage.ru_maxrss * 1024
        if GNU_TIME:
            rusage.seek(0)
            lines = [line for line in rusage.read().splitlines() if "Maximum resident set size" in line]
            peak = int(lines[0].rsplit(":", 1)[1]) * 1024 if lines else 0
        out.seek(0)
        err.seek(0)
        stderr = err.read()
        if seconds >= timeout_s:
            stderr += f"\n(killed after the {timeout_s:g} s timeout)"
        return Child(proc.returncode, seconds, peak, out.read(), stderr)


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def dir_bytes(path: Path) -> int:
    """Apparent size of a directory tree (du -sb), 0 if it does not exist."""
    if not path.exists():
        return 0
    try:
        return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- peers -------------------------------------------------------------------


def time_polars(result: Result, files: Files, repeats: int, timeout_s: float) -> None:
    style = result.mode.split("-")[1]
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--polars-child",
        style,
        str(files.source(result.source)),
        result.source,
        str(files.output(result.mode)),
        str(repeats),
    ]
    child = run_child(argv, REPO_ROOT, timeout_s * repeats)
    if child.returncode != 0:
        result.failed = True
        result.notes.append(f"exit status {child.returncode}; stderr tail:\n{tail(child.stderr)}")
        return
    result.all_seconds = json.loads(child.stdout.strip().splitlines()[-1])["seconds"]
    result.peak_rss_bytes = child.peak_rss_bytes


def polars_baseline_rss() -> tuple[int, int]:
    """(peak RSS of a child that only imports polars, polars' thread count)."""
    child = run_child([sys.executable, "-c", "import polars as pl; print(pl.thread_pool_size())"], REPO_ROOT, 60)
    return child.peak_rss_bytes, int(child.stdout.strip() or 0)


def fuseflow_argv(args: argparse.Namespace, spec: Path, *flags: str) -> list[str]:
    return [str(args.fuseflow_bin), "run", str(spec), *flags]


def run_fuseflow_once(result: Result, argv: list[str], workspace: Optional[Path], args: argparse.Namespace) -> bool:
    """One timed run; records time, RSS and workspace growth, or the failure."""
    before = dir_bytes(workspace) if workspace else 0
    child = run_child(argv, args.data_dir, args.timeout_s)
    if child.returncode != 0:
        result.failed = True
        result.notes.append(f"`{' '.join(argv[1:])}`: exit status {child.returncode}; stderr tail:\n{tail(child.stderr)}")
        return False
    result.all_seconds.append(child.seconds)
    result.peak_rss_bytes = max(result.peak_rss_bytes or 0, child.peak_rss_bytes)
    if workspace:
        result.workspace_bytes = dir_bytes(workspace) - before
    result.stdout_tail = tail(child.stdout, 40)
    return True


def step_times(stdout: str) -> str:
    """The ms column of `fuseflow run`'s step table, e.g. "raw 0.9, stats 10.5, ..."."""
    steps, in_table = [], False
    for line in stdout.splitlines():
        fields = line.split()
        if fields[:2] == ["step", "kind"]:
            in_table = True
        elif in_table and fields and not line.startswith(" ") and len(fields) >= 4:
            steps.append(f"{fields[0]} {fields[3]}")
    return ", ".join(steps) or "(no step table in the output)"


def time_fuseflow(result: Result, files: Files, args: argparse.Namespace) -> None:
    if not args.fuseflow_bin.exists():
        result.failed = True
        result.notes.append(f"no fuseflow binary at {args.fuseflow_bin}")
        return
    spec = files.spec(result.source)
    output = files.fuseflow_output(result.source)
    output.unlink(missing_ok=True)
    workspaces: list[Path] = []

    def fresh_workspace(name: str) -> Path:
        path = files.workspace(name)
        shutil.rmtree(path, ignore_errors=True)
        workspaces.append(path)
        return path

    try:
        if result.mode.startswith("fuseflow-mem-"):
            for _ in range(args.repeats):
                if not run_fuseflow_once(result, fuseflow_argv(args, spec, "--no-workspace"), None, args):
                    break
        elif result.mode in ("fuseflow-cold-ipc", "fuseflow-cold-every-ipc"):
            cache = ["--cache", "every-step"] if result.mode == "fuseflow-cold-every-ipc" else []
            for i in range(args.repeats):
                ws = fresh_workspace(f"{result.mode}-{i}")
                ok = run_fuseflow_once(result, fuseflow_argv(args, spec, "--workspace", str(ws), *cache), ws, args)
                shutil.rmtree(ws, ignore_errors=True)  # at 10M rows an every-step workspace holds several GB
                if not ok:
                    break
        elif result.mode == "fuseflow-warm-ipc":
            ws = fresh_workspace(result.mode)
            prime = Result(result.mode, result.label, result.source)
            if not run_fuseflow_once(prime, fuseflow_argv(args, spec, "--workspace", str(ws)), ws, args):
                result.failed = True
                result.notes.append("priming run failed: " + "\n".join(prime.notes))
                return
            result.notes.append(
                f"primed by one untimed cold run ({prime.all_seconds[0]:.3f} s, "
                f"{fmt_bytes(prime.workspace_bytes)} stored)"
            )
            for _ in range(args.repeats):
                if not run_fuseflow_once(result, fuseflow_argv(args, spec, "--workspace", str(ws)), ws, args):
                    break
            result.notes.append(f"last run's steps (`fuseflow show latest`): {count_hits(args, ws)}")
        else:
            raise ValueError(result.mode)
    finally:
        for ws in workspaces:
            shutil.rmtree(ws, ignore_errors=True)
    if result.stdout_tail:
        result.notes.append(f"last run, ms per step: {step_times(result.stdout_tail)}")
    if output.exists() and not result.failed:
        shutil.copyfile(output, files.output(result.mode))


def count_hits(args: argparse.Namespace, workspace: Path) -> str:
    """The `steps` line of `fuseflow show latest` in the workspace, e.g. "7 (6 cache hits, 0 failed)"."""
    proc = subprocess.run(
        [str(args.fuseflow_bin), "--workspace", str(workspace), "show", "latest"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return f"(`fuseflow show latest` failed: {tail(proc.stderr, 3)})"
    lines = [line.split(None, 1)[1] for line in proc.stdout.splitlines() if line.startswith("steps ")]
    return lines[0].strip() if lines else "(no `steps` line in `fuseflow show latest`)"


def time_blake3(result: Result, files: Files, repeats: int) -> None:
    try:
        import blake3
    except ImportError:
        result.failed = True
        result.notes.append("skipped: the `blake3` package is not installed (pip install blake3)")
        return
    path = str(files.source(result.source))
    digest = None
    for _ in range(repeats):
        start = time.perf_counter()
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        digest = hasher.hexdigest()
        result.all_seconds.append(time.perf_counter() - start)
    result.notes.append(f"blake3 {blake3.__version__}, memory-mapped, all cores; digest {digest[:16]}...")


# --- checks ------------------------------------------------------------------


def read_scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(values as f64 with NaN under nulls, null mask) of the file's score column."""
    column = pq.read_table(str(path), columns=["score"]).column("score")
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    values = column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    return values, nulls


def compare(path: Path, reference: Path) -> str:
    got, got_nulls = read_scores(path)
    want, want_nulls = read_scores(reference)
    if got.shape != want.shape:
        return f"MISMATCH: {len(got)} rows, reference {len(want)}"
    if not np.array_equal(got_nulls, want_nulls):
        return f"MISMATCH: nulls differ at {int(np.count_nonzero(got_nulls != want_nulls))} rows"
    valid = ~got_nulls
    diff = float(np.max(np.abs(got[valid] - want[valid]), initial=0.0))
    if not diff <= SCORE_TOLERANCE:  # also catches NaN
        return f"MISMATCH: max abs diff {diff:.2e} > {SCORE_TOLERANCE:g}"
    return f"ok ({diff:.1e}, {int(got_nulls.sum())} nulls)"


def reference_output(files: Files, results: list[Result]) -> Optional[Path]:
    """Polars lazy's output on IPC (any Polars output if that did not run; made untimed if none did)."""
    done = {r.mode for r in results if r.mode.startswith("polars") and not r.failed}
    for mode in ("polars-lazy-ipc", "polars-lazy-parquet", "polars-eager-ipc", "polars-eager-parquet"):
        if mode in done and files.output(mode).exists():
            return files.output(mode)
    path = files.output("reference-polars-lazy-ipc")
    print("computing the Polars reference output (untimed)", file=sys.stderr, flush=True)
    try:
        polars_lazy(files.source("ipc"), "ipc", path)
    except Exception as err:  # noqa: BLE001 - report and carry on without checks
        print(f"WARNING: could not compute the reference: {err}", file=sys.stderr)
        return None
    return path


def check_outputs(files: Files, results: list[Result], reference: Optional[Path]) -> None:
    for r in results:
        if r.failed or r.mode.startswith("blake3"):
            continue
        output = files.output(r.mode)
        if reference is None:
            r.check = "not checked (no reference)"
        elif not output.exists():
            r.check = "MISSING output"
        elif output == reference:
            r.check = "reference"
        else:
            r.check = compare(output, reference)


# --- report ------------------------------------------------------------------


def fmt_bytes(n: Optional[int]) -> str:
    if n is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def markdown(report: dict, results: list[Result]) -> str:
    lazy = {r.source: r.seconds for r in results if r.mode.startswith("polars-lazy") and r.seconds}
    lines = [
        f"## e2e: {report['rows']:,} rows x {N_COLUMNS} float32 columns "
        f"({NULL_FRACTION:.0%} nulls in f0..f{N_NULLABLE - 1}), best of {report['repeats']}",
        "",
        f"- machine: {report['cores']} cores, {report['cpu']}, {report['memory']}; {report['software']}",
        f"- date: {report['date']}; data: {report['data_dir']}",
        f"- sources: IPC {fmt_bytes(report['source_bytes']['ipc'])}, Parquet {fmt_bytes(report['source_bytes']['parquet'])}",
        "- time / Polars lazy: this mode's best time over Polars lazy's on the same source (below 1: faster)",
        f"- peak RSS: the process's maximum resident set, from {report['rss_source']} "
        "(pages of a memory-mapped source it touched count); "
        f"Polars runs in a Python child on {report['polars_threads']} threads, and Python with polars "
        f"imported alone peaks at {fmt_bytes(report['polars_baseline_rss_bytes'])}",
        "- workspace: bytes the run added to its workspace directory (du -sb)",
        f"- check: score column against {report['reference']} (max abs diff, limit {SCORE_TOLERANCE:g}; nulls must match)",
        "",
        "| mode | source | best (s) | time / Polars lazy | peak RSS | workspace | check |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.seconds is None:
            seconds, ratio = "FAILED" if r.failed else "–", "–"
        else:
            seconds = f"{r.seconds:.3f}"
            ratio = f"{r.seconds / lazy[r.source]:.2f}" if r.source in lazy else "–"
        check = r.check or "–"
        lines.append(
            f"| {r.label} | {r.source} | {seconds} | {ratio} | {fmt_bytes(r.peak_rss_bytes)} "
            f"| {fmt_bytes(r.workspace_bytes)} | {check} |"
        )
    notes = [(r, note) for r in results for note in r.notes]
    if notes:
        lines += ["", "Notes:", ""]
        for r, note in notes:
            first, *rest = note.splitlines()
            lines.append(f"- `{r.mode}`: {first}")
            if rest:
                lines += ["  ```"] + [f"  {line}" for line in rest] + ["  ```"]
    return "\n".join(lines)


def machine() -> tuple[str, str]:
    cpu, memory = "unknown CPU", "unknown memory"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / (1 << 20):.0f} GiB"
                break
    except OSError:
        pass
    return cpu, memory


def fuseflow_version(binary: Path) -> str:
    try:
        proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
        return proc.stdout.strip() or "fuseflow ?"
    except (OSError, subprocess.TimeoutExpired):
        return "fuseflow version unknown"


# --- main --------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="report each mode's best wall time")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default: %(default)s")
    parser.add_argument("--fuseflow-bin", type=Path, default=DEFAULT_FUSEFLOW_BIN, help="default: %(default)s")
    parser.add_argument("--skip-fuseflow", action="store_true", help="leave out the fuseflow-* modes")
    parser.add_argument("--skip-polars", action="store_true", help="leave out the polars-* modes")
    parser.add_argument("--modes", help=f"comma-separated subset of: {', '.join(MODES)}")
    parser.add_argument("--timeout-s", type=float, default=3600, help="per run (default: %(default)s)")
    parser.add_argument("--json-out", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--polars-child", nargs=5, help=argparse.SUPPRESS)  # internal: one Polars mode in a child
    args = parser.parse_args()
    if args.polars_child:
        return args
    modes = list(MODES) if args.modes is None else [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if args.skip_fuseflow:
        modes = [m for m in modes if not m.startswith("fuseflow")]
    if args.skip_polars:
        modes = [m for m in modes if not m.startswith("polars")]
    args.modes = modes
    args.data_dir = args.data_dir.resolve()
    args.fuseflow_bin = args.fuseflow_bin.resolve()
    return args


def main() -> None:
    args = parse_args()
    if args.polars_child:
        style, source, kind, output, repeats = args.polars_child
        polars_child(style, Path(source), kind, Path(output), int(repeats))
        return
    started = datetime.datetime.now().astimezone()
    files = Files(args.data_dir, args.rows)
    ensure_data(files)
    write_specs(files)

    results = []
    for mode in args.modes:
        label, source = MODES[mode]
        result = Result(mode, label, source)
        print(f"timing {mode}", file=sys.stderr, flush=True)
        files.output(mode).unlink(missing_ok=True)
        if mode.startswith("polars"):
            time_polars(result, files, args.repeats, args.timeout_s)
        elif mode.startswith("fuseflow"):
            time_fuseflow(result, files, args)
        else:
            time_blake3(result, files, args.repeats)
        if result.all_seconds:
            result.seconds = min(result.all_seconds)
        results.append(result)

    reference = reference_output(files, results) if any(not m.startswith("blake3") for m in args.modes) else None
    check_outputs(files, results, reference)

    cpu, memory = machine()
    baseline_rss, polars_threads = polars_baseline_rss()
    fuseflow = "fuseflow not run"
    if any(m.startswith("fuseflow") for m in args.modes) and args.fuseflow_bin.exists():
        built = datetime.datetime.fromtimestamp(args.fuseflow_bin.stat().st_mtime).astimezone()
        fuseflow = f"{fuseflow_version(args.fuseflow_bin)} ({args.fuseflow_bin}, built {built:%Y-%m-%d %H:%M})"
    report = {
        "workload": "e2e",
        "rows": args.rows,
        "columns": N_COLUMNS,
        "repeats": args.repeats,
        "date": started.isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "software": f"python {sys.version.split()[0]}, polars {pl.__version__}, pyarrow {pa.__version__}, {fuseflow}",
        "rss_source": "/usr/bin/time -v" if GNU_TIME else "os.wait4 (includes this script's RSS at fork)",
        "polars_threads": polars_threads,
        "polars_baseline_rss_bytes": baseline_rss,
        "data_dir": str(args.data_dir),
        "source_bytes": {kind: files.source(kind).stat().st_size for kind in ("ipc", "parquet")},
        "specs": {kind: str(files.spec(kind)) for kind in ("ipc", "parquet")},
        "reference": reference.name if reference else "nothing",
        "results": [asdict(r) for r in results],
    }
    print(markdown(report, results))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

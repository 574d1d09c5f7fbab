#!/usr/bin/env bash
# Check fuseflow's CUDA backend on a machine with an NVIDIA GPU.
#
#   scripts/gpu-check.sh --package DIR   # on a build machine (Rust toolchain):
#                                        # build release test and bench binaries,
#                                        # copy them, stripped, into DIR
#   scripts/gpu-check.sh DIR             # on the GPU machine: run the binaries in DIR
#   scripts/gpu-check.sh                 # on a GPU machine with a toolchain: cargo test
#
# Runs every test binary with FUSEFLOW_REQUIRE_CUDA=1 and FUSEFLOW_REQUIRE_NVRTC=1
# (so a missing GPU or library fails instead of skipping), then the GPU
# benchmark binaries (names matching $GPU_BENCH_GLOB, default `gpu*`: gpu_devices,
# gpu_prep_score, gpu_train) and the PyTorch peers (benches/peers/torch_prep_score.py,
# torch_logistic.py) when torch with CUDA is
# importable, and prints a summary table. Needs no network and, given DIR, no
# Rust toolchain. Exits non-zero when any test binary fails.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if [[ "${1:-}" == "--package" ]]; then
  out="${2:?usage: scripts/gpu-check.sh --package DIR}"
  mkdir -p "$out"
  # cargo's JSON messages -> paths of test executables (lib unit tests and
  # integration tests) and of GPU benchmarks (bench targets named gpu*).
  list() {
    python3 -c 'import json, sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"): continue
    kinds, name = m["target"]["kind"], m["target"]["name"]
    if m["profile"]["test"] and ("lib" in kinds or "test" in kinds): print(m["executable"])
    elif "bench" in kinds and name.startswith("gpu"): print(m["executable"])'
  }
  { cargo test --release --no-run --message-format=json
    cargo bench --no-run --message-format=json; } 2>/dev/null | list | sort -u |
  while read -r exe; do
    dest="$out/$(basename "$exe" | sed -E 's/-[0-9a-f]{16}$//')"
    cp "$exe" "$dest" && strip "$dest" 2>/dev/null
    echo "packaged $dest"
  done
  echo "on the GPU machine, from a checkout of this repository (tests read tests/snapshots): scripts/gpu-check.sh $out"
  exit 0
fi

export FUSEFLOW_REQUIRE_CUDA=1 FUSEFLOW_REQUIRE_NVRTC=1 RUST_BACKTRACE=1
# NVRTC and cuBLAS: a CUDA toolkit, or the PyPI wheels (nvidia/cu13/lib).
for dir in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 \
  $(python3 -c 'import nvidia, os; p = list(nvidia.__path__)[0]; print(" ".join(os.path.join(p, d, "lib") for d in os.listdir(p)))' 2>/dev/null); do
  [[ -d "$dir" ]] && LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

logs="$(mktemp -d)"
rows=()
failed=0
# run NAME KIND COMMAND...: run, keep the log, add a summary row.
run() {
  local name="$1" kind="$2"; shift 2
  local log="$logs/$name.log" start end status
  start=$(date +%s.%N)
  "$@" >"$log" 2>&1
  status=$?
  end=$(date +%s.%N)
  local secs passed failedn skipped
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{ s += $1 } END { print s + 0 }')
  failedn=$(grep -Eo '[0-9]+ failed' "$log" | awk '{ s += $1 } END { print s + 0 }')
  skipped=$(grep -c '^skipping CUDA tests' "$log")
  if [[ $status -ne 0 ]]; then
    failed=1
    echo "---- $name failed (exit $status); last lines of $log:"
    tail -n 40 "$log"
  fi
  rows+=("$(printf '%-28s %-6s %-6s %7s %7s %7s %8s' "$name" "$kind" \
    "$([[ $status -eq 0 ]] && echo ok || echo FAIL)" "$passed" "$failedn" "$skipped" "${secs}s")")
}

if [[ $# -ge 1 ]]; then
  bins="$1"
  for exe in "$bins"/*; do
    [[ -f "$exe" && -x "$exe" ]] || continue
    name="$(basename "$exe")"
    case "$name" in
      ${GPU_BENCH_GLOB:-gpu*}) ;;  # benchmarks run below
      *) run "$name" test "$exe" --test-threads=1 ;;
    esac
  done
  for exe in "$bins"/${GPU_BENCH_GLOB:-gpu*}; do
    [[ -f "$exe" && -x "$exe" ]] && run "$(basename "$exe")" bench "$exe" --bench
  done
elif command -v cargo >/dev/null; then
  run cargo-test-cuda test cargo test --release --test suite -- cuda_backend:: cuda_kernels::
  run cargo-test-lib test cargo test --release --lib
  [[ -f tests/suite/backend_conformance.rs ]] && run conformance test cargo test --release --test suite -- backend_conformance::
  for bench in benches/gpu*.rs; do
    [[ -f "$bench" ]] && run "$(basename "$bench" .rs)" bench cargo bench --bench "$(basename "$bench" .rs)"
  done
else
  echo "no test binary directory given and no cargo; see the usage at the top of $0" >&2
  exit 2
fi

if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  run torch_prep_score peer python3 benches/peers/torch_prep_score.py
  run torch_logistic peer python3 benches/peers/torch_logistic.py
fi

echo
printf '%-28s %-6s %-6s %7s %7s %7s %8s\n' binary kind status passed failed skipped time
for row in "${rows[@]}"; do echo "$row"; done
echo "logs: $logs"
for log in "$logs"/*.log; do
  [[ "$(basename "$log")" == gpu* || "$(basename "$log")" == torch* ]] || continue
  echo "== $(basename "$log" .log)"; grep -E '^\||time:|GB/s|check' "$log" | head -n 40
done
exit $failed

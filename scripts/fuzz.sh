#!/usr/bin/env bash
# Coverage-guided fuzzing of fuseflow's parsers and readers with honggfuzz,
# on the stable toolchain (fuzz/ holds the targets, the seed corpus and the
# minimized crashes).
#
#   scripts/fuzz.sh                 # every target for 10 s (CI's smoke run)
#   scripts/fuzz.sh 600             # every target for 10 minutes
#   scripts/fuzz.sh 3600 parquet    # one target for an hour
#
# Each target starts from fuzz/corpus/<target>/ (new inputs go to
# fuzz/hfuzz_workspace/<target>/corpus/, not into the repository), each input
# limited to 2 GiB of RSS and 10 s (an input running longer counts as a
# crash). A crash is kept in fuzz/crashes/<target>/, where `cargo test`
# replays it from then on (tests/hostile_input.rs), and the script exits
# non-zero.
#
# Needs honggfuzz's build dependencies (Debian: build-essential binutils-dev
# libunwind-dev libblocksruntime-dev liblzma-dev); installs `cargo hfuzz`
# when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_EACH="${1:-10}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(spec_file expression ipc_file ipc_stream parquet csv model)
fi
HONGGFUZZ_VERSION=0.5.62

if ! cargo hfuzz version 2>/dev/null | grep -q "$HONGGFUZZ_VERSION"; then
  cargo install --quiet --locked honggfuzz --version "$HONGGFUZZ_VERSION"
fi
cargo hfuzz build
MINIMIZER="hfuzz_target/$(rustc -vV | sed -n 's/^host: //p')/release/minimize"

crashed=0
for target in "${TARGETS[@]}"; do
  workspace="hfuzz_workspace/$target"
  mkdir -p "$workspace/corpus" "crashes/$target"
  rm -f "$workspace"/*.fuzz "$workspace"/*.fuzz.min
  echo "fuzzing $target for ${SECONDS_EACH}s"
  HFUZZ_INPUT="corpus/$target" \
  HFUZZ_RUN_ARGS="--run_time $SECONDS_EACH --exit_upon_crash --output $workspace/corpus \
    --rlimit_rss 2048 --timeout 10 --tmout_sigvtalrm --threads 2 --verbose" \
    cargo hfuzz run "$target" </dev/null 2>&1 | tail -n 4
  target_crashed=0
  for crash in "$workspace"/*.fuzz; do
    [ -e "$crash" ] || continue
    target_crashed=1
    # Kept minimized when the minimizer reproduces the crash, else as found.
    found="$crash"
    if "$MINIMIZER" "$target" "$crash" "$crash.min" 120; then
      found="$crash.min"
    fi
    kept="crashes/$target/$(sha256sum "$found" | cut -c1-16)"
    cp "$found" "$kept"
    echo "CRASH in $target: $kept (replay: cargo test --test hostile_input)" >&2
  done
  crashed=$(( crashed + target_crashed ))
done
echo "fuzz: $(( ${#TARGETS[@]} - crashed )) passed, $crashed failed"
[ "$crashed" -eq 0 ]

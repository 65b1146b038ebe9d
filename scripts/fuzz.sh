#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (docs/testing.md) for SECONDS each (default 30), one after the
# other, starting from the committed seeds (fuzz/seeds/TARGET) and the inputs earlier runs kept
# (fuzz/corpus/TARGET, not committed). Installs cargo-fuzz when it is missing. Works on the
# stable toolchain: libFuzzer's coverage instrumentation needs no nightly flag, only the
# sanitizers do, so the targets run without one (`--sanitizer none`; the code is safe Rust).
#
# Fails when a target crashes, panics, hangs (10 s for one input) or runs out of memory; the
# input that did it is written to fuzz/artifacts/TARGET/ and named in the output, and
# `cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/<file>` (from fuzz/) replays it.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-30}
shift || true

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# The fuzz crate is a workspace of its own with its own lock file, which must be current.
cargo fetch --locked --manifest-path fuzz/Cargo.toml

# Instrumented builds differ from ordinary ones: they get a directory of their own.
target_dir=${CARGO_TARGET_DIR:-$PWD/target}/fuzz
flags=(--sanitizer none --release --debug-assertions --target-dir "$target_dir")

cd fuzz
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

started=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz.sh: built ${#targets[@]} targets in $(($(date +%s) - started)) s"

mkdir -p logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="logs/$target.log"
    echo "== fuzz $target (${seconds} s)"
    if cargo fuzz run "${flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        echo "   ok: ${runs:-?} runs, ${rate:-?} exec/s, ${cov:-cov: ?}"
    else
        failed+=("$target")
        tail -n 60 "$log"
        echo "   FAILED: $target (log: fuzz/$log; inputs: fuzz/artifacts/$target/)"
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: every target ran ${seconds} s without a failure"

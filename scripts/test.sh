#!/usr/bin/env bash
# The whole test suite, on a fresh clone with nothing beside it: installs what the tests need
# (a C compiler and make for the bundled SQLite and jemalloc, and .venv with the official OCI
# Python SDK that the emulator is tested against), then runs the tests of every crate in the
# workspace and the static checks of terraform/. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build tools: SQLite (rusqlite's bundled build) and jemalloc (tikv-jemalloc-sys) compile from C.
missing=()
for tool in cc make; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing build-essential (missing: ${missing[*]})"
        apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
    else
        echo "test.sh: missing ${missing[*]}: install a C compiler and make (Debian: apt-get install build-essential)" >&2
        exit 1
    fi
fi

# Python test dependencies (the official OCI SDK, driven against the emulator) into .venv.
scripts/venv.sh

cargo test --workspace --locked

scripts/check-terraform.sh

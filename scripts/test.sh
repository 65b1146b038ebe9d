#!/usr/bin/env bash
# The whole test suite, on a fresh clone with nothing beside it: installs what the tests need
# (a C compiler and make for the bundled SQLite and jemalloc, Debian's chromium and
# chromium-driver for the status page's browser test, and .venv with the official OCI Python SDK and CLI
# that the emulator is tested against and the Prometheus client's parser), then runs the tests
# of every crate in the workspace and the static checks of terraform/. Run from anywhere.
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

# Headless Chromium and its WebDriver: the status page's test drives a real browser
# (tests/up_status_page.rs).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing chromium and chromium-driver"
        apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "test.sh: missing chromium or chromedriver: install them (Debian: apt-get install chromium chromium-driver)" >&2
        exit 1
    fi
fi

# Python test dependencies (the official OCI SDK, driven against the emulator) into .venv.
scripts/venv.sh

cargo test --workspace --locked

scripts/check-terraform.sh

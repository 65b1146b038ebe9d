#!/usr/bin/env bash
# Benchmarks the Rust FDK's echo function against the official Python (`pip install fdk`) and
# Node (`npm install @fnproject/fdk`) FDKs through the same compiled harness
# (crates/fdk/examples/fdk_bench.rs): cold start, idle RSS, sequential calls/s on one
# keep-alive connection. Not part of the test suite. Needs cargo, python3 (venv), node + npm,
# and network access for pip/npm on first use. Everything goes under target/fdk-bench/.
#
#   scripts/bench-fdk.sh [--runs N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."

work=target/fdk-bench
mkdir -p "$work"

echo "== building the Rust echo function and the harness (release)" >&2
cargo build --release -p datasync-fdk --example echo --example fdk_bench >&2

echo "== Python FDK (pip install fdk)" >&2
if [ ! -x "$work/venv/bin/fdk" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet --disable-pip-version-check fdk
fi
cat > "$work/func.py" <<'PY'
import io

from fdk import response


def handler(ctx, data: io.BytesIO = None):
    return response.Response(
        ctx,
        response_data=data.getvalue(),
        headers={"Content-Type": "application/json"},
    )
PY

echo "== Node FDK (npm install @fnproject/fdk)" >&2
if [ ! -d "$work/node_modules/@fnproject/fdk" ]; then
    (cd "$work" && { [ -f package.json ] || npm init -y >/dev/null; } &&
        npm install --silent --no-audit --no-fund @fnproject/fdk >&2)
fi
cat > "$work/func.js" <<'JS'
const fdk = require('@fnproject/fdk');

fdk.handle(function (input) {
  return input;
}, { inputMode: 'buffer' });
JS

py_version=$("$work/venv/bin/pip" show fdk | awk '/^Version:/ {print $2}')
node_version=$(node -p "require('./$work/node_modules/@fnproject/fdk/package.json').version")
echo "== peers: Python fdk $py_version ($(python3 --version)), Node @fnproject/fdk $node_version (node $(node --version))" >&2

abs=$(pwd)
exec target/release/examples/fdk_bench "$@" \
    "rust=$abs/target/release/examples/echo" \
    "python=$abs/$work/venv/bin/fdk $abs/$work/func.py handler" \
    "node=node $abs/$work/func.js"

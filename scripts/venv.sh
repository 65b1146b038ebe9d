#!/usr/bin/env bash
# Creates .venv with the Python packages the tests use (scripts/requirements-test.txt: the
# official OCI SDK the emulator is tested with, crates/local/tests/it/python_sdk.rs; the
# Prometheus client whose parser reads /metrics, tests/up_prometheus.rs; the `oci` CLI,
# tests/up_metrics.rs).
# Idempotent: a venv that already has every package is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import oci, oci_cli, prometheus_client' 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi

#!/usr/bin/env bash
# Creates .venv with the Python packages the tests use (scripts/requirements-test.txt: the
# Terraform checker's python-hcl2 and the official OCI SDK the emulator is tested with).
# Idempotent: a venv that already has every package is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import hcl2, oci' 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi

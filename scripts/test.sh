#!/usr/bin/env bash
# The whole test suite: the Rust tests of every crate, then the static checks of terraform/.
# Run from anywhere; it works from the repository root. Needs cargo and python3 (for the Terraform
# checker, which it installs into .venv on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked

scripts/check-terraform.sh

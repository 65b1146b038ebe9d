#!/usr/bin/env bash
# Static checks of terraform/: `terraform fmt` where a terraform binary exists, and the reference
# schema checker from ../shared/reference (it needs python-hcl2, installed here into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! compgen -G "terraform/*.tf" >/dev/null; then
    echo "check-terraform: terraform/ has no .tf files yet; nothing to check"
    exit 0
fi

if command -v terraform >/dev/null 2>&1; then
    terraform fmt -check -recursive terraform/
    echo "check-terraform: terraform fmt: ok"
else
    echo "check-terraform: no terraform binary on this machine; skipping 'terraform fmt -check'"
fi

checker=../shared/reference/check_terraform.py
if [ ! -f "$checker" ]; then
    echo "check-terraform: $checker not found (clone the project beside shared/)" >&2
    exit 1
fi
scripts/venv.sh
.venv/bin/python "$checker" terraform/

#!/usr/bin/env bash
# Static checks of terraform/: `terraform fmt -check` where a terraform binary exists, then the
# project's own Rust tests of it (no Terraform, no Python, no network needed):
# - tests/terraform_schema: every .tf file against the oracle/oci provider schema carried in
#   tests/data/oci-terraform-schema.json (unknown, read-only, missing and conflicting arguments,
#   block syntax, undeclared references, attributes a resource does not have);
# - tests/terraform_config: the functions' configuration maps and failure streams.
# `cargo test --workspace` runs both tests too; this script is the quick check after editing terraform/.
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

# --nocapture shows the schema check's report, warnings included (types missing from the schema).
# --workspace builds with the features `scripts/test.sh`'s `cargo test --workspace` uses, so after
# it nothing is compiled again.
cargo test --workspace --locked --test terraform_schema --test terraform_config -- --nocapture

//! `terraform/` against the Terraform provider `oracle/oci`'s argument schema.
//!
//! The project's own static check of the `.tf` files (no Terraform, no Python, no network): each
//! directory of `.tf` files under `terraform/` is one module, parsed with hcl-edit and held
//! against `tests/data/oci-terraform-schema.json` (provider v8.28.0; see `tests/data/README.md`).
//! Errors, each naming its file, line and resource:
//! - a file that does not parse; an unknown top-level block; a duplicate declaration;
//! - an unknown argument or block at any depth; a read-only (computed) attribute that is set;
//!   a block written as an argument or an argument written as a block; a single block given
//!   twice; a missing required argument or block (a `dynamic "x"` block provides `x`); a
//!   malformed `dynamic` block; arguments that conflict (`conflicts_with`);
//!   `lifecycle.ignore_changes` naming an attribute the resource does not have;
//! - `var.X` with no `variable` block, an undeclared `local.X` or `module.X`, a reference to a
//!   resource or data source that is not declared or to an attribute it does not have (such as
//!   `oci_streaming_stream.s.message_endpoint`), a `count`/`for_each` resource or a list of
//!   blocks used without an index.
//!
//! A resource type or data source missing from the schema is a warning, printed, not a failure.
//! Values are not type-checked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod body;
mod cases;
mod findings;
mod module;
mod references;
mod schema;
#[path = "../terraform_support/mod.rs"]
mod terraform_support;

use findings::Findings;
use schema::Schema;

/// Checks one module, given as its `(path, source)` files.
pub fn check_module(sources: &[(String, String)], schema: &Schema) -> Findings {
    let mut findings = Findings::default();
    let files = module::parse_files(sources, &mut findings);
    let decls = module::declarations(&files, &mut findings);
    body::check_bodies(&files, schema, &mut findings);
    references::check_references(&files, &decls, schema, &mut findings);
    findings
}

#[test]
fn terraform_matches_the_provider_schema() {
    let schema = schema::load();
    let dirs = terraform_support::module_dirs(&terraform_support::terraform_dir());
    assert!(!dirs.is_empty(), "terraform/ has no .tf files");
    let mut errors = Vec::new();
    for dir in dirs {
        let findings = check_module(&terraform_support::module_sources(&dir), &schema);
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        println!("{shown}: {}", findings.report());
        errors.extend(findings.errors().into_iter().map(ToString::to_string));
    }
    assert!(
        errors.is_empty(),
        "terraform/ does not match the provider schema:\n{}",
        errors.join("\n")
    );
}

/// The check above runs on the real files: one bad reference added to them is the one error.
#[test]
fn terraform_with_one_seeded_error_fails_with_that_error() {
    let schema = schema::load();
    let mut sources = terraform_support::module_sources(&terraform_support::terraform_dir());
    sources.push((
        "terraform/seeded.tf".to_string(),
        "output \"seeded\" {\n  value = oci_streaming_stream.data.message_endpoint\n}\n"
            .to_string(),
    ));
    let findings = check_module(&sources, &schema);
    let errors: Vec<String> = findings.errors().iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["terraform/seeded.tf:2: error: reference to unknown attribute \"message_endpoint\" of oci_streaming_stream.data (did you mean \"messages_endpoint\"?)"]
    );
}

//! Each rule on a small inline module: the base module below passes, and one change to it makes
//! the rule fire with the finding it should.

use std::sync::OnceLock;

use crate::findings::Findings;
use crate::schema::{self, Schema};

/// A small module that passes every rule, using most of what the rules look at: a `for`
/// expression, a dynamic block with its iterator, a `count` resource, a data source, a list of
/// blocks read with an index, `lifecycle`, `depends_on`.
const BASE: &str = r#"
variable "compartment_ocid" {
  type = string
}

variable "ports" {
  type    = list(number)
  default = [443]
}

locals {
  prefix = "ds"
  names  = [for p in var.ports : "${local.prefix}-${p}"]
}

data "oci_objectstorage_namespace" "ns" {
  compartment_id = var.compartment_ocid
}

resource "oci_core_vcn" "main" {
  compartment_id = var.compartment_ocid
  cidr_block     = "10.0.0.0/16"
}

resource "oci_core_security_list" "main" {
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.main.id

  dynamic "ingress_security_rules" {
    for_each = var.ports
    content {
      protocol = "6"
      source   = "0.0.0.0/0"
      tcp_options {
        min = ingress_security_rules.value
        max = ingress_security_rules.value
      }
    }
  }
}

resource "oci_streaming_stream" "s" {
  name           = "${local.prefix}-s"
  partitions     = 1
  compartment_id = var.compartment_ocid
}

resource "oci_ons_notification_topic" "t" {
  count          = 1
  compartment_id = var.compartment_ocid
  name           = "${local.prefix}-t"
}

resource "oci_objectstorage_bucket" "b" {
  compartment_id = var.compartment_ocid
  name           = "b"
  namespace      = data.oci_objectstorage_namespace.ns.namespace

  lifecycle {
    ignore_changes = [defined_tags]
  }
}

resource "oci_sch_service_connector" "c" {
  compartment_id = var.compartment_ocid
  display_name   = "c"

  source {
    kind      = "streaming"
    stream_id = oci_streaming_stream.s.id
    cursor {
      kind = "TRIM_HORIZON"
    }
  }

  target {
    kind     = "notifications"
    topic_id = oci_ons_notification_topic.t[0].id
  }

  depends_on = [oci_core_security_list.main]
}

output "endpoint" {
  value = oci_streaming_stream.s.messages_endpoint
}

output "first_rule_source" {
  value = oci_core_security_list.main.ingress_security_rules[0].source
}
"#;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(schema::load)
}

fn check(src: &str) -> Findings {
    crate::check_module(&[("main.tf".to_string(), src.to_string())], schema())
}

/// The error lines of `src`, as the report prints them.
fn errors(src: &str) -> Vec<String> {
    check(src)
        .errors()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// `BASE` with its only `from` replaced by `to` (a change that does not apply fails the test,
/// so no case passes on an unchanged module).
fn base_with(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "{from:?} is not in BASE exactly once"
    );
    BASE.replace(from, to)
}

/// The 1-based line of the only line of `src` that contains `needle`.
fn line_of(src: &str, needle: &str) -> usize {
    let lines: Vec<usize> = src
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "{needle:?} is not on exactly one line");
    lines[0]
}

/// Asserts that `src` has the error `main.tf:LINE: error: MESSAGE`, LINE being the line holding
/// `at`, and no error that does not contain `message`'s first words.
fn assert_error(src: &str, at: &str, message: &str) {
    let expected = format!("main.tf:{}: error: {message}", line_of(src, at));
    let errors = errors(src);
    assert!(
        errors.contains(&expected),
        "expected {expected}\nin {errors:#?}"
    );
}

#[test]
fn the_base_module_passes() {
    let findings = check(BASE);
    assert!(findings.sorted().is_empty(), "{}", findings.report());
}

#[test]
fn a_file_that_does_not_parse_is_an_error() {
    let src = base_with("output \"endpoint\" {", "output \"endpoint\" {{");
    let errors = errors(&src);
    let at = format!(
        "main.tf:{}: error: cannot parse HCL",
        line_of(&src, "endpoint\" {{")
    );
    assert!(errors.iter().any(|e| e.starts_with(&at)), "{errors:#?}");
}

#[test]
fn an_unknown_top_level_block_is_an_error() {
    let src = format!("{BASE}\nresorce \"oci_core_vcn\" \"x\" {{\n}}\n");
    assert_error(&src, "resorce", "unknown top-level block type \"resorce\"");
}

#[test]
fn a_duplicate_declaration_is_an_error() {
    let cases = [
        (
            "resource \"oci_core_vcn\" \"main\" { compartment_id = \"x\" }",
            "resource \"oci_core_vcn\" \"main\"",
            "resource oci_core_vcn.main",
            0,
        ),
        (
            "variable \"ports\" {}",
            "variable \"ports\"",
            "variable \"ports\"",
            0,
        ),
        // A local value is declared by its line inside `locals`.
        (
            "locals {\n  prefix = \"x\"\n}",
            "prefix = \"ds\"",
            "local value \"prefix\"",
            1,
        ),
        (
            "output \"endpoint\" {\n  value = 1\n}",
            "output \"endpoint\"",
            "output \"endpoint\"",
            0,
        ),
        (
            "data \"oci_objectstorage_namespace\" \"ns\" {}",
            "data \"oci_objectstorage_namespace\"",
            "data.oci_objectstorage_namespace.ns",
            0,
        ),
    ];
    for (again, first, what, line_in_again) in cases {
        let src = format!("{BASE}\n{again}\n");
        // BASE ends with a newline, then one blank line, then `again`.
        let duplicate = BASE.lines().count() + 2 + line_in_again;
        let expected = format!(
            "main.tf:{duplicate}: error: duplicate declaration of {what} (first at main.tf:{})",
            line_of(BASE, first)
        );
        let errors = errors(&src);
        assert!(
            errors.contains(&expected),
            "expected {expected}\nin {errors:#?}"
        );
    }
}

#[test]
fn a_type_missing_from_the_schema_is_a_warning_not_an_error() {
    let src = format!("{BASE}\nresource \"oci_made_up\" \"x\" {{\n  anything = 1\n}}\n");
    let findings = check(&src);
    assert!(findings.errors().is_empty(), "{}", findings.report());
    let expected = format!(
        "main.tf:{}: warning: resource type \"oci_made_up\" is not in tests/data/oci-terraform-schema.json (body not checked)",
        line_of(&src, "oci_made_up")
    );
    let warnings: Vec<String> = findings
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(warnings, [expected]);
}

#[test]
fn an_unknown_argument_is_an_error_at_any_depth() {
    let src = base_with("cidr_block     =", "cidr_blok      =");
    assert_error(
        &src,
        "cidr_blok",
        "oci_core_vcn.main: unknown argument \"cidr_blok\" (did you mean \"cidr_block\"?)",
    );
    let src = base_with("kind = \"TRIM_HORIZON\"", "kinds = \"TRIM_HORIZON\"");
    assert_error(
        &src,
        "kinds",
        "oci_sch_service_connector.c.source.cursor: unknown argument \"kinds\" (did you mean \"kind\"?)",
    );
    let src = base_with(
        "protocol = \"6\"",
        "protocol = \"6\"\n      protocl  = \"6\"",
    );
    assert_error(
        &src,
        "protocl ",
        "oci_core_security_list.main.ingress_security_rules: unknown argument \"protocl\" (did you mean \"protocol\"?)",
    );
    let src = base_with(
        "min = ingress_security_rules.value",
        "mini = ingress_security_rules.value",
    );
    assert_error(
        &src,
        "mini",
        "oci_core_security_list.main.ingress_security_rules.tcp_options: unknown argument \"mini\" (did you mean \"min\"?)",
    );
}

#[test]
fn an_unknown_block_is_an_error() {
    let src = base_with(
        "partitions     = 1",
        "partitions     = 1\n  retention {\n  }",
    );
    assert_error(
        &src,
        "retention {",
        "oci_streaming_stream.s: unknown block type \"retention\"",
    );
    let src = base_with("    cursor {", "    cursors {");
    assert_error(
        &src,
        "cursors {",
        "oci_sch_service_connector.c.source: unknown block type \"cursors\" (did you mean \"cursor\"?)",
    );
}

#[test]
fn setting_a_read_only_attribute_is_an_error() {
    let src = base_with(
        "partitions     = 1",
        "partitions     = 1\n  messages_endpoint = \"x\"",
    );
    assert_error(
        &src,
        "messages_endpoint = \"x\"",
        "oci_streaming_stream.s: \"messages_endpoint\" is a read-only (computed) attribute and cannot be set",
    );
    let src = base_with(
        "    kind     = \"notifications\"",
        "    kind     = \"notifications\"\n    private_endpoint_metadata {\n    }",
    );
    assert_error(
        &src,
        "private_endpoint_metadata {",
        "oci_sch_service_connector.c.target: \"private_endpoint_metadata\" is a read-only (computed) attribute, not a block",
    );
}

#[test]
fn a_block_written_as_an_argument_and_the_reverse_are_errors() {
    let src = base_with(
        "cursor {\n      kind = \"TRIM_HORIZON\"\n    }",
        "cursor = { kind = \"TRIM_HORIZON\" }",
    );
    assert_error(
        &src,
        "cursor = {",
        "oci_sch_service_connector.c.source: \"cursor\" is a nested block; write `cursor { ... }`, not `cursor = ...`",
    );
    let src = base_with("name           = \"b\"", "name {\n  }");
    assert_error(
        &src,
        "name {",
        "oci_objectstorage_bucket.b: \"name\" is an argument (string), not a block; write `name = ...`",
    );
}

#[test]
fn a_single_block_given_twice_is_an_error() {
    let src = base_with(
        "    cursor {",
        "    cursor {\n      kind = \"LATEST\"\n    }\n    cursor {",
    );
    let second = line_of(&src, "kind = \"LATEST\"") + 2;
    let expected = format!(
        "main.tf:{second}: error: oci_sch_service_connector.c.source: block \"cursor\" may appear at most once"
    );
    let errors = errors(&src);
    assert_eq!(errors, [expected]);
}

#[test]
fn a_missing_required_argument_or_block_is_an_error() {
    let src = base_with("  partitions     = 1\n", "");
    assert_error(
        &src,
        "\"oci_streaming_stream\" \"s\"",
        "oci_streaming_stream.s: missing required argument \"partitions\"",
    );
    let src = base_with("      protocol = \"6\"\n", "");
    assert_error(
        &src,
        "dynamic \"ingress_security_rules\"",
        "oci_core_security_list.main.ingress_security_rules: missing required argument \"protocol\"",
    );
    let src = base_with(
        "  target {\n    kind     = \"notifications\"\n    topic_id = oci_ons_notification_topic.t[0].id\n  }\n",
        "",
    );
    assert_error(
        &src,
        "\"oci_sch_service_connector\" \"c\"",
        "oci_sch_service_connector.c: missing required block \"target\"",
    );
}

#[test]
fn a_dynamic_block_provides_its_block() {
    let target = "  target {\n    kind     = \"notifications\"\n    topic_id = oci_ons_notification_topic.t[0].id\n  }\n";
    let dynamic = "  dynamic \"target\" {\n    for_each = [1]\n    content {\n      kind     = \"notifications\"\n      topic_id = oci_ons_notification_topic.t[0].id\n    }\n  }\n";
    let src = base_with(target, dynamic);
    assert!(errors(&src).is_empty(), "{:#?}", errors(&src));
    // Without it the block is missing (this case would pass vacuously otherwise).
    assert!(!errors(&base_with(target, "")).is_empty());
}

#[test]
fn a_malformed_dynamic_block_is_an_error() {
    let src = base_with("    for_each = var.ports\n", "");
    assert_error(
        &src,
        "dynamic \"ingress_security_rules\"",
        "oci_core_security_list.main: dynamic \"ingress_security_rules\": missing required argument \"for_each\"",
    );
    let src = base_with(
        "dynamic \"ingress_security_rules\"",
        "dynamic \"ingress_rules\"",
    );
    assert_error(
        &src,
        "dynamic \"ingress_rules\"",
        "oci_core_security_list.main: dynamic \"ingress_rules\": \"ingress_rules\" is not a block of this type",
    );
    let src = base_with(
        "dynamic \"ingress_security_rules\"",
        "dynamic \"display_name\"",
    );
    assert_error(
        &src,
        "dynamic \"display_name\"",
        "oci_core_security_list.main: dynamic \"display_name\": \"display_name\" is an argument (string), not a block",
    );
    let src = base_with("    content {", "    contents {");
    assert_error(
        &src,
        "dynamic \"ingress_security_rules\"",
        "oci_core_security_list.main: dynamic \"ingress_security_rules\": needs exactly one content block and no other",
    );
}

#[test]
fn conflicting_arguments_are_an_error() {
    let src = base_with(
        "partitions     = 1",
        "partitions     = 1\n  stream_pool_id = \"x\"",
    );
    assert_error(
        &src,
        "\"oci_streaming_stream\" \"s\"",
        "oci_streaming_stream.s: \"compartment_id\" and \"stream_pool_id\" cannot both be set",
    );
}

#[test]
fn ignore_changes_of_an_unknown_attribute_is_an_error() {
    let src = base_with("[defined_tags]", "[defined_tagz]");
    assert_error(
        &src,
        "defined_tagz",
        "oci_objectstorage_bucket.b: lifecycle.ignore_changes names unknown attribute \"defined_tagz\" (did you mean \"defined_tags\"?)",
    );
}

#[test]
fn an_undeclared_variable_local_or_module_is_an_error() {
    let src = base_with(
        "compartment_id = var.compartment_ocid\n  cidr_block",
        "compartment_id = var.compartment_id\n  cidr_block",
    );
    assert_error(
        &src,
        "var.compartment_id",
        "reference to undeclared input variable var.compartment_id (no variable \"compartment_id\" block) (did you mean \"compartment_ocid\"?)",
    );
    let src = base_with("\"${local.prefix}-s\"", "\"${local.prefx}-s\"");
    assert_error(
        &src,
        "local.prefx",
        "reference to undeclared local value local.prefx (did you mean \"prefix\"?)",
    );
    let src = format!("{BASE}\noutput \"net\" {{\n  value = module.net.id\n}}\n");
    assert_error(
        &src,
        "module.net",
        "reference to undeclared module module.net",
    );
}

#[test]
fn a_reference_to_an_undeclared_resource_or_data_source_is_an_error() {
    let src = base_with(
        "stream_id = oci_streaming_stream.s.id",
        "stream_id = oci_streaming_stream.stream.id",
    );
    assert_error(
        &src,
        "oci_streaming_stream.stream",
        "reference to undeclared resource oci_streaming_stream.stream",
    );
    let src = base_with(
        "data.oci_objectstorage_namespace.ns.namespace",
        "data.oci_objectstorage_namespace.n.namespace",
    );
    assert_error(
        &src,
        "oci_objectstorage_namespace.n.",
        "reference to undeclared data source data.oci_objectstorage_namespace.n",
    );
    let src = base_with(
        "depends_on = [oci_core_security_list.main]",
        "depends_on = [oci_core_security_lists.main]",
    );
    assert_error(
        &src,
        "depends_on",
        "reference to undeclared resource oci_core_security_lists.main",
    );
}

#[test]
fn a_reference_to_an_attribute_the_type_does_not_have_is_an_error() {
    let src = base_with(".s.messages_endpoint", ".s.message_endpoint");
    assert_error(
        &src,
        "message_endpoint",
        "reference to unknown attribute \"message_endpoint\" of oci_streaming_stream.s (did you mean \"messages_endpoint\"?)",
    );
    let src = base_with(
        "data.oci_objectstorage_namespace.ns.namespace",
        "data.oci_objectstorage_namespace.ns.name",
    );
    assert_error(
        &src,
        "ns.name",
        "reference to unknown attribute \"name\" of data.oci_objectstorage_namespace.ns",
    );
    let src = base_with(
        "ingress_security_rules[0].source",
        "ingress_security_rules[0].sauce",
    );
    assert_error(
        &src,
        "sauce",
        "reference to unknown attribute \"sauce\" of oci_core_security_list.main.ingress_security_rules[*]",
    );
}

#[test]
fn a_missing_index_is_an_error() {
    let src = base_with(
        "oci_ons_notification_topic.t[0].id",
        "oci_ons_notification_topic.t.id",
    );
    assert_error(
        &src,
        "topic_id",
        "oci_ons_notification_topic.t uses count/for_each: index it (e.g. oci_ons_notification_topic.t[0].id or oci_ons_notification_topic.t[*].id)",
    );
    let src = base_with(
        "ingress_security_rules[0].source",
        "ingress_security_rules.source",
    );
    assert_error(
        &src,
        "ingress_security_rules.source",
        "oci_core_security_list.main.ingress_security_rules is a list of blocks: use oci_core_security_list.main.ingress_security_rules[0].source",
    );
}

#[test]
fn names_bound_by_for_and_dynamic_blocks_are_not_references() {
    // The base module reads `ingress_security_rules.value` inside its dynamic block; once the
    // iterator is renamed, the same text is a reference to an undeclared resource.
    let src = base_with(
        "    for_each = var.ports\n",
        "    for_each = var.ports\n    iterator = rule\n",
    );
    let errors = errors(&src);
    assert!(
        errors
            .iter()
            .any(|e| e.ends_with("reference to undeclared resource ingress_security_rules.value")),
        "{errors:#?}"
    );
    let src = base_with(
        "[for p in var.ports : \"${local.prefix}-${p}\"]",
        "[for port_number in var.ports : port_number.value]",
    );
    assert!(crate::cases::errors(&src).is_empty());
    let src = base_with(
        "[for p in var.ports : \"${local.prefix}-${p}\"]",
        "[for p in var.ports : port_number.value]",
    );
    let errors = crate::cases::errors(&src);
    assert!(
        errors
            .iter()
            .any(|e| e.ends_with("reference to undeclared resource port_number.value")),
        "{errors:#?}"
    );
}

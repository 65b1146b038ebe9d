//! `terraform/` against the functions' configuration contract.
//!
//! The functions read the keys in `datasync_core::function_config::KEYS`; on OCI they arrive from
//! the Functions application's (and each function's) `config` map. These tests read the `.tf`
//! files (with hcl-edit, through `tests/terraform_support`; no Terraform, no Python, no network)
//! and check that:
//! - the union of every `config` map in `oci_functions_application` and `oci_functions_function`
//!   is exactly the exported key set, and a function's own `config` holds only keys it reads;
//! - every stream the functions can route a failure to (keys ending in `_error_stream_ocid`, and
//!   `dead_letter_stream_ocid`) is set from an `oci_streaming_stream` resource that exists and that
//!   a Service Connector archives to Object Storage, each under its own prefix;
//! - the data stream feeds the process function through a connector that starts at TRIM_HORIZON.
//!
//! Each failure names the key, stream or connector at fault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod terraform_rules;
mod terraform_support;

use std::collections::{BTreeMap, BTreeSet};

use datasync_core::function_config::{self, keys_for, Function, KEYS};
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::Body;

use terraform_support::{attr, block, label, resource_ref, source_text, string_literal, TfFile};

// ------------------------------------------------------------------------------------------------
// Reading the module: what these checks need from the parsed files.
// ------------------------------------------------------------------------------------------------

/// The entries of a literal map `{ k = v ... }` (keys bare or quoted), in order.
fn map_entries(value: &Expression) -> Result<Vec<(String, &Expression)>, String> {
    let Expression::Object(object) = value else {
        return Err(format!("not a literal map: {}", source_text(value)));
    };
    object
        .iter()
        .map(|(key, value)| {
            let key = match key {
                ObjectKey::Ident(ident) => ident.to_string(),
                ObjectKey::Expression(Expression::String(s)) => s.to_string(),
                ObjectKey::Expression(other) => {
                    return Err(format!(
                        "key {} is not a name or a plain string",
                        source_text(other)
                    ))
                }
            };
            Ok((key, value.expr()))
        })
        .collect()
}

/// `oci_streaming_stream.NAME.id` → `NAME`.
fn stream_ref(value: &Expression) -> Option<&str> {
    resource_ref(value, "oci_streaming_stream", "id")
}

/// A `resource` block.
struct Resource<'f> {
    rtype: &'f str,
    name: &'f str,
    file: &'f str,
    body: &'f Body,
}

impl Resource<'_> {
    fn address(&self) -> String {
        format!("{}.{} ({})", self.rtype, self.name, self.file)
    }
}

/// Parses the given `(file name, source)` pairs.
fn parse(files: &[(String, String)]) -> Result<Vec<TfFile>, String> {
    files
        .iter()
        .map(|(name, src)| TfFile::parse(name, src).map_err(|e| e.to_string()))
        .collect()
}

/// Every `resource` of `files`.
fn resources(files: &[TfFile]) -> Vec<Resource<'_>> {
    files
        .iter()
        .flat_map(|file| {
            file.body.blocks().filter_map(move |b| {
                let (Some(rtype), Some(name), None) = (label(b, 0), label(b, 1), label(b, 2))
                else {
                    return None;
                };
                (b.ident.as_str() == "resource").then_some(Resource {
                    rtype,
                    name,
                    file: &file.name,
                    body: &b.body,
                })
            })
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// The checks
// ------------------------------------------------------------------------------------------------

/// Whether the functions can route a failed message to the stream this key names.
fn is_failure_stream_key(name: &str) -> bool {
    name.ends_with("_error_stream_ocid") || name == function_config::DEAD_LETTER_STREAM
}

/// The function a `oci_functions_function` resource deploys: its literal `display_name`, else
/// its resource name.
fn function_of(res: &Resource) -> Option<Function> {
    let display = attr(res.body, "display_name").and_then(string_literal);
    Function::ALL
        .into_iter()
        .find(|f| display == Some(f.name()))
        .or_else(|| Function::ALL.into_iter().find(|f| res.name == f.name()))
}

/// A connector's source stream resource name, cursor kind, target kind and target body.
struct Connector<'a> {
    res: &'a Resource<'a>,
    source_stream: Option<&'a str>,
    cursor: Option<&'a str>,
    target_kind: Option<&'a str>,
    target: Option<&'a Body>,
}

impl<'a> Connector<'a> {
    /// Attribute `name` of the connector's `target` block.
    fn target_attr(&self, name: &str) -> Option<&'a Expression> {
        self.target.and_then(|t| attr(t, name))
    }

    /// Whether it copies its source stream to Object Storage under a prefix of its own.
    fn archives_to_object_storage(&self) -> bool {
        self.target_kind == Some("objectStorage")
            && self.target_attr("bucket").is_some()
            && self.target_attr("object_name_prefix").is_some()
    }
}

fn connectors<'a>(all: &'a [Resource<'a>]) -> Vec<Connector<'a>> {
    all.iter()
        .filter(|r| r.rtype == "oci_sch_service_connector")
        .map(|res| {
            let source = block(res.body, "source").map(|b| &b.body);
            let cursor = source
                .and_then(|s| block(s, "cursor"))
                .and_then(|c| attr(&c.body, "kind"))
                .and_then(string_literal);
            let target = block(res.body, "target").map(|b| &b.body);
            Connector {
                res,
                source_stream: source
                    .and_then(|s| attr(s, "stream_id"))
                    .and_then(stream_ref),
                cursor,
                target_kind: target
                    .and_then(|t| attr(t, "kind"))
                    .and_then(string_literal),
                target,
            }
        })
        .collect()
}

/// Every key set by a `config` map: key -> (value expression, where it is set), in file order.
type ConfigSet<'a> = BTreeMap<String, Vec<(&'a Expression, String)>>;

/// The configuration maps: one application, every exported key set, no key a function does not
/// read. Returns what is set, for the stream checks.
fn check_config_maps<'a>(all: &'a [Resource<'a>], problems: &mut Vec<String>) -> ConfigSet<'a> {
    let exported: BTreeSet<&str> = KEYS.iter().map(|k| k.name).collect();
    let mut set = ConfigSet::new();
    let apps = all
        .iter()
        .filter(|r| r.rtype == "oci_functions_application")
        .count();
    if apps != 1 {
        problems.push(format!(
            "expected exactly one oci_functions_application, found {apps}"
        ));
    }
    for res in all
        .iter()
        .filter(|r| r.rtype == "oci_functions_application" || r.rtype == "oci_functions_function")
    {
        let Some(value) = attr(res.body, "config") else {
            continue;
        };
        let entries = match map_entries(value) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(format!(
                    "{}: config must be a literal map so it can be checked: {e}",
                    res.address()
                ));
                continue;
            }
        };
        let function = (res.rtype == "oci_functions_function").then(|| function_of(res));
        for (key, value) in entries {
            if let Some(function) = function {
                match function {
                    None => problems.push(format!("{}: cannot tell which function this is, so its config key {key} cannot be checked", res.address())),
                    Some(f) if !keys_for(f).any(|k| k.name == key) => problems.push(format!(
                        "{}: config key {key} is not read by the {} function (keys_for({:?}) in crates/core/src/function_config.rs)",
                        res.address(),
                        f.name(),
                        f
                    )),
                    Some(_) => {}
                }
            }
            let entries = set.entry(key.clone()).or_default();
            if entries.iter().any(|(_, at)| *at == res.address()) {
                problems.push(format!("{}: config key {key} is set twice", res.address()));
            }
            entries.push((value, res.address()));
        }
    }
    for key in &exported {
        if !set.contains_key(*key) {
            problems.push(format!("missing config key {key}: the functions read it (crates/core/src/function_config.rs) but no config map in terraform/ sets it"));
        }
    }
    for (key, at) in &set {
        if !exported.contains(key.as_str()) {
            let at: Vec<&str> = at.iter().map(|(_, a)| a.as_str()).collect();
            problems.push(format!(
                "extra config key {key} in {}: no function reads it (add it to KEYS in crates/core/src/function_config.rs, or remove it)",
                at.join(", ")
            ));
        }
    }
    set
}

/// Archive connectors each write under their own `object_name_prefix`.
fn check_archive_prefixes(connectors: &[Connector<'_>], problems: &mut Vec<String>) {
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    for c in connectors
        .iter()
        .filter(|c| c.target_kind == Some("objectStorage"))
    {
        let prefix = c
            .target_attr("object_name_prefix")
            .map_or_else(|| "(none)".to_string(), source_text);
        if let Some(other) = prefixes.insert(prefix.clone(), c.res.address()) {
            problems.push(format!(
                "{} and {other} archive under the same object_name_prefix {prefix}",
                c.res.address()
            ));
        }
    }
}

/// The stream the config key `key` is set to: a declared `oci_streaming_stream`'s name.
fn stream_of(set: &ConfigSet<'_>, streams: &BTreeSet<&str>, key: &str) -> Result<String, String> {
    let (value, at) = set
        .get(key)
        .and_then(|v| v.first())
        .ok_or_else(|| format!("{key} is not set"))?;
    let name = stream_ref(value).ok_or_else(|| {
        format!(
            "{key} in {at} is set to {}, not to an oci_streaming_stream.<name>.id",
            source_text(value)
        )
    })?;
    if !streams.contains(name) {
        return Err(format!(
            "{key} in {at} names oci_streaming_stream.{name}, which is not declared"
        ));
    }
    Ok(name.to_string())
}

/// Every failure stream is a declared stream that a connector archives to Object Storage.
fn check_failure_streams(
    set: &ConfigSet<'_>,
    streams: &BTreeSet<&str>,
    connectors: &[Connector<'_>],
    problems: &mut Vec<String>,
) {
    for key in KEYS
        .iter()
        .map(|k| k.name)
        .filter(|k| is_failure_stream_key(k))
    {
        let stream = match stream_of(set, streams, key) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("failure stream {e}"));
                continue;
            }
        };
        let archived = connectors
            .iter()
            .any(|c| c.source_stream == Some(stream.as_str()) && c.archives_to_object_storage());
        if !archived {
            problems.push(format!(
                "unarchived failure stream: {key} routes to oci_streaming_stream.{stream}, but no oci_sch_service_connector copies it to Object Storage (source stream_id = oci_streaming_stream.{stream}.id, target kind = \"objectStorage\" with a bucket and an object_name_prefix)"
            ));
        }
    }
}

/// The data stream feeds the process function from the beginning (TRIM_HORIZON).
fn check_data_connector(
    all: &[Resource<'_>],
    set: &ConfigSet<'_>,
    streams: &BTreeSet<&str>,
    connectors: &[Connector<'_>],
    problems: &mut Vec<String>,
) {
    let Ok(data) = stream_of(set, streams, function_config::DATA_STREAM) else {
        return;
    };
    let process: Vec<&str> = all
        .iter()
        .filter(|r| {
            r.rtype == "oci_functions_function" && function_of(r) == Some(Function::Process)
        })
        .map(|r| r.name)
        .collect();
    let feeds = connectors.iter().find(|c| {
        c.source_stream == Some(data.as_str())
            && c.target_kind == Some("functions")
            && c.target_attr("function_id")
                .and_then(|f| resource_ref(f, "oci_functions_function", "id"))
                .is_some_and(|f| process.contains(&f))
    });
    match feeds {
        None => problems.push(format!("no connector delivers oci_streaming_stream.{data} (data_stream_ocid) to the process function")),
        Some(c) if c.cursor != Some("TRIM_HORIZON") => problems.push(format!(
            "{} reads the data stream from {:?}: use cursor kind TRIM_HORIZON so nothing published before the connector exists is skipped",
            c.res.address(),
            c.cursor
        )),
        Some(_) => {}
    }
}

/// Every problem found in `files` (the `.tf` files of one module), as messages for people.
fn check(files: &[(String, String)]) -> Vec<String> {
    let parsed = match parse(files) {
        Ok(parsed) => parsed,
        Err(e) => return vec![format!("cannot read the Terraform: {e}")],
    };
    let all = resources(&parsed);
    let mut problems = Vec::new();
    let set = check_config_maps(&all, &mut problems);
    let streams: BTreeSet<&str> = all
        .iter()
        .filter(|r| r.rtype == "oci_streaming_stream")
        .map(|r| r.name)
        .collect();
    let connectors = connectors(&all);
    check_archive_prefixes(&connectors, &mut problems);
    check_failure_streams(&set, &streams, &connectors, &mut problems);
    check_data_connector(&all, &set, &streams, &connectors, &mut problems);
    problems
}

/// The `.tf` files of `terraform/`, by path.
fn terraform_files() -> Vec<(String, String)> {
    terraform_support::module_sources(&terraform_support::terraform_dir())
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[test]
fn terraform_sets_exactly_the_exported_keys_and_archives_every_failure_stream() {
    let files = terraform_files();
    assert!(!files.is_empty(), "terraform/ has no .tf files");
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "terraform/ does not match crates/core/src/function_config.rs:\n  - {}",
        problems.join("\n  - ")
    );
}

/// A minimal module that passes, built from KEYS so it follows the contract as it grows.
fn good_module() -> String {
    let mut config = String::new();
    let mut streams = String::new();
    let mut archives = String::new();
    for key in KEYS {
        if is_failure_stream_key(key.name) || key.name == function_config::DATA_STREAM {
            let stream = key.name.trim_end_matches("_ocid").to_lowercase();
            config.push_str(&format!(
                "    {} = oci_streaming_stream.{stream}.id\n",
                key.name
            ));
            streams.push_str(&format!("resource \"oci_streaming_stream\" \"{stream}\" {{\n  name = \"{stream}\" # a comment {{\n  partitions = 1\n}}\n"));
            if key.name != function_config::DATA_STREAM {
                archives.push_str(&format!(
                    "resource \"oci_sch_service_connector\" \"archive_{stream}\" {{\n  source {{\n    kind = \"streaming\"\n    stream_id = oci_streaming_stream.{stream}.id\n  }}\n  target {{\n    kind = \"objectStorage\"\n    bucket = oci_objectstorage_bucket.b.name\n    object_name_prefix = \"{stream}/\"\n  }}\n}}\n"
                ));
            }
        } else {
            config.push_str(&format!("    \"{}\" = \"${{var.x}}-{{}}\"\n", key.name));
        }
    }
    format!(
        "/* block comment }} */\nresource \"oci_functions_application\" \"app\" {{\n  display_name = \"app\"\n  config = {{\n{config}  }}\n}}\n\
         resource \"oci_functions_function\" \"p\" {{\n  display_name = \"process\"\n  memory_in_mbs = \"256\"\n}}\n\
         resource \"oci_sch_service_connector\" \"data\" {{\n  source {{\n    kind = \"streaming\"\n    stream_id = oci_streaming_stream.data_stream.id\n    cursor {{\n      kind = \"TRIM_HORIZON\"\n    }}\n  }}\n  target {{\n    kind = \"functions\"\n    function_id = oci_functions_function.p.id\n  }}\n}}\n\
         {streams}{archives}"
    )
}

fn module(src: String) -> Vec<(String, String)> {
    vec![("main.tf".to_string(), src)]
}

#[test]
fn the_inline_module_passes() {
    let problems = check(&module(good_module()));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_missing_key_is_named() {
    let src = good_module().replace("    \"max_attempts\" = \"${var.x}-{}\"\n", "");
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("missing config key max_attempts")),
        "{problems:#?}"
    );
}

#[test]
fn an_extra_key_is_named() {
    let src = good_module().replace(
        "  config = {\n",
        "  config = {\n    compartment_ocid = var.compartment_ocid\n",
    );
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("extra config key compartment_ocid")),
        "{problems:#?}"
    );
}

#[test]
fn an_unarchived_failure_stream_is_named() {
    let src = good_module().replace("kind = \"objectStorage\"\n    bucket = oci_objectstorage_bucket.b.name\n    object_name_prefix = \"dead_letter_stream/\"", "kind = \"notifications\"");
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("unarchived failure stream: dead_letter_stream_ocid")),
        "{problems:#?}"
    );
}

#[test]
fn a_failure_stream_that_is_not_a_declared_stream_is_named() {
    let src = good_module().replace(
        "default_error_stream_ocid = oci_streaming_stream.default_error_stream.id",
        "default_error_stream_ocid = oci_streaming_stream.service_unavailable.id",
    );
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("default_error_stream_ocid") && p.contains("not declared")),
        "{problems:#?}"
    );
}

#[test]
fn a_function_config_key_the_function_does_not_read_is_named() {
    let src = good_module().replace(
        "  display_name = \"process\"\n",
        "  display_name = \"process\"\n  config = {\n    data_stream_ocid = \"x\"\n  }\n",
    );
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("config key data_stream_ocid is not read by the process function")),
        "{problems:#?}"
    );
}

#[test]
fn the_data_connector_must_start_at_trim_horizon() {
    let src = good_module().replace("\"TRIM_HORIZON\"", "\"LATEST\"");
    let problems = check(&module(src));
    assert!(
        problems.iter().any(|p| p.contains("TRIM_HORIZON")),
        "{problems:#?}"
    );
}

#[test]
fn an_unparsable_file_is_named() {
    let src = good_module().replace(
        "resource \"oci_functions_function\" \"p\" {",
        "resource \"oci_functions_function\" \"p\" {{",
    );
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("cannot read the Terraform: main.tf:")),
        "{problems:#?}"
    );
}

#[test]
fn config_maps_and_references_are_read_as_this_test_expects() {
    let body = hcl_edit::parser::parse_body(
        "m = { k1 = 1, \"k2\" : \"v\" }\n\
         a = oci_streaming_stream.dead_letter.id\n\
         b = oci_streaming_stream.s[0].id\n\
         c = oci_streaming_stream.s.name\n\
         d = \"${var.x}\"\n",
    )
    .unwrap();
    let entries: Vec<(String, String)> = map_entries(attr(&body, "m").unwrap())
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, source_text(v)))
        .collect();
    assert_eq!(
        entries,
        vec![("k1".into(), "1".into()), ("k2".into(), "\"v\"".into())]
    );
    assert_eq!(stream_ref(attr(&body, "a").unwrap()), Some("dead_letter"));
    assert_eq!(stream_ref(attr(&body, "b").unwrap()), None);
    assert_eq!(stream_ref(attr(&body, "c").unwrap()), None);
    assert_eq!(string_literal(attr(&body, "d").unwrap()), None);
    assert!(map_entries(attr(&body, "a").unwrap()).is_err());
}

// ------------------------------------------------------------------------------------------------
// Notifications: the topic's endpoint reaches the functions; the raw dead-letter connector and
// payloads in alerts are off unless asked for.
// ------------------------------------------------------------------------------------------------

/// The `default` of `variable "name"`, as source text.
fn variable_default(files: &[TfFile], name: &str) -> Option<String> {
    files.iter().flat_map(|f| f.body.blocks()).find_map(|b| {
        (b.ident.as_str() == "variable" && label(b, 0) == Some(name))
            .then(|| attr(&b.body, "default").map(source_text))
            .flatten()
    })
}

/// Every problem with the Notifications wiring of `files`.
fn check_notifications(files: &[(String, String)]) -> Vec<String> {
    let parsed = match parse(files) {
        Ok(parsed) => parsed,
        Err(e) => return vec![format!("cannot read the Terraform: {e}")],
    };
    let all = resources(&parsed);
    let mut problems = Vec::new();
    let set = check_config_maps(&all, &mut Vec::new());
    let topics: BTreeSet<&str> = all
        .iter()
        .filter(|r| r.rtype == "oci_ons_notification_topic")
        .map(|r| r.name)
        .collect();
    let endpoint = set
        .get(function_config::NOTIFICATION_TOPIC_ENDPOINT)
        .and_then(|v| v.first())
        .and_then(|(e, _)| resource_ref(e, "oci_ons_notification_topic", "api_endpoint"));
    match endpoint {
        Some(t) if topics.contains(t) => {}
        _ => problems.push(format!(
            "{} must be the alerts topic's api_endpoint (oci_ons_notification_topic.<name>.api_endpoint): PublishMessage is documented against it",
            function_config::NOTIFICATION_TOPIC_ENDPOINT
        )),
    }
    for var in ["notify_dead_letter_messages", "notify_dead_letter_payloads"] {
        if variable_default(&parsed, var).as_deref() != Some("false") {
            problems.push(format!("variable {var} must default to false"));
        }
    }
    for c in connectors(&all) {
        if c.target_kind != Some("notifications") {
            continue;
        }
        let count = attr(c.res.body, "count").map(source_text);
        if count.as_deref() != Some("var.notify_dead_letter_messages ? 1 : 0") {
            problems.push(format!(
                "{}: a connector to Notifications must exist only with var.notify_dead_letter_messages (count = var.notify_dead_letter_messages ? 1 : 0), found {count:?}",
                c.res.address()
            ));
        }
    }
    problems
}

#[test]
fn the_topic_endpoint_reaches_the_functions_and_raw_dead_letter_alerts_default_off() {
    let problems = check_notifications(&terraform_files());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_region_template_endpoint_or_an_unconditional_notifications_connector_is_named() {
    let mut files = terraform_files();
    for (_, text) in files.iter_mut() {
        *text = text
            .replace(
                "oci_ons_notification_topic.alerts.api_endpoint",
                "\"https://notification.${var.region}.oci.oraclecloud.com\"",
            )
            .replace("count = var.notify_dead_letter_messages ? 1 : 0", "")
            .replace(
                "type        = bool\n  default     = false",
                "type        = bool\n  default     = true",
            );
    }
    let problems = check_notifications(&files).join("\n");
    assert!(
        problems.contains("notification_topic_endpoint must be the alerts topic's api_endpoint"),
        "{problems}"
    );
    assert!(
        problems.contains("variable notify_dead_letter_messages must default to false"),
        "{problems}"
    );
    assert!(
        problems.contains("variable notify_dead_letter_payloads must default to false"),
        "{problems}"
    );
    assert!(
        problems.contains("dead_letter_to_notifications"),
        "{problems}"
    );
}

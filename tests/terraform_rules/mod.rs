//! `terraform/` against what OCI does at run time (issues 19 and 25): the retry schedules and
//! the body they send, least-privilege IAM statements, the connectors' read positions and the
//! data connector's protection, and the gateway's token validation options.
//!
//! Each check reads the parsed module and returns its problems as sentences naming the
//! resource or statement at fault; the tests below run them on `terraform/` and on small
//! modules that break one rule each, so a check that cannot fail is caught. The alarms on the
//! custom metrics and their grant (issue 22) are in `metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod metrics;

use std::collections::BTreeMap;

use datasync_local::stack::config::RetryScheduleConfig;
use datasync_local::stack::streams::ROLES;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::Body;

use crate::terraform_support::{
    attr, block, label, resource_ref, source_text, string_literal, TfFile,
};

pub mod routes;

/// The parsed module.
pub struct Module {
    files: Vec<TfFile>,
}

impl Module {
    pub fn parse(files: &[(String, String)]) -> Result<Module, String> {
        let files = files
            .iter()
            .map(|(n, s)| TfFile::parse(n, s).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Module { files })
    }

    /// The body of `kind "a" "b" { ... }` (one label when `b` is None).
    fn block(&self, kind: &str, a: &str, b: Option<&str>) -> Option<&Body> {
        self.files.iter().find_map(|f| {
            f.body
                .blocks()
                .find(|bl| {
                    bl.ident.as_str() == kind && label(bl, 0) == Some(a) && label(bl, 1) == b
                })
                .map(|bl| &bl.body)
        })
    }

    fn resource(&self, rtype: &str, name: &str) -> Option<&Body> {
        self.block("resource", rtype, Some(name))
    }

    /// Every resource of type `rtype`, by name.
    fn resources(&self, rtype: &str) -> Vec<(&str, &Body)> {
        self.files
            .iter()
            .flat_map(|f| f.body.blocks())
            .filter(|b| b.ident.as_str() == "resource" && label(b, 0) == Some(rtype))
            .filter_map(|b| Some((label(b, 1)?, &b.body)))
            .collect()
    }

    /// `local.NAME`'s expression.
    fn local(&self, name: &str) -> Option<&Expression> {
        self.files
            .iter()
            .flat_map(|f| f.body.blocks())
            .filter(|b| b.ident.as_str() == "locals")
            .find_map(|b| attr(&b.body, name))
    }

    /// The default of `variable "NAME"`.
    fn default(&self, name: &str) -> Option<&Expression> {
        self.block("variable", name, None)
            .and_then(|b| attr(b, "default"))
    }

    /// The source text of every statement string in the module (each element of every
    /// `statements` list and of every `locals` list whose name ends in `_statements`), with the
    /// local it came from.
    fn statements(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut collect = |e: &Expression| collect_strings(e, &mut out);
        for (_, body) in self.resources("oci_identity_policy") {
            if let Some(s) = attr(body, "statements") {
                collect(s);
            }
        }
        for f in &self.files {
            for b in f.body.blocks().filter(|b| b.ident.as_str() == "locals") {
                for a in b.body.attributes() {
                    if a.key.as_str().ends_with("_statements") {
                        collect(&a.value);
                    }
                }
            }
        }
        out
    }
}

/// Every string or string template inside `e`, as source text.
fn collect_strings(e: &Expression, out: &mut Vec<String>) {
    match e {
        Expression::String(_) | Expression::StringTemplate(_) => out.push(source_text(e)),
        Expression::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        Expression::FuncCall(f) => f.args.iter().for_each(|v| collect_strings(v, out)),
        Expression::ForExpr(f) => collect_strings(&f.value_expr, out),
        Expression::Parenthesis(p) => collect_strings(p.inner(), out),
        Expression::Conditional(c) => {
            collect_strings(&c.true_expr, out);
            collect_strings(&c.false_expr, out);
        }
        _ => {}
    }
}

/// The entries of a literal object, keys as written.
fn object_entries(e: &Expression) -> Vec<(String, &Expression)> {
    let Expression::Object(o) = e else {
        return Vec::new();
    };
    o.iter()
        .map(|(k, v)| {
            let key = match k {
                ObjectKey::Ident(i) => i.to_string(),
                ObjectKey::Expression(x) => source_text(x).trim_matches('"').to_string(),
            };
            (key, v.expr())
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Issue 19.4: the retry schedules
// ------------------------------------------------------------------------------------------------

/// The stream resource the application's `config` map sets for `key`.
fn config_stream<'m>(m: &'m Module, key: &str) -> Option<&'m str> {
    let app = m
        .resources("oci_functions_application")
        .into_iter()
        .next()?
        .1;
    let config = attr(app, "config")?;
    object_entries(config)
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| resource_ref(v, "oci_streaming_stream", "id"))
}

/// The schedules invoke the retry function's group mode with a body the function accepts, on
/// exactly the streams `datasync up` schedules, on by default, with least-privilege IAM.
pub fn check_retry_schedule(m: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(schedule) = m.resource("oci_resource_scheduler_schedule", "retry") else {
        return vec!["no oci_resource_scheduler_schedule.retry invokes the retry function".into()];
    };
    // The streams: the same as the local retry schedule's, by short name.
    let wanted: BTreeMap<&str, &str> = ROLES
        .iter()
        .filter(|r| r.scheduled_retry)
        .map(|r| (r.short, r.config_key))
        .collect();
    let streams = m.local("scheduled_retry_streams").map(object_entries);
    match streams {
        None => problems.push("local.scheduled_retry_streams is not a literal map".into()),
        Some(entries) => {
            let mut got: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            got.sort_unstable();
            if got != wanted.keys().copied().collect::<Vec<_>>() {
                problems.push(format!(
                    "local.scheduled_retry_streams names {got:?}; datasync up's retry schedule replays {:?}",
                    wanted.keys().collect::<Vec<_>>()
                ));
            }
            for (short, value) in &entries {
                let set = wanted.get(short.as_str()).and_then(|k| config_stream(m, k));
                let here = resource_ref(value, "oci_streaming_stream", "id");
                if here.is_none() || here != set {
                    problems.push(format!(
                        "local.scheduled_retry_streams[{short}] is {}, not the stream the functions' configuration names for it",
                        source_text(value)
                    ));
                }
            }
        }
    }
    let for_each = attr(schedule, "for_each")
        .map(source_text)
        .unwrap_or_default();
    if for_each != "var.retry_schedule_enabled ? local.scheduled_retry_streams : {}" {
        problems.push(format!(
            "oci_resource_scheduler_schedule.retry: for_each is `{for_each}`, not one schedule per scheduled stream behind var.retry_schedule_enabled"
        ));
    }
    if m.default("retry_schedule_enabled")
        .map(source_text)
        .as_deref()
        != Some("true")
    {
        problems.push("variable retry_schedule_enabled must default to true".into());
    }
    if attr(schedule, "action").and_then(string_literal) != Some("START_RESOURCE") {
        problems.push(
            "oci_resource_scheduler_schedule.retry: action must be START_RESOURCE (invoke)".into(),
        );
    }
    problems.extend(check_schedule_body(m, schedule));
    problems.extend(check_schedule_policy(m));
    problems
}

/// The one `resources` block names the retry function and its BODY is the group-mode request,
/// as the provider would send it, which the retry function reads as group mode.
fn check_schedule_body(m: &Module, schedule: &Body) -> Vec<String> {
    let here = "oci_resource_scheduler_schedule.retry";
    let Some(res) = block(schedule, "resources").map(|b| &b.body) else {
        return vec![format!("{here}: no resources block")];
    };
    if attr(res, "id").and_then(|e| resource_ref(e, "oci_functions_function", "id"))
        != Some("retry")
    {
        return vec![format!(
            "{here}: resources.id must be oci_functions_function.retry.id"
        )];
    }
    let Some(param) = block(res, "parameters").map(|b| &b.body) else {
        return vec![format!("{here}: no BODY parameter")];
    };
    if attr(param, "parameter_type").and_then(string_literal) != Some("BODY") {
        return vec![format!("{here}: the parameter must be of type BODY")];
    }
    // value = [jsonencode({ ... })]: exactly one JSON string (the provider's MaxItems = 1).
    let object = match attr(param, "value") {
        Some(Expression::Array(a)) if a.len() == 1 => match a.get(0) {
            Some(Expression::FuncCall(f))
                if f.name.name.as_str() == "jsonencode" && f.args.len() == 1 =>
            {
                f.args.get(0)
            }
            _ => None,
        },
        _ => None,
    };
    let Some(object) = object else {
        return vec![format!(
            "{here}: the BODY value must be [jsonencode({{...}})]"
        )];
    };
    // Evaluate the object with a stream OCID for each.value and the variables' defaults.
    let stream = "ocid1.stream.oc1.test.schedule";
    let mut body = serde_json::Map::new();
    for (key, value) in object_entries(object) {
        let v = match source_text(value).as_str() {
            "each.value" => serde_json::Value::String(stream.into()),
            text => match text.strip_prefix("var.").and_then(|v| m.default(v)) {
                Some(d) => serde_json::from_str(&source_text(d)).unwrap_or(serde_json::Value::Null),
                None => return vec![format!("{here}: BODY.{key} = {text} cannot be evaluated")],
            },
        };
        body.insert(key, v);
    }
    // jsonencode writes keys sorted, as serde_json's map does.
    let bytes = serde_json::to_vec(&serde_json::Value::Object(body)).unwrap();
    let read = retry::request::parse(&bytes).and_then(|r| r.check(|s| s == stream));
    let local_max = RetryScheduleConfig::default().max_messages;
    match read {
        Ok(retry::request::Mode::Group(g)) if g.stream == stream && g.max == local_max && !g.dry_run && g.group.is_none() => Vec::new(),
        Ok(other) => vec![format!(
            "{here}: the retry function reads the BODY {} as {other:?}, not group mode on the stream with max {local_max} (datasync up's default)",
            String::from_utf8_lossy(&bytes)
        )],
        Err(e) => vec![format!(
            "{here}: the retry function refuses the BODY {}: {}",
            String::from_utf8_lossy(&bytes),
            e.0
        )],
    }
}

/// The schedules' policy: their own principal ids only, invoking only (no manage).
fn check_schedule_policy(m: &Module) -> Vec<String> {
    let Some(policy) = m.resource("oci_identity_policy", "retry_schedule") else {
        return vec![
            "no oci_identity_policy.retry_schedule lets the schedules invoke the retry function"
                .into(),
        ];
    };
    if attr(policy, "count").map(source_text).as_deref()
        != Some("var.retry_schedule_enabled ? 1 : 0")
    {
        return vec![
            "oci_identity_policy.retry_schedule must exist exactly when the schedules do".into(),
        ];
    }
    let mut statements = Vec::new();
    if let Some(s) = attr(policy, "statements") {
        collect_strings(s, &mut statements);
    }
    let mut problems = Vec::new();
    if statements.len() != 2 {
        problems.push(format!("oci_identity_policy.retry_schedule: expected the fn-function and fn-invocation statements, found {statements:?}"));
    }
    for s in &statements {
        let ok = (s.contains("to use fn-function ") || s.contains("to use fn-invocation "))
            && s.contains("request.principal.type = 'resourceschedule'")
            && s.contains("request.principal.id = '${s.id}'");
        if !ok {
            problems.push(format!("oci_identity_policy.retry_schedule: `{s}` is not `use fn-function|fn-invocation` limited to the schedule's own principal id"));
        }
    }
    problems
}

// ------------------------------------------------------------------------------------------------
// Issue 25.8: narrower IAM
// ------------------------------------------------------------------------------------------------

/// The functions read only secrets of the scoped names and populate manages none; connectors only create objects; only
/// this gateway invokes the functions.
pub fn check_narrow_iam(m: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    let statements = m.statements();
    // The prefix in the policy is the prefix populate gives every secret name.
    let prefix = m.local("secret_name_prefix").and_then(string_literal);
    let scoped = datasync_core::message::scoped_secret_name("some-caller", "name");
    match prefix {
        Some(p) if scoped.starts_with(p) && p.len() >= 3 => {}
        _ => problems.push(format!(
            "local.secret_name_prefix ({prefix:?}) is not the prefix of populate's secret names (e.g. {scoped})"
        )),
    }
    if m.local("secret_name_condition").map(source_text).as_deref()
        != Some("\"target.secret.name = /${local.secret_name_prefix}*/\"")
    {
        problems
            .push("local.secret_name_condition must be target.secret.name = /<prefix>*/".into());
    }
    for s in &statements {
        let on_secrets = s.contains("secret-family") || s.contains("secret-bundles");
        let function = s.contains("dynamic-group ${local.dg_");
        if function && on_secrets && !s.contains("${local.secret_name_condition}") {
            problems.push(format!(
                "`{s}`: a function's access to secrets is not limited to the scoped names"
            ));
        }
        if s.contains("${local.dg_populate}") && s.contains("manage secret") {
            problems.push(format!(
                "`{s}`: populate seals tokens with the key; it manages no secret"
            ));
        }
        // Connector Hub statements carry its principal through local.sch_principal.
        let connector = s.contains("${local.sch_principal}");
        if connector && (s.contains("manage objects") || s.contains("object-family")) {
            problems.push(format!("`{s}`: connectors get object permissions, not `manage objects` (which includes delete)"));
        }
        if connector && s.contains("OBJECT_") {
            let perms = s.split(['{', '}']).nth(1).unwrap_or_default();
            let mut got: Vec<&str> = perms.split(',').map(str::trim).collect();
            got.sort_unstable();
            if got != ["OBJECT_CREATE", "OBJECT_INSPECT"] {
                problems.push(format!(
                    "`{s}`: the archive connectors may create and list objects only"
                ));
            }
        }
        if s.contains("'ApiGateway'")
            && !s.contains("request.principal.id = '${oci_apigateway_gateway.main.id}'")
        {
            problems.push(format!(
                "`{s}`: not limited to this gateway (request.principal.id)"
            ));
        }
    }
    if !statements
        .iter()
        .any(|s| s.contains("${local.sch_principal}") && s.contains("OBJECT_CREATE"))
    {
        problems.push("no statement lets the archive connectors write to the bucket".into());
    }
    if !statements.iter().any(|s| s.contains("'ApiGateway'")) {
        problems.push("no statement lets the API gateway invoke the functions".into());
    }
    problems
}

// ------------------------------------------------------------------------------------------------
// Issue 25.9: connector read positions
// ------------------------------------------------------------------------------------------------

/// Every connector but the data connector starts at LATEST; the data connector (TRIM_HORIZON)
/// is protected from being destroyed.
pub fn check_connector_positions(m: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, body) in m.resources("oci_sch_service_connector") {
        let source = block(body, "source").map(|b| &b.body);
        let cursor = source
            .and_then(|s| block(s, "cursor"))
            .and_then(|c| attr(&c.body, "kind"))
            .and_then(string_literal);
        let from_data = source
            .and_then(|s| attr(s, "stream_id"))
            .and_then(|e| resource_ref(e, "oci_streaming_stream", "id"))
            == config_stream(m, datasync_core::function_config::DATA_STREAM);
        let protected = block(body, "lifecycle")
            .and_then(|l| attr(&l.body, "prevent_destroy"))
            .map(source_text)
            .as_deref()
            == Some("true");
        if from_data {
            if !protected {
                problems.push(format!("oci_sch_service_connector.{name} reads the data stream from TRIM_HORIZON: it needs lifecycle {{ prevent_destroy = true }}"));
            }
        } else if cursor != Some("LATEST") {
            problems.push(format!("oci_sch_service_connector.{name} starts at {cursor:?}: a replacement would archive or alert the stream's whole retention again; use LATEST"));
        }
    }
    problems
}

// ------------------------------------------------------------------------------------------------
// Issue 25.6: token validation, JWKS or discovery
// ------------------------------------------------------------------------------------------------

/// The gateway validates tokens with REMOTE_JWKS by default or REMOTE_DISCOVERY when chosen,
/// each with what it needs, and may read the introspection client's secret only in that mode.
pub fn check_token_validation(m: &Module) -> Vec<String> {
    let here = "oci_apigateway_deployment.main";
    let policy = m
        .resource("oci_apigateway_deployment", "main")
        .and_then(|d| block(d, "specification"))
        .and_then(|s| block(&s.body, "request_policies"))
        .and_then(|r| block(&r.body, "authentication"))
        .and_then(|a| block(&a.body, "validation_policy"))
        .map(|v| &v.body);
    let Some(policy) = policy else {
        return vec![format!("{here}: no authentication.validation_policy")];
    };
    let mut problems = Vec::new();
    let text = |name: &str| attr(policy, name).map(source_text).unwrap_or_default();
    if text("type") != "var.jwt_validation_type" {
        problems.push(format!(
            "{here}: validation_policy.type is `{}`, not var.jwt_validation_type",
            text("type")
        ));
    }
    if m.default("jwt_validation_type").and_then(string_literal) != Some("REMOTE_JWKS") {
        problems.push("variable jwt_validation_type must default to REMOTE_JWKS".into());
    }
    if text("uri") != "local.jwt_discovery ? null : var.jwt_jwks_uri" {
        problems.push(format!(
            "{here}: the JWKS uri must be set exactly in REMOTE_JWKS mode, not `{}`",
            text("uri")
        ));
    }
    let dynamic = |name: &str| {
        policy
            .blocks()
            .find(|b| b.ident.as_str() == "dynamic" && label(b, 0) == Some(name))
            .map(|b| &b.body)
    };
    for (name, kind) in [
        ("source_uri_details", "DISCOVERY_URI"),
        ("client_details", "CUSTOM"),
    ] {
        let Some(d) = dynamic(name) else {
            problems.push(format!(
                "{here}: no dynamic \"{name}\" for REMOTE_DISCOVERY"
            ));
            continue;
        };
        let for_each = attr(d, "for_each").map(source_text).unwrap_or_default();
        let content_type = block(d, "content")
            .and_then(|c| attr(&c.body, "type"))
            .and_then(string_literal);
        if !for_each.starts_with("local.jwt_discovery ?") || content_type != Some(kind) {
            problems.push(format!(
                "{here}: {name} must be present (type {kind}) exactly in REMOTE_DISCOVERY mode"
            ));
        }
    }
    if m.local("jwt_discovery").map(source_text).as_deref()
        != Some("var.jwt_validation_type == \"REMOTE_DISCOVERY\"")
    {
        problems.push(
            "local.jwt_discovery must be var.jwt_validation_type == \"REMOTE_DISCOVERY\"".into(),
        );
    }
    let reads: Vec<String> = m
        .statements()
        .into_iter()
        .filter(|s| s.contains("'ApiGateway'") && s.contains("secret-bundles"))
        .collect();
    if reads.len() != 1
        || !reads[0].contains("target.secret.id = '${var.jwt_introspection_client_secret_ocid}'")
    {
        problems.push(format!(
            "the gateway must read only the introspection client's secret: {reads:?}"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn terraform() -> Module {
        let files =
            crate::terraform_support::module_sources(&crate::terraform_support::terraform_dir());
        Module::parse(&files).unwrap()
    }

    /// terraform/ with `from` replaced by `to` in the file that holds it.
    pub(super) fn edited(from: &str, to: &str) -> Module {
        let mut files =
            crate::terraform_support::module_sources(&crate::terraform_support::terraform_dir());
        let f = files
            .iter_mut()
            .find(|(_, s)| s.contains(from))
            .unwrap_or_else(|| panic!("no file holds {from:?}"));
        f.1 = f.1.replacen(from, to, 1);
        Module::parse(&files).unwrap()
    }

    pub(super) fn assert_clean(problems: Vec<String>) {
        assert!(
            problems.is_empty(),
            "terraform/:\n  - {}",
            problems.join("\n  - ")
        );
    }

    pub(super) fn assert_names(problems: Vec<String>, what: &str) {
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "no problem names {what:?}: {problems:#?}"
        );
    }

    #[test]
    fn terraform_schedules_retry_as_datasync_up_does_with_least_privilege() {
        assert_clean(check_retry_schedule(&terraform()));
    }

    #[test]
    fn a_schedule_body_the_retry_function_refuses_is_named() {
        let m = edited(
            "max = var.retry_schedule_max_messages",
            "maximum = var.retry_schedule_max_messages",
        );
        assert_names(check_retry_schedule(&m), "refuses the BODY");
        let m = edited("stream = each.value,", "streamOCIDToRetry = each.value,");
        assert_names(check_retry_schedule(&m), "BODY");
        let m = edited("default     = 500\n", "default     = 50\n");
        assert_names(check_retry_schedule(&m), "max 500");
    }

    #[test]
    fn a_missing_or_extra_scheduled_stream_and_a_broad_policy_are_named() {
        let m = edited(
            "    default             = oci_streaming_stream.default_errors.id\n  }",
            "  }",
        );
        assert_names(check_retry_schedule(&m), "scheduled_retry_streams names");
        let m = edited(
            "internal-server     = oci_streaming_stream.internal_server_errors.id",
            "internal-server     = oci_streaming_stream.unrecoverable_errors.id",
        );
        assert_names(
            check_retry_schedule(&m),
            "scheduled_retry_streams[internal-server]",
        );
        let m = edited(
            "request.principal.id = '${s.id}'}\",\n      \"Allow",
            "request.principal.compartment.id = 'x'}\",\n      \"Allow",
        );
        assert_names(
            check_retry_schedule(&m),
            "limited to the schedule's own principal id",
        );
        let m = edited(
            "default     = true\n}\n\nvariable \"retry_schedule_cron\"",
            "default     = false\n}\n\nvariable \"retry_schedule_cron\"",
        );
        assert_names(check_retry_schedule(&m), "default to true");
    }

    #[test]
    fn terraform_grants_only_what_each_principal_uses() {
        assert_clean(check_narrow_iam(&terraform()));
    }

    #[test]
    fn broad_statements_are_named() {
        let m = edited(
            "where all {${local.vault_condition}, ${local.secret_name_condition}}",
            "where ${local.vault_condition}",
        );
        assert_names(check_narrow_iam(&m), "not limited to the scoped names");
        let m = edited(
            "secret_name_prefix    = \"ds-\"",
            "secret_name_prefix    = \"dx-\"",
        );
        assert_names(
            check_narrow_iam(&m),
            "not the prefix of populate's secret names",
        );
        let m = edited("{OBJECT_CREATE, OBJECT_INSPECT}", "manage objects");
        assert_names(check_narrow_iam(&m), "manage objects");
        let m = edited(
            "{OBJECT_CREATE, OBJECT_INSPECT}",
            "{OBJECT_CREATE, OBJECT_DELETE}",
        );
        assert_names(check_narrow_iam(&m), "create and list objects only");
        let m = edited(
            "request.principal.id = '${oci_apigateway_gateway.main.id}'",
            "request.resource.compartment.id = '${local.compartment_id}'",
        );
        assert_names(check_narrow_iam(&m), "not limited to this gateway");
    }

    #[test]
    fn terraform_offers_jwks_and_discovery_token_validation() {
        assert_clean(check_token_validation(&terraform()));
    }

    #[test]
    fn a_fixed_validation_type_or_an_unconditional_discovery_block_is_named() {
        let m = edited(
            "type                        = var.jwt_validation_type",
            "type                        = \"REMOTE_JWKS\"",
        );
        assert_names(check_token_validation(&m), "not var.jwt_validation_type");
        let m = edited(
            "for_each = local.jwt_discovery ? [var.jwt_discovery_uri] : []",
            "for_each = [var.jwt_discovery_uri]",
        );
        assert_names(
            check_token_validation(&m),
            "source_uri_details must be present",
        );
        let m = edited(
            "target.secret.id = '${var.jwt_introspection_client_secret_ocid}'",
            "target.vault.id = '${oci_kms_vault.main.id}'",
        );
        assert_names(
            check_token_validation(&m),
            "only the introspection client's secret",
        );
    }

    #[test]
    fn terraform_connectors_never_replay_a_retention() {
        assert_clean(check_connector_positions(&terraform()));
    }

    #[test]
    fn a_trim_horizon_archive_and_an_unprotected_data_connector_are_named() {
        let m = edited("kind = \"LATEST\"", "kind = \"TRIM_HORIZON\"");
        assert_names(check_connector_positions(&m), "use LATEST");
        let m = edited("prevent_destroy = true", "prevent_destroy = false");
        assert_names(check_connector_positions(&m), "prevent_destroy = true");
    }
}

//! Issue 21: the routes object (`terraform/routes.tf`). The functions read one object, named in
//! their configuration as `bucket/object`; the three functions may read (and head) that object
//! and nothing else of its bucket; the bucket and object are named as `datasync up` names its
//! own, so the same routes reach the same code path locally and on OCI.

use datasync_local::stack::{routes_bucket, ROUTES_OBJECT};

use super::{attr, collect_strings, object_entries, source_text, string_literal, Module};

/// The application's `routes_object`, the object resource, the bucket's name and the one grant.
pub fn check_routes_grant(m: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = m.resource("oci_objectstorage_object", "routes") else {
        return vec!["no oci_objectstorage_object.routes holds the routes".into()];
    };
    let Some(bucket) = m.resource("oci_objectstorage_bucket", "routes") else {
        return vec!["no oci_objectstorage_bucket.routes holds the routes object".into()];
    };
    let text = |body, name| attr(body, name).map(source_text).unwrap_or_default();
    if text(object, "bucket") != "oci_objectstorage_bucket.routes.name" {
        problems.push("oci_objectstorage_object.routes is not in the routes bucket".into());
    }
    if text(object, "object") != "local.routes_object_name"
        || m.local("routes_object_name").and_then(string_literal) != Some(ROUTES_OBJECT)
    {
        problems.push(format!(
            "oci_objectstorage_object.routes must be named local.routes_object_name = \"{ROUTES_OBJECT}\", as datasync up names it"
        ));
    }
    let local_name = routes_bucket("PREFIX").replace("PREFIX", "${var.name_prefix}");
    if text(bucket, "name") != format!("\"{local_name}\"") {
        problems.push(format!(
            "oci_objectstorage_bucket.routes must be named \"{local_name}\", as datasync up names it"
        ));
    }
    if text(bucket, "access_type") != "\"NoPublicAccess\"" {
        problems.push("oci_objectstorage_bucket.routes must be private".into());
    }
    let configured = m
        .resources("oci_functions_application")
        .into_iter()
        .next()
        .and_then(|(_, app)| attr(app, "config"))
        .map(object_entries)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == datasync_core::function_config::ROUTES_OBJECT)
        .map(|(_, v)| source_text(v));
    let wanted =
        "\"${oci_objectstorage_bucket.routes.name}/${oci_objectstorage_object.routes.object}\"";
    if configured.as_deref() != Some(wanted) {
        problems.push(format!(
            "the application's routes_object is {configured:?}, not {wanted}"
        ));
    }
    problems.extend(check_routes_policy(m));
    problems.extend(check_route_secrets(m));
    problems
}

/// process and retry read the secrets the routes name, in this vault, only when a route names
/// one; populate never.
fn check_route_secrets(m: &Module) -> Vec<String> {
    let Some(policy) = m.resource("oci_identity_policy", "route_secrets") else {
        return vec![
            "no oci_identity_policy.route_secrets lets delivery read the routes' secrets".into(),
        ];
    };
    let mut problems = Vec::new();
    if attr(policy, "count").map(source_text).as_deref()
        != Some("length(local.route_secret_names) > 0 ? 1 : 0")
    {
        problems.push(
            "oci_identity_policy.route_secrets must exist only when a route names a secret".into(),
        );
    }
    let text = attr(policy, "statements")
        .map(source_text)
        .unwrap_or_default();
    let wanted = "for dg in [local.dg_process, local.dg_retry] :";
    let grant = "to read secret-bundles ${local.in_vault} where all {${local.vault_condition}, any {${local.route_secret_condition}}}";
    if !text.contains(wanted) || !text.contains(grant) {
        problems.push(format!(
            "oci_identity_policy.route_secrets must let process and retry only `{grant}`, not {text}"
        ));
    }
    if m.local("route_secret_condition")
        .map(source_text)
        .as_deref()
        != Some(
            "join(\", \", [for n in local.route_secret_names : \"target.secret.name = '${n}'\"])",
        )
    {
        problems.push("local.route_secret_condition must name each route secret exactly".into());
    }
    problems
}

/// Exactly one statement per function, OBJECT_INSPECT and OBJECT_READ on the one object; no
/// other statement names the routes bucket.
fn check_routes_policy(m: &Module) -> Vec<String> {
    let Some(policy) = m.resource("oci_identity_policy", "routes") else {
        return vec!["no oci_identity_policy.routes lets the functions read the routes".into()];
    };
    let mut statements = Vec::new();
    if let Some(s) = attr(policy, "statements") {
        collect_strings(s, &mut statements);
    }
    let mut problems = Vec::new();
    let groups = attr(policy, "statements")
        .map(source_text)
        .unwrap_or_default();
    if !groups.contains("for dg in [local.dg_populate, local.dg_process, local.dg_retry]") {
        problems.push(
            "oci_identity_policy.routes must grant each function's dynamic group, no other".into(),
        );
    }
    let condition = "where all {target.bucket.name = '${oci_objectstorage_bucket.routes.name}', target.object.name = '${local.routes_object_name}'}";
    for s in &statements {
        // The permissions between `to {` and the next `}`.
        let perms = s
            .strip_prefix("\"Allow dynamic-group ${dg} to {")
            .and_then(|rest| rest.split_once('}'))
            .map_or("", |(perms, _)| perms);
        let mut got: Vec<&str> = perms.split(',').map(str::trim).collect();
        got.sort_unstable();
        if got != ["OBJECT_INSPECT", "OBJECT_READ"] {
            problems.push(format!(
                "`{s}`: the functions may only head and read the routes object"
            ));
        }
        if !s.ends_with(&format!("{condition}\"")) {
            problems.push(format!(
                "`{s}`: not limited to the routes bucket and object ({condition})"
            ));
        }
    }
    if statements.is_empty() {
        problems.push("oci_identity_policy.routes has no statement".into());
    }
    let elsewhere = m
        .statements()
        .into_iter()
        .filter(|s| s.contains("oci_objectstorage_bucket.routes") && !statements.contains(s))
        .collect::<Vec<_>>();
    if !elsewhere.is_empty() {
        problems.push(format!(
            "other statements grant on the routes bucket: {elsewhere:?}"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// terraform/ with `from` replaced by `to` in the file that holds it.
    fn edited(from: &str, to: &str) -> Module {
        let mut files =
            crate::terraform_support::module_sources(&crate::terraform_support::terraform_dir());
        let f = files
            .iter_mut()
            .find(|(_, s)| s.contains(from))
            .unwrap_or_else(|| panic!("no file holds {from:?}"));
        f.1 = f.1.replacen(from, to, 1);
        Module::parse(&files).unwrap()
    }

    fn names(problems: &[String], what: &str) {
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "no problem names {what:?}: {problems:#?}"
        );
    }

    #[test]
    fn terraform_lets_the_functions_read_the_routes_object_only() {
        let files =
            crate::terraform_support::module_sources(&crate::terraform_support::terraform_dir());
        let problems = check_routes_grant(&Module::parse(&files).unwrap());
        assert!(
            problems.is_empty(),
            "terraform/:\n  - {}",
            problems.join("\n  - ")
        );
    }

    #[test]
    fn a_broader_grant_or_a_misnamed_object_is_named() {
        let m = edited(", target.object.name = '${local.routes_object_name}'}", "}");
        names(
            &check_routes_grant(&m),
            "not limited to the routes bucket and object",
        );
        let m = edited(
            "{OBJECT_INSPECT, OBJECT_READ}",
            "{OBJECT_READ, OBJECT_OVERWRITE}",
        );
        names(&check_routes_grant(&m), "only head and read");
        let m = edited("{OBJECT_INSPECT, OBJECT_READ}", "read objects");
        names(&check_routes_grant(&m), "only head and read");
        let m = edited(
            "routes_object_name = \"routes.json\"",
            "routes_object_name = \"r.json\"",
        );
        names(&check_routes_grant(&m), "as datasync up names it");
        let m = edited(
            "name                  = \"${var.name_prefix}-routes\"",
            "name                  = \"${var.name_prefix}-r\"",
        );
        names(&check_routes_grant(&m), "as datasync up names it");
        let m = edited(
            "routes_object                        = \"${oci_objectstorage_bucket.routes.name}/${oci_objectstorage_object.routes.object}\"",
            "routes_object                        = \"${oci_objectstorage_bucket.routes.name}/other.json\"",
        );
        names(&check_routes_grant(&m), "the application's routes_object");
        let m = edited(
            "for dg in [local.dg_populate, local.dg_process, local.dg_retry]",
            "for dg in [local.dg_populate, local.dg_process, local.dg_retry, \"everyone\"]",
        );
        names(
            &check_routes_grant(&m),
            "each function's dynamic group, no other",
        );
    }
}

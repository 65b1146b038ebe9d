# Routes (docs/routes.md): operator-defined targets that sources name instead of a URL. The route
# set lives as one JSON object in a private bucket of its own; the functions read it at cold start
# and again when its ETag changes (function configuration routes_object = "bucket/object"). The
# three functions may read that one object and nothing else in the bucket; nothing else is granted
# on it. The bucket and object always exist (an empty route set when var.routes is empty), so the
# functions' configuration is the same with and without routes.

variable "routes" {
  description = "The route set as JSON: {\"routes\":[{\"name\",\"target\",\"operation\",\"headers\",\"vault_secret\",\"vault_secret_header\",\"filter\",\"transform\",\"key\",\"path\",\"status_callback\"}, ...]}, the form `datasync routes list --config FILE --json` prints from the [[routes]] tables of a `datasync up` configuration. Empty: no routes."
  type        = string
  default     = ""

  validation {
    condition     = trimspace(var.routes) == "" || can(jsondecode(var.routes).routes)
    error_message = "routes must be empty or JSON with a \"routes\" list; convert the TOML [[routes]] tables with `datasync routes list --config FILE --json`."
  }
}

locals {
  routes_object_name = "routes.json"
  # Decoded and encoded again: the object holds compact JSON whatever spacing the variable has.
  routes_json = trimspace(var.routes) == "" ? jsonencode({ routes = [] }) : jsonencode(jsondecode(var.routes))
}

variable "routes_check_ms" {
  description = "How often the functions check the routes object's ETag, in ms (a conditional GetObject, only when calls come): a changed route is in use within this time."
  type        = number
  default     = 30000

  validation {
    condition     = var.routes_check_ms >= 1000 && var.routes_check_ms <= 3600000
    error_message = "routes_check_ms must be between 1000 and 3600000."
  }
}

resource "oci_objectstorage_bucket" "routes" {
  compartment_id        = local.compartment_id
  namespace             = local.object_storage_namespace
  name                  = "${var.name_prefix}-routes"
  access_type           = "NoPublicAccess"
  storage_tier          = "Standard"
  versioning            = "Disabled"
  object_events_enabled = false
  freeform_tags         = var.freeform_tags
}

resource "oci_objectstorage_object" "routes" {
  bucket       = oci_objectstorage_bucket.routes.name
  namespace    = local.object_storage_namespace
  object       = local.routes_object_name
  content      = local.routes_json
  content_type = "application/json"
}

resource "oci_identity_policy" "routes" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-routes"
  description    = "datasync functions: read the routes object only"
  freeform_tags  = var.freeform_tags

  # OBJECT_INSPECT (HeadObject) and OBJECT_READ (GetObject) on the one object: target.object.name
  # narrows object operations to it, so no listing and no other object of the bucket.
  statements = [
    for dg in [local.dg_populate, local.dg_process, local.dg_retry] :
    "Allow dynamic-group ${dg} to {OBJECT_INSPECT, OBJECT_READ} ${local.in_app} where all {target.bucket.name = '${oci_objectstorage_bucket.routes.name}', target.object.name = '${local.routes_object_name}'}"
  ]
}

# A route's Vault secret (vault_secret) is the operator's, read by process and retry under its own
# name, which the scoped-name grant (/ds-*/, iam.tf) does not cover: they may read exactly the
# secrets the routes name, in this vault, and only when some route names one.
locals {
  route_secret_names = distinct(compact([
    for r in try(jsondecode(var.routes).routes, []) : try(r.vault_secret, "")
  ]))
  route_secret_condition = join(", ", [for n in local.route_secret_names : "target.secret.name = '${n}'"])
}

resource "oci_identity_policy" "route_secrets" {
  count          = length(local.route_secret_names) > 0 ? 1 : 0
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-route-secrets"
  description    = "datasync process and retry: read the Vault secrets the routes name"
  freeform_tags  = var.freeform_tags

  statements = [
    for dg in [local.dg_process, local.dg_retry] :
    "Allow dynamic-group ${dg} to read secret-bundles ${local.in_vault} where all {${local.vault_condition}, any {${local.route_secret_condition}}}"
  ]
}

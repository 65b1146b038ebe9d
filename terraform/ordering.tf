# Per-key order across batches (docs/ordering.md): the parked keys live in one object of a private
# bucket of their own, read once per batch by process and retry and changed with conditional
# writes. The two functions may read, create and overwrite objects in that bucket only (no
# delete, no other bucket); nothing else is granted on it.

variable "parked_keys_max_age_seconds" {
  description = "Seconds a parked key's blocker may stay its blocker before retry drops it as gone (its message past the error streams' retention, or never written after a crash). Keep it at or above the error streams' retention."
  type        = number
  default     = 86400

  validation {
    condition     = var.parked_keys_max_age_seconds >= 1 && var.parked_keys_max_age_seconds <= 604800
    error_message = "parked_keys_max_age_seconds must be between 1 and 604800 (7 days)."
  }
}

resource "oci_objectstorage_bucket" "parked_keys" {
  compartment_id        = local.compartment_id
  namespace             = local.object_storage_namespace
  name                  = "${var.name_prefix}-parked-keys"
  access_type           = "NoPublicAccess"
  storage_tier          = "Standard"
  versioning            = "Disabled"
  object_events_enabled = false
  freeform_tags         = var.freeform_tags
}

resource "oci_identity_policy" "parked_keys" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-parked-keys"
  description    = "datasync process and retry: read and conditionally write the parked keys"
  freeform_tags  = var.freeform_tags

  statements = [
    for dg in [local.dg_process, local.dg_retry] :
    "Allow dynamic-group ${dg} to {OBJECT_INSPECT, OBJECT_READ, OBJECT_CREATE, OBJECT_OVERWRITE} ${local.in_app} where target.bucket.name = '${oci_objectstorage_bucket.parked_keys.name}'"
  ]
}

# The archive bucket: every error stream and the dead-letter stream are copied here by a connector
# (connectors.tf), each under its own prefix. Private, no object events, and a lifecycle rule that
# deletes archives after archive_retention_days.

resource "oci_objectstorage_bucket" "archive" {
  compartment_id        = local.compartment_id
  namespace             = local.object_storage_namespace
  name                  = "${var.name_prefix}-failure-archive"
  access_type           = "NoPublicAccess"
  storage_tier          = "Standard"
  versioning            = "Disabled"
  object_events_enabled = false
  freeform_tags         = var.freeform_tags
}

# Object Storage runs lifecycle rules as its own service principal, which needs a policy
# (oci_identity_policy.object_lifecycle in iam.tf) before the rule can be created.
resource "oci_objectstorage_object_lifecycle_policy" "archive" {
  bucket    = oci_objectstorage_bucket.archive.name
  namespace = local.object_storage_namespace

  rules {
    name        = "delete-archives-after-${var.archive_retention_days}-days"
    action      = "DELETE"
    target      = "objects"
    is_enabled  = true
    time_amount = var.archive_retention_days
    time_unit   = "DAYS"
  }

  depends_on = [oci_identity_policy.object_lifecycle]
}

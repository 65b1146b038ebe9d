# Delivery callbacks (docs/callbacks.md): a sync request may name a statusCallback; process and
# retry POST the message's final outcome to it, signed as Standard Webhooks do with the caller's
# signing secret, read from this vault as ds-callback-<first 16 hex of SHA-256(caller)>
# (datasync_core::callback::callback_secret_name). Both functions already read secret bundles
# named ds-* in this vault (iam.tf); no other permission is needed.
#
# The secrets: give each caller's as callback_signing_secrets (Terraform creates them; the values
# then live in the Terraform state, like any secret_content), or leave the map empty and create
# them with the OCI CLI (docs/callbacks.md shows the command), which keeps them out of the state.
# No random provider is used: the module carries only oracle/oci.
#
# Durable retries: a callback not taken within its invocation is written to the callback stream
# below (callback_stream_ocid); the retry function's schedule (schedule.tf, the same as for the
# error streams) reads it in group mode and sends each callback again when due, waiting three
# times its age between tries (at least callback_retry_backoff_ms, at most 6 h), until a receiver
# takes it or it has had callback_retry_max_tries calls or is callback_retry_max_age_seconds old.
# A record holds the URL, the caller's name, the body and the tries; never the signing secret.
# process may only write to the stream; retry may read it, commit its group position and write.

resource "oci_streaming_stream" "callbacks" {
  name               = "${var.name_prefix}-callbacks"
  stream_pool_id     = oci_streaming_stream_pool.main.id
  partitions         = 1
  retention_in_hours = var.error_stream_retention_hours
  freeform_tags      = var.freeform_tags
}

resource "oci_identity_policy" "callback_stream" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-callback-stream"
  description    = "datasync process and retry: queue delivery callbacks; retry sends them again"
  freeform_tags  = var.freeform_tags

  statements = [
    "Allow dynamic-group ${local.dg_process} to use stream-push ${local.in_app} where target.stream.id = '${oci_streaming_stream.callbacks.id}'",
    "Allow dynamic-group ${local.dg_process} to read streams ${local.in_app} where target.stream.id = '${oci_streaming_stream.callbacks.id}'",
    "Allow dynamic-group ${local.dg_retry} to use stream-pull ${local.in_app} where target.stream.id = '${oci_streaming_stream.callbacks.id}'",
    "Allow dynamic-group ${local.dg_retry} to use stream-push ${local.in_app} where target.stream.id = '${oci_streaming_stream.callbacks.id}'",
    "Allow dynamic-group ${local.dg_retry} to read streams ${local.in_app} where target.stream.id = '${oci_streaming_stream.callbacks.id}'",
  ]
}

variable "callback_retry_max_tries" {
  description = "The most calls one delivery callback gets, the quick tries of its first invocation included; then it is abandoned (a trace line with detail abandoned)."
  type        = number
  default     = 10

  validation {
    condition     = var.callback_retry_max_tries >= 1 && var.callback_retry_max_tries <= 100 && floor(var.callback_retry_max_tries) == var.callback_retry_max_tries
    error_message = "callback_retry_max_tries must be a whole number between 1 and 100."
  }
}

variable "callback_retry_max_age_seconds" {
  description = "Seconds after its first failure a delivery callback is abandoned. Keep it at or below the callback stream's retention (error_stream_retention_hours)."
  type        = number
  default     = 86400

  validation {
    condition     = var.callback_retry_max_age_seconds >= 1 && var.callback_retry_max_age_seconds <= 604800
    error_message = "callback_retry_max_age_seconds must be between 1 and 604800 (7 days)."
  }
}

variable "callback_retry_backoff_ms" {
  description = "The shortest wait before a queued delivery callback is tried again, in ms; each wait is three times the callback's age, from this up to 6 h. The retry schedule's cadence (retry_schedule_cron) rounds it up."
  type        = number
  default     = 60000

  validation {
    condition     = var.callback_retry_backoff_ms >= 10 && var.callback_retry_backoff_ms <= 3600000
    error_message = "callback_retry_backoff_ms must be between 10 and 3600000."
  }
}

variable "callback_timeout_ms" {
  description = "Timeout of one delivery callback call, in ms. Short on purpose: callbacks are sent while the connector waits for the batch's answer; a failed call is tried again (up to 3 tries) within callback_budget_ms."
  type        = number
  default     = 2000

  validation {
    condition     = var.callback_timeout_ms >= 50 && var.callback_timeout_ms <= 30000
    error_message = "callback_timeout_ms must be between 50 and 30000."
  }
}

variable "callback_budget_ms" {
  description = "The most time a batch's delivery callbacks, all together and retries included, add to a process or retry invocation, in ms."
  type        = number
  default     = 3000

  validation {
    condition     = var.callback_budget_ms >= 50 && var.callback_budget_ms <= 60000
    error_message = "callback_budget_ms must be between 50 and 60000."
  }
}

variable "callback_signing_secrets" {
  description = "Delivery callback signing secrets by caller identity (the value of caller_identity_claim in the caller's token): each whsec_ followed by the base64 of 24 to 64 random bytes, e.g. \"whsec_$(openssl rand -base64 32)\". Stored in this vault as ds-callback-<first 16 hex of SHA-256(caller)>. Empty: create them with the OCI CLI instead (docs/callbacks.md)."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    condition     = alltrue([for caller, secret in var.callback_signing_secrets : can(regex("^whsec_[A-Za-z0-9+/]{32,88}={0,2}$", secret))])
    error_message = "Each callback_signing_secrets value must be whsec_ followed by the base64 of 24 to 64 bytes."
  }
}

resource "oci_vault_secret" "callback" {
  # The callers (map keys) are not secret; the values are.
  for_each = nonsensitive(toset(keys(var.callback_signing_secrets)))

  compartment_id = local.vault_compartment_id
  vault_id       = oci_kms_vault.main.id
  key_id         = oci_kms_key.secrets.id
  secret_name    = "ds-callback-${substr(sha256(each.key), 0, 16)}"
  description    = "datasync delivery callback signing secret of one caller"
  freeform_tags  = var.freeform_tags

  secret_content {
    content_type = "BASE64"
    content      = base64encode(var.callback_signing_secrets[each.key])
  }
}

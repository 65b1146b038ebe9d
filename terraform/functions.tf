# Functions: the registry repositories, the application in the private subnet with the complete
# configuration map, and the three functions pinned by image digest.
#
# The application `config` below holds exactly the keys the functions export
# (datasync_core::function_config::KEYS, crates/core/src/function_config.rs): no more, no less.
# tests/terraform_config.rs fails the build when the two drift apart. On OCI the map reaches each
# function as environment variables; the whole map must stay under 4 KB.

resource "oci_artifacts_container_repository" "functions" {
  for_each = var.create_container_repositories ? toset(local.function_names) : toset([])

  compartment_id = local.registry_compartment_id
  display_name   = "${var.name_prefix}/${each.key}"
  is_public      = false
  is_immutable   = var.immutable_image_tags
  freeform_tags  = var.freeform_tags
}

resource "oci_functions_application" "main" {
  compartment_id             = local.compartment_id
  display_name               = "${var.name_prefix}-app"
  subnet_ids                 = [oci_core_subnet.functions.id]
  network_security_group_ids = [oci_core_network_security_group.functions.id]
  shape                      = var.function_shape
  freeform_tags              = var.freeform_tags

  # The Functions service attaches the application to the subnet with its own policy.
  depends_on = [oci_identity_policy.faas_service]

  config = {
    data_stream_ocid                     = oci_streaming_stream.data.id
    vault_ocid                           = oci_kms_vault.main.id
    vault_compartment_ocid               = local.vault_compartment_id
    vault_key_ocid                       = oci_kms_key.secrets.id
    vault_crypto_endpoint                = oci_kms_vault.main.crypto_endpoint
    serviceUnavailable_error_stream_ocid = oci_streaming_stream.service_unavailable_errors.id
    internalserver_error_stream_ocid     = oci_streaming_stream.internal_server_errors.id
    unrecoverable_error_stream_ocid      = oci_streaming_stream.unrecoverable_errors.id
    default_error_stream_ocid            = oci_streaming_stream.default_errors.id
    dead_letter_stream_ocid              = oci_streaming_stream.dead_letter.id
    notification_topic_ocid              = oci_ons_notification_topic.alerts.id
    notification_topic_endpoint          = oci_ons_notification_topic.alerts.api_endpoint
    notify_dead_letter_payloads          = tostring(var.notify_dead_letter_payloads)
    notification_rate_per_minute         = tostring(var.notification_rate_per_minute)
    target_allow_list                    = var.target_allow_list
    allow_http_targets                   = tostring(var.allow_http_targets)
    allow_private_targets                = tostring(var.allow_private_targets)
    classification_overrides             = var.classification_overrides
    max_attempts                         = tostring(var.max_attempts)
    max_message_age_seconds              = tostring(var.max_message_age_seconds)
    target_connect_timeout_ms            = tostring(var.target_connect_timeout_ms)
    target_timeout_ms                    = tostring(var.target_timeout_ms)
    max_concurrency                      = tostring(var.max_concurrency)
    per_host_concurrency                 = tostring(var.per_host_concurrency)
    retry_consumer_group                 = var.retry_consumer_group
    parked_keys_bucket                   = oci_objectstorage_bucket.parked_keys.name
    parked_keys_namespace                = local.object_storage_namespace
    parked_keys_max_age_seconds          = tostring(var.parked_keys_max_age_seconds)
    routes_object                        = "${oci_objectstorage_bucket.routes.name}/${oci_objectstorage_object.routes.object}"
    routes_check_ms                      = tostring(var.routes_check_ms)
    breaker_consecutive_failures         = tostring(var.breaker_consecutive_failures)
    breaker_failure_percent              = tostring(var.breaker_failure_percent)
    breaker_min_calls                    = tostring(var.breaker_min_calls)
    breaker_cool_down_ms                 = tostring(var.breaker_cool_down_ms)
    breaker_probes                       = tostring(var.breaker_probes)
    host_time_share_ms                   = tostring(var.host_time_share_ms)
    retry_budget_percent                 = tostring(var.retry_budget_percent)
    retry_budget_window_seconds          = tostring(var.retry_budget_window_seconds)
    metrics_compartment_ocid             = local.compartment_id
    metrics_namespace                    = var.metrics_namespace
    metrics_endpoint                     = var.metrics_endpoint
    metrics_post_timeout_ms              = tostring(var.metrics_post_timeout_ms)
    metrics_post_interval_ms             = var.metrics_post_interval_ms == null ? "" : tostring(var.metrics_post_interval_ms)
    callback_timeout_ms                  = tostring(var.callback_timeout_ms)
    callback_budget_ms                   = tostring(var.callback_budget_ms)
    callback_stream_ocid                 = oci_streaming_stream.callbacks.id
    callback_retry_max_tries             = tostring(var.callback_retry_max_tries)
    callback_retry_max_age_seconds       = tostring(var.callback_retry_max_age_seconds)
    callback_retry_backoff_ms            = tostring(var.callback_retry_backoff_ms)
  }

  lifecycle {
    precondition {
      condition     = var.max_message_age_seconds < 3600 * min(var.data_stream_retention_hours, var.error_stream_retention_hours)
      error_message = "max_message_age_seconds must stay below the streams' retention (data_stream_retention_hours and error_stream_retention_hours), or messages age out before they become permanent."
    }

    precondition {
      condition     = var.target_timeout_ms < 1000 * min(var.function_timeout_seconds.process, var.function_timeout_seconds.retry)
      error_message = "target_timeout_ms must be shorter than the process and retry function timeouts."
    }

    precondition {
      condition     = length(var.target_allow_list) + length(var.classification_overrides) <= 1370
      error_message = "target_allow_list and classification_overrides together must stay under 1370 characters: the whole configuration map (50 keys with thirteen OCIDs, three endpoints and the routes object's name take about 2.7 KB) is limited to 4 KB."
    }

    precondition {
      condition     = var.target_connect_timeout_ms <= var.target_timeout_ms
      error_message = "target_connect_timeout_ms must not exceed target_timeout_ms."
    }
  }
}

# POST /stream/sync
resource "oci_functions_function" "populate" {
  application_id     = oci_functions_application.main.id
  display_name       = "populate"
  image              = var.populate_image
  image_digest       = var.populate_image_digest
  memory_in_mbs      = tostring(var.function_memory_mb.populate)
  timeout_in_seconds = var.function_timeout_seconds.populate
  freeform_tags      = var.freeform_tags

  depends_on = [oci_artifacts_container_repository.functions]
}

# Connector batches from the data stream
resource "oci_functions_function" "process" {
  application_id     = oci_functions_application.main.id
  display_name       = "process"
  image              = var.process_image
  image_digest       = var.process_image_digest
  memory_in_mbs      = tostring(var.function_memory_mb.process)
  timeout_in_seconds = var.function_timeout_seconds.process
  freeform_tags      = var.freeform_tags

  depends_on = [oci_artifacts_container_repository.functions]
}

# POST /stream/retry
resource "oci_functions_function" "retry" {
  application_id     = oci_functions_application.main.id
  display_name       = "retry"
  image              = var.retry_image
  image_digest       = var.retry_image_digest
  memory_in_mbs      = tostring(var.function_memory_mb.retry)
  timeout_in_seconds = var.function_timeout_seconds.retry
  freeform_tags      = var.freeform_tags

  depends_on = [oci_artifacts_container_repository.functions]
}

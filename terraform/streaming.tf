# Streaming: one pool; the data stream populate writes to; one error stream per failure class the
# functions route to (the keys of crates/core/src/function_config.rs); the dead-letter stream.
# Partitions and retention are fixed at creation: changing them replaces the stream (and loses its
# messages), so plan such a change with care.

resource "oci_streaming_stream_pool" "main" {
  compartment_id = local.compartment_id
  name           = "${var.name_prefix}-pool"
  freeform_tags  = var.freeform_tags
}

# populate -> data stream -> (connector) -> process
resource "oci_streaming_stream" "data" {
  name               = "${var.name_prefix}-data"
  stream_pool_id     = oci_streaming_stream_pool.main.id
  partitions         = var.data_stream_partitions
  retention_in_hours = var.data_stream_retention_hours
  freeform_tags      = var.freeform_tags
}

# serviceUnavailable_error_stream_ocid: 503, 429, 408, 425, connect errors, timeouts
resource "oci_streaming_stream" "service_unavailable_errors" {
  name               = "${var.name_prefix}-errors-service-unavailable"
  stream_pool_id     = oci_streaming_stream_pool.main.id
  partitions         = var.error_stream_partitions
  retention_in_hours = var.error_stream_retention_hours
  freeform_tags      = var.freeform_tags
}

# internalserver_error_stream_ocid: 500, 502, 504
resource "oci_streaming_stream" "internal_server_errors" {
  name               = "${var.name_prefix}-errors-internal-server"
  stream_pool_id     = oci_streaming_stream_pool.main.id
  partitions         = var.error_stream_partitions
  retention_in_hours = var.error_stream_retention_hours
  freeform_tags      = var.freeform_tags
}

# unrecoverable_error_stream_ocid: failures no retry can fix
resource "oci_streaming_stream" "unrecoverable_errors" {
  name               = "${var.name_prefix}-errors-unrecoverable"
  stream_pool_id     = oci_streaming_stream_pool.main.id
  partitions         = var.error_stream_partitions
  retention_in_hours = var.error_stream_retention_hours
  freeform_tags      = var.freeform_tags
}

# default_error_stream_ocid: retryable failures of any other class
resource "oci_streaming_stream" "default_errors" {
  name               = "${var.name_prefix}-errors-default"
  stream_pool_id     = oci_streaming_stream_pool.main.id
  partitions         = var.error_stream_partitions
  retention_in_hours = var.error_stream_retention_hours
  freeform_tags      = var.freeform_tags
}

# dead_letter_stream_ocid: permanent failures and exhausted attempts
resource "oci_streaming_stream" "dead_letter" {
  name               = "${var.name_prefix}-dead-letter"
  stream_pool_id     = oci_streaming_stream_pool.main.id
  partitions         = var.error_stream_partitions
  retention_in_hours = var.error_stream_retention_hours
  freeform_tags      = var.freeform_tags
}

locals {
  # Every stream a function can route a failed message to, by a short name used for connector
  # names, archive prefixes and policy conditions.
  failure_streams = {
    service-unavailable = oci_streaming_stream.service_unavailable_errors
    internal-server     = oci_streaming_stream.internal_server_errors
    unrecoverable       = oci_streaming_stream.unrecoverable_errors
    default             = oci_streaming_stream.default_errors
    dead-letter         = oci_streaming_stream.dead_letter
  }

  # "target.stream.id = '...'" for each failure stream, for IAM conditions.
  failure_stream_conditions = join(", ", [for s in values(local.failure_streams) : "target.stream.id = '${s.id}'"])
}

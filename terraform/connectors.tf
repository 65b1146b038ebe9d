# Connector Hub:
#   data stream        -> process function      (batches; TRIM_HORIZON, so nothing published
#                                                 before the connector exists is skipped;
#                                                 prevent_destroy, so it is never replaced)
#   dead-letter stream -> Notifications topic    (optional, notify_dead_letter_messages, default
#                                                 off: it sends raw messages, payloads and header
#                                                 values included, past the topic's rate and size;
#                                                 process/retry publish summaries instead)
#   each error stream and the dead-letter stream -> Object Storage, under its own prefix
# The archive and alert connectors start at LATEST: one that is replaced (a changed prefix, a
# moved bucket) does not archive or alert the streams' whole retention a second time.
# Each connector waits for its policy (iam.tf), so its first run already has the access it needs.

resource "oci_sch_service_connector" "data_to_process" {
  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-data-to-process"
  description    = "Delivers data stream batches to the process function"
  state          = "ACTIVE"
  freeform_tags  = var.freeform_tags

  source {
    kind      = "streaming"
    stream_id = oci_streaming_stream.data.id

    cursor {
      kind = "TRIM_HORIZON"
    }
  }

  target {
    kind              = "functions"
    function_id       = oci_functions_function.process.id
    batch_size_in_kbs = var.connector_batch_size_kbs
    batch_time_in_sec = var.connector_batch_time_seconds
  }

  depends_on = [oci_identity_policy.connectors]

  # A replacement would start again at TRIM_HORIZON and deliver the whole retention (up to seven
  # days) to the targets a second time. To remove it on purpose (terraform destroy, or a change
  # that forces a new connector), set this to false first: terraform/README.md, "Connector read
  # positions".
  lifecycle {
    prevent_destroy = true
  }
}

resource "oci_sch_service_connector" "dead_letter_to_notifications" {
  count = var.notify_dead_letter_messages ? 1 : 0

  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-dead-letter-to-notifications"
  description    = "Sends each dead-letter message, raw, to the alerts topic (off by default)"
  state          = "ACTIVE"
  freeform_tags  = var.freeform_tags

  source {
    kind      = "streaming"
    stream_id = oci_streaming_stream.dead_letter.id

    cursor {
      kind = "LATEST"
    }
  }

  target {
    kind                       = "notifications"
    topic_id                   = oci_ons_notification_topic.alerts.id
    enable_formatted_messaging = true
  }

  depends_on = [oci_identity_policy.connectors]
}

# One archive connector per failure stream. Written out one by one (not for_each) so that each
# stream's archive is plain to read and to check (tests/terraform_config.rs).

resource "oci_sch_service_connector" "archive_service_unavailable_errors" {
  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-archive-service-unavailable"
  description    = "Archives the service-unavailable error stream to Object Storage"
  state          = "ACTIVE"
  freeform_tags  = var.freeform_tags

  source {
    kind      = "streaming"
    stream_id = oci_streaming_stream.service_unavailable_errors.id

    cursor {
      kind = "LATEST"
    }
  }

  target {
    kind                       = "objectStorage"
    bucket                     = oci_objectstorage_bucket.archive.name
    namespace                  = local.object_storage_namespace
    object_name_prefix         = "errors/service-unavailable"
    batch_rollover_size_in_mbs = var.archive_rollover_size_mbs
    batch_rollover_time_in_ms  = var.archive_rollover_time_ms
  }

  depends_on = [oci_identity_policy.connectors]
}

resource "oci_sch_service_connector" "archive_internal_server_errors" {
  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-archive-internal-server"
  description    = "Archives the internal-server error stream to Object Storage"
  state          = "ACTIVE"
  freeform_tags  = var.freeform_tags

  source {
    kind      = "streaming"
    stream_id = oci_streaming_stream.internal_server_errors.id

    cursor {
      kind = "LATEST"
    }
  }

  target {
    kind                       = "objectStorage"
    bucket                     = oci_objectstorage_bucket.archive.name
    namespace                  = local.object_storage_namespace
    object_name_prefix         = "errors/internal-server"
    batch_rollover_size_in_mbs = var.archive_rollover_size_mbs
    batch_rollover_time_in_ms  = var.archive_rollover_time_ms
  }

  depends_on = [oci_identity_policy.connectors]
}

resource "oci_sch_service_connector" "archive_unrecoverable_errors" {
  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-archive-unrecoverable"
  description    = "Archives the unrecoverable error stream to Object Storage"
  state          = "ACTIVE"
  freeform_tags  = var.freeform_tags

  source {
    kind      = "streaming"
    stream_id = oci_streaming_stream.unrecoverable_errors.id

    cursor {
      kind = "LATEST"
    }
  }

  target {
    kind                       = "objectStorage"
    bucket                     = oci_objectstorage_bucket.archive.name
    namespace                  = local.object_storage_namespace
    object_name_prefix         = "errors/unrecoverable"
    batch_rollover_size_in_mbs = var.archive_rollover_size_mbs
    batch_rollover_time_in_ms  = var.archive_rollover_time_ms
  }

  depends_on = [oci_identity_policy.connectors]
}

resource "oci_sch_service_connector" "archive_default_errors" {
  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-archive-default"
  description    = "Archives the default error stream to Object Storage"
  state          = "ACTIVE"
  freeform_tags  = var.freeform_tags

  source {
    kind      = "streaming"
    stream_id = oci_streaming_stream.default_errors.id

    cursor {
      kind = "LATEST"
    }
  }

  target {
    kind                       = "objectStorage"
    bucket                     = oci_objectstorage_bucket.archive.name
    namespace                  = local.object_storage_namespace
    object_name_prefix         = "errors/default"
    batch_rollover_size_in_mbs = var.archive_rollover_size_mbs
    batch_rollover_time_in_ms  = var.archive_rollover_time_ms
  }

  depends_on = [oci_identity_policy.connectors]
}

resource "oci_sch_service_connector" "archive_dead_letter" {
  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-archive-dead-letter"
  description    = "Archives the dead-letter stream to Object Storage"
  state          = "ACTIVE"
  freeform_tags  = var.freeform_tags

  source {
    kind      = "streaming"
    stream_id = oci_streaming_stream.dead_letter.id

    cursor {
      kind = "LATEST"
    }
  }

  target {
    kind                       = "objectStorage"
    bucket                     = oci_objectstorage_bucket.archive.name
    namespace                  = local.object_storage_namespace
    object_name_prefix         = "dead-letter"
    batch_rollover_size_in_mbs = var.archive_rollover_size_mbs
    batch_rollover_time_in_ms  = var.archive_rollover_time_ms
  }

  depends_on = [oci_identity_policy.connectors]
}

locals {
  # Every connector, for the run logs (logging.tf).
  connector_ids = merge(
    {
      data-to-process             = oci_sch_service_connector.data_to_process.id
      archive-service-unavailable = oci_sch_service_connector.archive_service_unavailable_errors.id
      archive-internal-server     = oci_sch_service_connector.archive_internal_server_errors.id
      archive-unrecoverable       = oci_sch_service_connector.archive_unrecoverable_errors.id
      archive-default             = oci_sch_service_connector.archive_default_errors.id
      archive-dead-letter         = oci_sch_service_connector.archive_dead_letter.id
    },
    { for c in oci_sch_service_connector.dead_letter_to_notifications : "dead-letter-to-notifications" => c.id },
  )
}

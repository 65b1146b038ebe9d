# Monitoring alarms, sent to the alerts topic:
#   - messages reaching the dead-letter stream (oci_streaming PutMessagesThroughput.Count);
#   - the process function answering with errors (oci_faas FunctionResponseCount,
#     responseType = "Error"): each one makes the connector re-deliver a whole batch, so a steady
#     stream of them means the pipeline is stuck.

resource "oci_monitoring_alarm" "dead_letter_growth" {
  compartment_id        = local.compartment_id
  metric_compartment_id = local.compartment_id
  display_name          = "${var.name_prefix}-dead-letter-growth"
  is_enabled            = true
  namespace             = "oci_streaming"
  query                 = "PutMessagesThroughput.Count[5m]{resourceId = \"${oci_streaming_stream.dead_letter.id}\"}.sum() > ${var.dead_letter_alarm_threshold}"
  severity              = "CRITICAL"
  pending_duration      = "PT1M"
  destinations          = [oci_ons_notification_topic.alerts.id]
  message_format        = "ONS_OPTIMIZED"
  body                  = "Messages reached the datasync dead-letter stream: they failed permanently or ran out of attempts. Inspect the archive bucket (prefix dead-letter/) and replay with POST /stream/retry once the cause is fixed."
  freeform_tags         = var.freeform_tags
}

resource "oci_monitoring_alarm" "process_failures" {
  compartment_id        = local.compartment_id
  metric_compartment_id = local.compartment_id
  display_name          = "${var.name_prefix}-process-failures"
  is_enabled            = true
  namespace             = "oci_faas"
  query                 = "FunctionResponseCount[5m]{resourceId = \"${oci_functions_function.process.id}\", responseType = \"Error\"}.sum() > ${var.process_error_alarm_threshold}"
  severity              = "CRITICAL"
  pending_duration      = "PT5M"
  destinations          = [oci_ons_notification_topic.alerts.id]
  message_format        = "ONS_OPTIMIZED"
  body                  = "The datasync process function is failing batches; the connector re-delivers them until they succeed or age out of the data stream. Check the functions-invoke log and the data-to-process connector log."
  freeform_tags         = var.freeform_tags
}

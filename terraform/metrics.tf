# Custom metrics (docs/metrics.md): the functions post them to OCI Monitoring in the namespace
# var.metrics_namespace (PostMetricData on the telemetry-ingestion endpoint, one call per
# invocation at most), and may do nothing else with metrics. The alarms on them are below.

variable "metrics_namespace" {
  description = "Namespace of the functions' custom metrics (MessagesDelivered, DeliveryLatency, ...): a letter, then letters, digits and _; not oci_ or oracle_."
  type        = string
  default     = "datasync"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_]{0,255}$", var.metrics_namespace)) && !can(regex("^(?i)(oci_|oracle_)", var.metrics_namespace))
    error_message = "metrics_namespace must start with a letter and hold only letters, digits and _, and must not start with oci_ or oracle_."
  }
}

variable "metrics_endpoint" {
  description = "Monitoring's ingestion endpoint the functions post to; empty: the region's https://telemetry-ingestion.<region>.<realm domain>."
  type        = string
  default     = ""

  validation {
    condition     = var.metrics_endpoint == "" || can(regex("^https://", var.metrics_endpoint))
    error_message = "metrics_endpoint must be empty or an https:// URL."
  }
}

variable "metrics_post_timeout_ms" {
  description = "The most one PostMetricData call may add to an invocation; a slower post is dropped and counted (deliveries never wait for it)."
  type        = number
  default     = 1500

  validation {
    condition     = var.metrics_post_timeout_ms >= 50 && var.metrics_post_timeout_ms <= 10000
    error_message = "metrics_post_timeout_ms must be between 50 and 10000."
  }
}

variable "metrics_post_interval_ms" {
  description = "The least time between two PostMetricData calls of one function instance; null: 5000 for process and retry, 30000 for populate (which runs many instances). Keeps the calls far below Monitoring's 50 per second per tenancy."
  type        = number
  default     = null

  validation {
    condition     = var.metrics_post_interval_ms == null || (coalesce(var.metrics_post_interval_ms, 1000) >= 1000 && coalesce(var.metrics_post_interval_ms, 1000) <= 600000)
    error_message = "metrics_post_interval_ms must be null or between 1000 and 600000."
  }
}

# The functions may post metrics in their namespace only: `use metrics` is PostMetricData
# (METRIC_WRITE); reading them back (Console, alarms) is for people and Monitoring itself.
resource "oci_identity_policy" "metrics" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-metrics"
  description    = "datasync functions: post custom metrics in the ${var.metrics_namespace} namespace only"
  freeform_tags  = var.freeform_tags

  statements = [
    "Allow dynamic-group ${local.dg_populate} to use metrics ${local.in_app} where target.metrics.namespace = '${var.metrics_namespace}'",
    "Allow dynamic-group ${local.dg_process} to use metrics ${local.in_app} where target.metrics.namespace = '${var.metrics_namespace}'",
    "Allow dynamic-group ${local.dg_retry} to use metrics ${local.in_app} where target.metrics.namespace = '${var.metrics_namespace}'",
  ]
}

# Alarms on the custom metrics, to the alerts topic; each threshold is a variable. The two
# alarms on OCI's own metrics (dead-letter stream puts, process errors) are in monitoring.tf.

variable "dead_letters_alarm_threshold" {
  description = "Alarm when the functions dead-letter more than this many messages within 5 minutes (MessagesDeadLettered)."
  type        = number
  default     = 0

  validation {
    condition     = var.dead_letters_alarm_threshold >= 0
    error_message = "dead_letters_alarm_threshold must not be negative."
  }
}

variable "delivery_latency_p99_alarm_ms" {
  description = "Alarm when the 99th percentile of DeliveryLatency (from populate's receivedAt to the target's 2xx) of a target host exceeds this many milliseconds over 5 minutes."
  type        = number
  default     = 60000

  validation {
    condition     = var.delivery_latency_p99_alarm_ms > 0
    error_message = "delivery_latency_p99_alarm_ms must be positive."
  }
}

variable "target_failure_ratio_alarm_threshold" {
  description = "Alarm when more than this share (0 to 1) of the calls to one target host fail over 5 minutes (TargetFailureRatio)."
  type        = number
  default     = 0.5

  validation {
    condition     = var.target_failure_ratio_alarm_threshold >= 0 && var.target_failure_ratio_alarm_threshold < 1
    error_message = "target_failure_ratio_alarm_threshold must be at least 0 and below 1."
  }
}

variable "batch_age_alarm_ms" {
  description = "Alarm when process handles a batch whose oldest message was appended more than this many milliseconds before (BatchAge: the backlog OCI Streaming does not publish)."
  type        = number
  default     = 600000

  validation {
    condition     = var.batch_age_alarm_ms > 0
    error_message = "batch_age_alarm_ms must be positive."
  }
}

variable "no_delivery_alarm_minutes" {
  description = "Alarm when messages were accepted but none was delivered for this many minutes (1 to 60)."
  type        = number
  default     = 15

  validation {
    condition     = var.no_delivery_alarm_minutes >= 1 && var.no_delivery_alarm_minutes <= 60 && floor(var.no_delivery_alarm_minutes) == var.no_delivery_alarm_minutes
    error_message = "no_delivery_alarm_minutes must be a whole number from 1 to 60."
  }
}

resource "oci_monitoring_alarm" "dead_letters" {
  compartment_id        = local.compartment_id
  metric_compartment_id = local.compartment_id
  display_name          = "${var.name_prefix}-dead-letters"
  is_enabled            = true
  namespace             = var.metrics_namespace
  query                 = "MessagesDeadLettered[5m].grouping().sum() > ${var.dead_letters_alarm_threshold}"
  severity              = "CRITICAL"
  pending_duration      = "PT1M"
  destinations          = [oci_ons_notification_topic.alerts.id]
  message_format        = "ONS_OPTIMIZED"
  body                  = "datasync dead-lettered messages (MessagesDeadLettered, by class and target host in the datasync namespace). Read the dead-letter notification or the archive bucket (prefix dead-letter/), fix the cause (the class says which), then replay with POST /stream/retry."
  freeform_tags         = var.freeform_tags
}

resource "oci_monitoring_alarm" "delivery_latency" {
  compartment_id        = local.compartment_id
  metric_compartment_id = local.compartment_id
  display_name          = "${var.name_prefix}-delivery-latency-p99"
  is_enabled            = true
  namespace             = var.metrics_namespace
  query                 = "DeliveryLatency[5m].groupBy(targetHost).percentile(0.99) > ${var.delivery_latency_p99_alarm_ms}"
  severity              = "WARNING"
  pending_duration      = "PT5M"
  destinations          = [oci_ons_notification_topic.alerts.id]
  message_format        = "ONS_OPTIMIZED"
  body                  = "Messages take long to reach a target host (DeliveryLatency p99 from acceptance to the target's 2xx). Check BatchAge (a backlog), TargetLatency and TargetFailureRatio of the host, and its breaker state."
  freeform_tags         = var.freeform_tags
}

resource "oci_monitoring_alarm" "target_failure_ratio" {
  compartment_id        = local.compartment_id
  metric_compartment_id = local.compartment_id
  display_name          = "${var.name_prefix}-target-failure-ratio"
  is_enabled            = true
  namespace             = var.metrics_namespace
  query                 = "TargetFailureRatio[5m].groupBy(targetHost).mean() > ${var.target_failure_ratio_alarm_threshold}"
  severity              = "CRITICAL"
  pending_duration      = "PT5M"
  destinations          = [oci_ons_notification_topic.alerts.id]
  message_format        = "ONS_OPTIMIZED"
  body                  = "A target host fails many of datasync's calls (TargetFailureRatio, by targetHost). DeliveryFailures by class tells why (serviceUnavailable, timeout, clientError, ...); retryable failures wait in the error streams and are retried on schedule."
  freeform_tags         = var.freeform_tags
}

resource "oci_monitoring_alarm" "batch_age" {
  compartment_id        = local.compartment_id
  metric_compartment_id = local.compartment_id
  display_name          = "${var.name_prefix}-backlog"
  is_enabled            = true
  namespace             = var.metrics_namespace
  query                 = "BatchAge[5m]{function = \"process\"}.max() > ${var.batch_age_alarm_ms}"
  severity              = "WARNING"
  pending_duration      = "PT5M"
  destinations          = [oci_ons_notification_topic.alerts.id]
  message_format        = "ONS_OPTIMIZED"
  body                  = "The process function is working on old messages: a backlog is building in the data stream (BatchAge). Check the process function's errors and duration, slow target hosts (TargetLatency), and the connector's batch size."
  freeform_tags         = var.freeform_tags
}

resource "oci_monitoring_alarm" "no_deliveries" {
  compartment_id        = local.compartment_id
  metric_compartment_id = local.compartment_id
  display_name          = "${var.name_prefix}-no-deliveries"
  is_enabled            = true
  namespace             = var.metrics_namespace
  query                 = "MessagesAccepted[${var.no_delivery_alarm_minutes}m].grouping().sum() > 0 && MessagesDelivered[${var.no_delivery_alarm_minutes}m].grouping().absent()"
  severity              = "CRITICAL"
  pending_duration      = "PT1M"
  destinations          = [oci_ons_notification_topic.alerts.id]
  message_format        = "ONS_OPTIMIZED"
  body                  = "Messages are being accepted but none was delivered: the pipeline from the data stream to the targets is stuck. Check the data-to-process connector, the process function's log and errors, and the targets' health (DeliveryFailures by class)."
  freeform_tags         = var.freeform_tags
}

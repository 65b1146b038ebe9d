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

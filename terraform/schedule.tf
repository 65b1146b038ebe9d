# Automatic retry: one Resource Scheduler schedule per retryable error stream invokes the retry
# function's group mode, as `datasync up`'s retry schedule does locally
# (crates/local/src/stack/pump/schedule.rs): the same streams (service-unavailable,
# internal-server and default; not unrecoverable, not dead-letter; and the callback stream of
# callbacks.tf, whose due callbacks the retry function sends again), the same body
# {"stream": <ocid>, "max": N} and the same default N. Turn it off with retry_schedule_enabled.
#
# How OCI runs it (contracts round2 §C and §F):
#   - action START_RESOURCE on the function's OCID invokes the function; the BODY parameter (one
#     JSON string, the provider decodes it) becomes the invoke request body;
#   - scheduled invocations are detached: the retry function's budget is its detached-mode
#     timeout (which defaults to timeout_in_seconds), and nobody reads its answer, so progress is
#     in the function's logs and in the consumer group's committed position;
#   - the schedule calls the function as its own resource principal (request.principal.type
#     'resourceschedule'); the policy below lets exactly these schedules invoke functions in the
#     application compartment, and each schedule names only the retry function.
#
# Cadence: `datasync up` calls every 10 s. A cron recurrence cannot go below one minute, so the
# default here is every minute (see terraform/README.md, "Automatic retry").

locals {
  # The error streams the schedule replays, by the short names of local.failure_streams.
  scheduled_retry_streams = {
    service-unavailable = oci_streaming_stream.service_unavailable_errors.id
    internal-server     = oci_streaming_stream.internal_server_errors.id
    callbacks           = oci_streaming_stream.callbacks.id
    default             = oci_streaming_stream.default_errors.id
  }
}

resource "oci_resource_scheduler_schedule" "retry" {
  for_each = var.retry_schedule_enabled ? local.scheduled_retry_streams : {}

  compartment_id     = local.compartment_id
  display_name       = "${var.name_prefix}-retry-${each.key}"
  description        = "Invokes the retry function's group mode on the ${each.key} error stream"
  action             = "START_RESOURCE"
  recurrence_type    = "CRON"
  recurrence_details = var.retry_schedule_cron
  state              = "ACTIVE"
  freeform_tags      = var.freeform_tags

  resources {
    id = oci_functions_function.retry.id

    # The retry function's group-mode request (functions/retry/src/api.rs, GroupModeRequest);
    # tests/terraform_config.rs feeds this very body to the retry function's parser.
    parameters {
      parameter_type = "BODY"
      value          = [jsonencode({ stream = each.value, max = var.retry_schedule_max_messages })]
    }
  }
}

resource "oci_identity_policy" "retry_schedule" {
  count = var.retry_schedule_enabled ? 1 : 0

  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-retry-schedule"
  description    = "The datasync retry schedules may invoke functions in the datasync compartment"
  freeform_tags  = var.freeform_tags

  # One pair per schedule, matched by the schedule's own OCID: no other schedule in the tenancy
  # gains anything. OCI Functions supports only the general policy variables (no function id), so
  # the function is pinned by the schedule itself, which names only the retry function.
  statements = flatten([
    for s in values(oci_resource_scheduler_schedule.retry) : [
      "Allow any-user to use fn-function ${local.in_app} where all {request.principal.type = 'resourceschedule', request.principal.id = '${s.id}'}",
      "Allow any-user to use fn-invocation ${local.in_app} where all {request.principal.type = 'resourceschedule', request.principal.id = '${s.id}'}",
    ]
  ])
}

variable "retry_schedule_enabled" {
  description = "Invoke the retry function on every retryable error stream on a schedule (retry_schedule_cron). false: failures wait in the error streams until an operator calls POST /stream/retry."
  type        = bool
  default     = true
}

variable "retry_schedule_cron" {
  description = "When the retry schedules run: a 5-field cron expression, evaluated in UTC. The default, every minute, is the shortest a cron recurrence allows (datasync up runs every 10 s)."
  type        = string
  default     = "* * * * *"

  validation {
    condition     = length(regexall("^\\S+( \\S+){4}$", var.retry_schedule_cron)) == 1
    error_message = "retry_schedule_cron must be a 5-field cron expression (minute hour day-of-month month day-of-week)."
  }
}

variable "retry_schedule_max_messages" {
  description = "Messages each scheduled call handles at most (the group-mode request's max, 1-10000; datasync up's retry_schedule.max_messages default)."
  type        = number
  default     = 500

  validation {
    condition     = var.retry_schedule_max_messages >= 1 && var.retry_schedule_max_messages <= 10000 && floor(var.retry_schedule_max_messages) == var.retry_schedule_max_messages
    error_message = "retry_schedule_max_messages must be a whole number between 1 and 10000."
  }
}

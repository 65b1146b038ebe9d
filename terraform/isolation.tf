# Isolation of target hosts (docs/isolation.md): each function instance keeps a circuit
# breaker, an adaptive concurrency limit and a retry budget per target host, and gives each
# host a share of a batch's time. These variables reach the process and retry functions through
# the application's config map (functions.tf).

variable "breaker_consecutive_failures" {
  description = "Failed calls in a row (transport errors, timeouts, retryable statuses other than 429) that open a target host's circuit breaker; a call cut at its whole allowance of the host's time share counts as half of it, so two such cuts open it; 0 turns this trigger off."
  type        = number
  default     = 5

  validation {
    condition     = var.breaker_consecutive_failures >= 0 && var.breaker_consecutive_failures <= 10000
    error_message = "breaker_consecutive_failures must be between 0 and 10000."
  }
}

variable "breaker_failure_percent" {
  description = "Share of failed calls to a host, in percent, over at least breaker_min_calls calls in a minute, that opens its breaker; 0 turns this trigger off."
  type        = number
  default     = 50

  validation {
    condition     = var.breaker_failure_percent >= 0 && var.breaker_failure_percent <= 100
    error_message = "breaker_failure_percent must be between 0 and 100."
  }
}

variable "breaker_min_calls" {
  description = "Calls to a host in a minute before breaker_failure_percent is judged."
  type        = number
  default     = 20

  validation {
    condition     = var.breaker_min_calls >= 1 && var.breaker_min_calls <= 100000
    error_message = "breaker_min_calls must be between 1 and 100000."
  }
}

variable "breaker_cool_down_ms" {
  description = "How long an open breaker sends nothing to its host before half-open probes, times the number of openings in a row (at most ten)."
  type        = number
  default     = 30000

  validation {
    condition     = var.breaker_cool_down_ms >= 10 && var.breaker_cool_down_ms <= 3600000
    error_message = "breaker_cool_down_ms must be between 10 and 3600000."
  }
}

variable "breaker_probes" {
  description = "Successful probe calls that close a half-open breaker (one failure opens it again)."
  type        = number
  default     = 1

  validation {
    condition     = var.breaker_probes >= 1 && var.breaker_probes <= 100
    error_message = "breaker_probes must be between 1 and 100."
  }
}

variable "host_time_share_ms" {
  description = "The most of a batch's time the calls to one target host may take; one call may take 16 times the host's mean latency, at least a quarter of it (a quarter while the host has not answered) and at most all of it; calls still running are cancelled and re-routed with class slow. A host override's timeoutMs raises it for that host."
  type        = number
  default     = 5000

  validation {
    condition     = var.host_time_share_ms >= 10 && var.host_time_share_ms <= 300000
    error_message = "host_time_share_ms must be between 10 and 300000."
  }
}

variable "retry_budget_percent" {
  description = "Failing retries to one host allowed per window, in percent of its first attempts (at least 10 per window); beyond it retries wait for the schedule."
  type        = number
  default     = 20

  validation {
    condition     = var.retry_budget_percent >= 0 && var.retry_budget_percent <= 100
    error_message = "retry_budget_percent must be between 0 and 100."
  }
}

variable "retry_budget_window_seconds" {
  description = "The window the retry budget counts over."
  type        = number
  default     = 60

  validation {
    condition     = var.retry_budget_window_seconds >= 1 && var.retry_budget_window_seconds <= 86400
    error_message = "retry_budget_window_seconds must be between 1 and 86400."
  }
}

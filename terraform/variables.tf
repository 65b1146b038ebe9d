# Inputs. Every variable has a description, a type and, where a wrong value would only fail late
# (at apply time or, worse, at run time), a validation. Defaults are the safe choice; the handful
# without a default are facts only you know (tenancy, region, who may call the API, images).

# ---------------------------------------------------------------------------------------------
# Tenancy, region, compartments
# ---------------------------------------------------------------------------------------------

variable "tenancy_ocid" {
  description = "OCID of the tenancy. Dynamic groups are created here and, by default, the IAM policies are attached here."
  type        = string

  validation {
    condition     = can(regex("^ocid1\\.tenancy\\.", var.tenancy_ocid))
    error_message = "tenancy_ocid must be a tenancy OCID (ocid1.tenancy....)."
  }
}

variable "region" {
  description = "Region identifier to deploy into, for example eu-frankfurt-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+-[0-9]+$", var.region))
    error_message = "region must be a region identifier such as us-ashburn-1."
  }
}

variable "oci_config_profile" {
  description = "Profile of ~/.oci/config the provider authenticates with."
  type        = string
  default     = "DEFAULT"
}

variable "compartment_ocid" {
  description = "OCID of the compartment for the application resources: functions, streams, connectors, gateway, topic, bucket, logs and alarms."
  type        = string

  validation {
    condition     = can(regex("^ocid1\\.(compartment|tenancy)\\.", var.compartment_ocid))
    error_message = "compartment_ocid must be a compartment OCID."
  }
}

variable "network_compartment_ocid" {
  description = "OCID of the compartment for the VCN, subnets, gateways and NSGs. null: compartment_ocid."
  type        = string
  default     = null

  validation {
    condition     = var.network_compartment_ocid == null || can(regex("^ocid1\\.(compartment|tenancy)\\.", var.network_compartment_ocid))
    error_message = "network_compartment_ocid must be a compartment OCID or null."
  }
}

variable "vault_compartment_ocid" {
  description = "OCID of the compartment for the vault, its key and the secrets populate creates (the functions' vault_compartment_ocid). null: compartment_ocid."
  type        = string
  default     = null

  validation {
    condition     = var.vault_compartment_ocid == null || can(regex("^ocid1\\.(compartment|tenancy)\\.", var.vault_compartment_ocid))
    error_message = "vault_compartment_ocid must be a compartment OCID or null."
  }
}

variable "registry_compartment_ocid" {
  description = "OCID of the compartment of the container repositories (created here when create_container_repositories is true; required when it is false: the tenancy OCID for repositories a docker push created). The Functions service may read images only here. null: compartment_ocid."
  type        = string
  default     = null

  validation {
    condition     = var.registry_compartment_ocid == null || can(regex("^ocid1\\.(compartment|tenancy)\\.", var.registry_compartment_ocid))
    error_message = "registry_compartment_ocid must be a compartment OCID or null."
  }
}

variable "policy_compartment_ocid" {
  description = "OCID of the compartment the IAM policies are attached to. It must be an ancestor of (or equal to) every compartment above; null: the tenancy, which always is."
  type        = string
  default     = null

  validation {
    condition     = var.policy_compartment_ocid == null || can(regex("^ocid1\\.(compartment|tenancy)\\.", var.policy_compartment_ocid))
    error_message = "policy_compartment_ocid must be a compartment OCID or null."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (lowercase letters, digits and dashes). Dynamic group and policy names are tenancy-wide, so use a distinct prefix per deployment."
  type        = string
  default     = "datasync"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name_prefix))
    error_message = "name_prefix must be 2-24 characters: lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "freeform_tags" {
  description = "Free-form tags put on every resource that takes them."
  type        = map(string)
  default     = { project = "datasync" }
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------

variable "vcn_cidr" {
  description = "CIDR block of the VCN."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vcn_cidr))
    error_message = "vcn_cidr must be an IPv4 CIDR block."
  }
}

variable "gateway_subnet_cidr" {
  description = "CIDR block of the public subnet that holds the API gateway (inside vcn_cidr)."
  type        = string
  default     = "10.0.1.0/24"

  validation {
    condition     = can(cidrnetmask(var.gateway_subnet_cidr))
    error_message = "gateway_subnet_cidr must be an IPv4 CIDR block."
  }
}

variable "functions_subnet_cidr" {
  description = "CIDR block of the private subnet that holds the functions (inside vcn_cidr)."
  type        = string
  default     = "10.0.2.0/24"

  validation {
    condition     = can(cidrnetmask(var.functions_subnet_cidr))
    error_message = "functions_subnet_cidr must be an IPv4 CIDR block."
  }
}

variable "api_allowed_cidrs" {
  description = "Source CIDR blocks allowed to reach the API gateway on TCP 443. Narrow this to your source applications' egress addresses when you know them."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.api_allowed_cidrs) > 0 && alltrue([for c in var.api_allowed_cidrs : can(cidrnetmask(c))])
    error_message = "api_allowed_cidrs must be a non-empty list of IPv4 CIDR blocks."
  }
}

variable "target_egress_ports" {
  description = "TCP ports the functions may open to the internet (through the NAT gateway) to reach target APIs. Add 80 only together with allow_http_targets."
  type        = list(number)
  default     = [443]

  validation {
    condition     = length(var.target_egress_ports) > 0 && alltrue([for p in var.target_egress_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "target_egress_ports must be a non-empty list of TCP ports (1-65535)."
  }
}

# ---------------------------------------------------------------------------------------------
# API Gateway: authentication (JWT validated by the gateway), authorization, limits, logs
# ---------------------------------------------------------------------------------------------

variable "jwt_validation_type" {
  description = "How the gateway validates tokens: REMOTE_JWKS (a JWT's signature against jwt_jwks_uri) or REMOTE_DISCOVERY (the identity provider's introspection endpoint, found through jwt_discovery_uri, called with a client id and a Vault secret)."
  type        = string
  default     = "REMOTE_JWKS"

  validation {
    condition     = contains(["REMOTE_JWKS", "REMOTE_DISCOVERY"], var.jwt_validation_type)
    error_message = "jwt_validation_type must be REMOTE_JWKS or REMOTE_DISCOVERY."
  }
}

variable "jwt_jwks_uri" {
  description = "With REMOTE_JWKS: HTTPS URI of the JSON Web Key Set the gateway verifies token signatures with. It must answer without authentication, e.g. https://idcs-<id>.identity.oraclecloud.com/admin/v1/SigningCert/jwk for an OCI IAM identity domain whose \"Configure client access\" setting allows access to the signing certificate (terraform/README.md)."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_jwks_uri == null || can(regex("^https://", var.jwt_jwks_uri))
    error_message = "jwt_jwks_uri must be an https:// URI."
  }
}

variable "jwt_discovery_uri" {
  description = "With REMOTE_DISCOVERY: the identity provider's discovery document, e.g. https://idcs-<id>.identity.oraclecloud.com/.well-known/openid-configuration."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_discovery_uri == null || can(regex("^https://", var.jwt_discovery_uri))
    error_message = "jwt_discovery_uri must be an https:// URI."
  }
}

variable "jwt_introspection_client_id" {
  description = "With REMOTE_DISCOVERY: the client id the gateway calls the introspection endpoint with (a confidential application of the identity provider)."
  type        = string
  default     = null
}

variable "jwt_introspection_client_secret_ocid" {
  description = "With REMOTE_DISCOVERY: OCID of the Vault secret holding that client's secret. It must be in vault_compartment_ocid (the gateway is allowed to read that one secret)."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_introspection_client_secret_ocid == null || can(regex("^ocid1\\.vaultsecret\\.", var.jwt_introspection_client_secret_ocid))
    error_message = "jwt_introspection_client_secret_ocid must be a Vault secret OCID (ocid1.vaultsecret....)."
  }
}

variable "jwt_introspection_client_secret_version" {
  description = "With REMOTE_DISCOVERY: the version of that secret the gateway uses."
  type        = number
  default     = 1

  validation {
    condition     = var.jwt_introspection_client_secret_version >= 1 && floor(var.jwt_introspection_client_secret_version) == var.jwt_introspection_client_secret_version
    error_message = "jwt_introspection_client_secret_version must be a whole number of at least 1."
  }
}

variable "jwt_issuers" {
  description = "Accepted values of the token's iss claim, e.g. [\"https://identity.oraclecloud.com/\"]."
  type        = list(string)

  validation {
    condition     = length(var.jwt_issuers) > 0 && alltrue([for i in var.jwt_issuers : length(i) > 0])
    error_message = "jwt_issuers must list at least one issuer."
  }
}

variable "jwt_audiences" {
  description = "Accepted values of the token's aud claim (the audience your identity provider puts in tokens for this API)."
  type        = list(string)

  validation {
    condition     = length(var.jwt_audiences) > 0 && alltrue([for a in var.jwt_audiences : length(a) > 0])
    error_message = "jwt_audiences must list at least one audience."
  }
}

variable "jwt_token_header" {
  description = "Request header that carries the caller's token. Not Authorization: callers send the target API's own Authorization header, which populate keeps in Vault."
  type        = string
  default     = "x-datasync-token"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.jwt_token_header)) && lower(var.jwt_token_header) != "authorization" && lower(var.jwt_token_header) != "x-datasync-caller"
    error_message = "jwt_token_header must be a header name other than Authorization and x-datasync-caller."
  }
}

variable "jwt_token_auth_scheme" {
  description = "Authentication scheme expected before the token in jwt_token_header (the header value is \"<scheme> <jwt>\")."
  type        = string
  default     = "Bearer"
}

variable "caller_identity_claim" {
  description = "JWT claim whose value becomes the caller identity the functions see in x-datasync-caller (secrets are scoped by it). sub is the client id for client-credentials tokens."
  type        = string
  default     = "sub"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.:-]+$", var.caller_identity_claim))
    error_message = "caller_identity_claim must be a plain claim name."
  }
}

variable "sync_scopes" {
  description = "Token scopes allowed to call POST /stream/sync (any one of them)."
  type        = list(string)
  default     = ["datasync.sync"]

  validation {
    condition     = length(var.sync_scopes) > 0
    error_message = "sync_scopes must list at least one scope."
  }
}

variable "retry_scopes" {
  description = "Token scopes allowed to call POST /stream/retry (operators only; any one of them). Keep them disjoint from sync_scopes."
  type        = list(string)
  default     = ["datasync.retry"]

  validation {
    condition     = length(var.retry_scopes) > 0
    error_message = "retry_scopes must list at least one scope."
  }
}

variable "jwt_max_clock_skew_seconds" {
  description = "Clock skew tolerated when checking the token's exp and nbf."
  type        = number
  default     = 60

  validation {
    condition     = var.jwt_max_clock_skew_seconds >= 0 && var.jwt_max_clock_skew_seconds <= 300
    error_message = "jwt_max_clock_skew_seconds must be between 0 and 300."
  }
}

variable "jwks_cache_hours" {
  description = "Hours the gateway caches the JWKS before fetching it again."
  type        = number
  default     = 1

  validation {
    condition     = var.jwks_cache_hours >= 1 && var.jwks_cache_hours <= 24
    error_message = "jwks_cache_hours must be between 1 and 24."
  }
}

variable "gateway_rate_limit_per_second" {
  description = "Requests per second the deployment accepts (per client IP or in total, see gateway_rate_limit_key); excess requests are rejected with 429."
  type        = number
  default     = 50

  validation {
    condition     = var.gateway_rate_limit_per_second >= 1 && var.gateway_rate_limit_per_second <= 10000 && floor(var.gateway_rate_limit_per_second) == var.gateway_rate_limit_per_second
    error_message = "gateway_rate_limit_per_second must be a whole number between 1 and 10000."
  }
}

variable "gateway_rate_limit_key" {
  description = "What the rate limit counts: CLIENT_IP (per source address) or TOTAL (the whole deployment)."
  type        = string
  default     = "CLIENT_IP"

  validation {
    condition     = contains(["CLIENT_IP", "TOTAL"], var.gateway_rate_limit_key)
    error_message = "gateway_rate_limit_key must be CLIENT_IP or TOTAL."
  }
}

variable "gateway_execution_log_level" {
  description = "Level of the API deployment's execution log: INFO, WARN or ERROR."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["INFO", "WARN", "ERROR"], var.gateway_execution_log_level)
    error_message = "gateway_execution_log_level must be INFO, WARN or ERROR."
  }
}

# ---------------------------------------------------------------------------------------------
# Functions: images, sizes, registry
# ---------------------------------------------------------------------------------------------

variable "create_container_repositories" {
  description = "Create private container repositories <name_prefix>/populate, /process and /retry in the registry compartment. Set false to use repositories you manage elsewhere; then registry_compartment_ocid is required (checked at plan)."
  type        = bool
  default     = true
}

variable "immutable_image_tags" {
  description = "Make the created repositories reject a push that reuses an existing tag."
  type        = bool
  default     = true
}

variable "populate_image" {
  description = "Image of the populate function: <region-key>.ocir.io/<namespace>/<repo>:<tag>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+\\.ocir\\.io/[^/]+/.+:[A-Za-z0-9_.-]+$", var.populate_image))
    error_message = "populate_image must be an OCIR image reference with a tag: <region-key>.ocir.io/<namespace>/<repo>:<tag>."
  }
}

variable "populate_image_digest" {
  description = "Digest of populate_image (sha256:...), printed by docker push; it pins the exact image."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.populate_image_digest))
    error_message = "populate_image_digest must be sha256: followed by 64 hex digits."
  }
}

variable "process_image" {
  description = "Image of the process function: <region-key>.ocir.io/<namespace>/<repo>:<tag>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+\\.ocir\\.io/[^/]+/.+:[A-Za-z0-9_.-]+$", var.process_image))
    error_message = "process_image must be an OCIR image reference with a tag: <region-key>.ocir.io/<namespace>/<repo>:<tag>."
  }
}

variable "process_image_digest" {
  description = "Digest of process_image (sha256:...)."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.process_image_digest))
    error_message = "process_image_digest must be sha256: followed by 64 hex digits."
  }
}

variable "retry_image" {
  description = "Image of the retry function: <region-key>.ocir.io/<namespace>/<repo>:<tag>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+\\.ocir\\.io/[^/]+/.+:[A-Za-z0-9_.-]+$", var.retry_image))
    error_message = "retry_image must be an OCIR image reference with a tag: <region-key>.ocir.io/<namespace>/<repo>:<tag>."
  }
}

variable "retry_image_digest" {
  description = "Digest of retry_image (sha256:...)."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.retry_image_digest))
    error_message = "retry_image_digest must be sha256: followed by 64 hex digits."
  }
}

variable "function_shape" {
  description = "Architecture of the functions application: GENERIC_X86, GENERIC_ARM or GENERIC_X86_ARM. It must match the images you build."
  type        = string
  default     = "GENERIC_X86"

  validation {
    condition     = contains(["GENERIC_X86", "GENERIC_ARM", "GENERIC_X86_ARM"], var.function_shape)
    error_message = "function_shape must be GENERIC_X86, GENERIC_ARM or GENERIC_X86_ARM."
  }
}

variable "function_memory_mb" {
  description = "Memory of each function in MB (128, 256, 512, 1024, 2048 or 3072)."
  type        = object({ populate = number, process = number, retry = number })
  default     = { populate = 256, process = 512, retry = 256 }

  validation {
    condition     = alltrue([for m in values(var.function_memory_mb) : contains([128, 256, 512, 1024, 2048, 3072], m)])
    error_message = "function_memory_mb values must be one of 128, 256, 512, 1024, 2048, 3072."
  }
}

variable "function_timeout_seconds" {
  description = "Timeout of each function in seconds (5-300). process handles a whole connector batch, so give it room."
  type        = object({ populate = number, process = number, retry = number })
  default     = { populate = 30, process = 120, retry = 120 }

  validation {
    condition     = alltrue([for t in values(var.function_timeout_seconds) : t >= 5 && t <= 300 && floor(t) == t])
    error_message = "function_timeout_seconds values must be whole numbers between 5 and 300."
  }
}

# ---------------------------------------------------------------------------------------------
# Function configuration values (the keys are fixed by crates/core/src/function_config.rs)
# ---------------------------------------------------------------------------------------------

variable "target_allow_list" {
  description = "Comma-separated target hosts (host or host:port; *.example.com for subdomains) messages may be sent to. Required: nothing is sent anywhere else."
  type        = string

  validation {
    condition     = length(trimspace(var.target_allow_list)) > 0 && length(var.target_allow_list) <= 1024
    error_message = "target_allow_list must name at least one host and stay under 1024 characters (the whole function configuration is limited to 4 KB)."
  }
}

variable "allow_http_targets" {
  description = "Allow plain-http targets (default false: https only)."
  type        = bool
  default     = false
}

variable "allow_private_targets" {
  description = "Allow targets that resolve to loopback, private or link-local addresses (default false)."
  type        = bool
  default     = false
}

variable "classification_overrides" {
  description = "JSON per-host overrides of the retry rules (status ranges, attempts, timeout, concurrency); \"{}\" for none."
  type        = string
  default     = "{}"

  validation {
    condition     = can(jsondecode(var.classification_overrides)) && length(var.classification_overrides) <= 2048
    error_message = "classification_overrides must be valid JSON of at most 2048 characters."
  }
}

variable "max_attempts" {
  description = "Attempts before a retryable failure becomes permanent."
  type        = number
  default     = 8

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 100 && floor(var.max_attempts) == var.max_attempts
    error_message = "max_attempts must be a whole number between 1 and 100."
  }
}

variable "max_message_age_seconds" {
  description = "Age after which a retryable failure becomes permanent. Must stay below the error streams' retention (checked at plan)."
  type        = number
  default     = 82800

  validation {
    condition     = var.max_message_age_seconds >= 60 && floor(var.max_message_age_seconds) == var.max_message_age_seconds
    error_message = "max_message_age_seconds must be a whole number of at least 60."
  }
}

variable "target_connect_timeout_ms" {
  description = "Connect timeout for target calls, in milliseconds."
  type        = number
  default     = 3000

  validation {
    condition     = var.target_connect_timeout_ms >= 100 && var.target_connect_timeout_ms <= 60000
    error_message = "target_connect_timeout_ms must be between 100 and 60000."
  }
}

variable "target_timeout_ms" {
  description = "Total timeout for one target call, in milliseconds. Must stay below the process and retry function timeouts (checked at plan)."
  type        = number
  default     = 10000

  validation {
    condition     = var.target_timeout_ms >= 100 && var.target_timeout_ms <= 300000
    error_message = "target_timeout_ms must be between 100 and 300000."
  }
}

variable "max_concurrency" {
  description = "Target calls in flight per invocation."
  type        = number
  default     = 64

  validation {
    condition     = var.max_concurrency >= 1 && var.max_concurrency <= 1024
    error_message = "max_concurrency must be between 1 and 1024."
  }
}

variable "per_host_concurrency" {
  description = "Target calls in flight per target host."
  type        = number
  default     = 16

  validation {
    condition     = var.per_host_concurrency >= 1 && var.per_host_concurrency <= 1024
    error_message = "per_host_concurrency must be between 1 and 1024."
  }
}

variable "retry_consumer_group" {
  description = "Consumer group name the retry function's group mode commits its position under."
  type        = string
  default     = "datasync-retry"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,256}$", var.retry_consumer_group))
    error_message = "retry_consumer_group must be 1-256 letters, digits, dots, dashes or underscores."
  }
}

# ---------------------------------------------------------------------------------------------
# Streaming and Connector Hub
# ---------------------------------------------------------------------------------------------

variable "data_stream_partitions" {
  description = "Partitions of the data stream (fixed at creation; each takes 1 MB/s of writes). Counts against the tenancy's partition limit."
  type        = number
  default     = 1

  validation {
    condition     = var.data_stream_partitions >= 1 && var.data_stream_partitions <= 50 && floor(var.data_stream_partitions) == var.data_stream_partitions
    error_message = "data_stream_partitions must be a whole number between 1 and 50."
  }
}

variable "error_stream_partitions" {
  description = "Partitions of each error stream and of the dead-letter stream (fixed at creation)."
  type        = number
  default     = 1

  validation {
    condition     = var.error_stream_partitions >= 1 && var.error_stream_partitions <= 50 && floor(var.error_stream_partitions) == var.error_stream_partitions
    error_message = "error_stream_partitions must be a whole number between 1 and 50."
  }
}

variable "data_stream_retention_hours" {
  description = "Retention of the data stream in hours (24-168, fixed at creation). It is how long a message survives while process cannot deliver or the connector is stopped."
  type        = number
  default     = 168

  validation {
    condition     = var.data_stream_retention_hours >= 24 && var.data_stream_retention_hours <= 168 && floor(var.data_stream_retention_hours) == var.data_stream_retention_hours
    error_message = "data_stream_retention_hours must be a whole number between 24 and 168."
  }
}

variable "error_stream_retention_hours" {
  description = "Retention of each error stream and of the dead-letter stream in hours (24-168, fixed at creation). Everything is also archived to Object Storage."
  type        = number
  default     = 168

  validation {
    condition     = var.error_stream_retention_hours >= 24 && var.error_stream_retention_hours <= 168 && floor(var.error_stream_retention_hours) == var.error_stream_retention_hours
    error_message = "error_stream_retention_hours must be a whole number between 24 and 168."
  }
}

variable "connector_batch_size_kbs" {
  description = "Largest batch, in KB, the data connector sends to the process function in one invocation (a function invoke body is capped at 6 MB)."
  type        = number
  default     = 4096

  validation {
    condition     = var.connector_batch_size_kbs >= 1 && var.connector_batch_size_kbs <= 6000 && floor(var.connector_batch_size_kbs) == var.connector_batch_size_kbs
    error_message = "connector_batch_size_kbs must be a whole number between 1 and 6000."
  }
}

variable "connector_batch_time_seconds" {
  description = "Longest time, in seconds, the data connector waits to fill a batch before invoking the process function."
  type        = number
  default     = 5

  validation {
    condition     = var.connector_batch_time_seconds >= 1 && var.connector_batch_time_seconds <= 600 && floor(var.connector_batch_time_seconds) == var.connector_batch_time_seconds
    error_message = "connector_batch_time_seconds must be a whole number between 1 and 600."
  }
}

variable "archive_rollover_size_mbs" {
  description = "Size in MB at which an archive connector closes the current object and starts a new one."
  type        = number
  default     = 100

  validation {
    condition     = var.archive_rollover_size_mbs >= 1 && var.archive_rollover_size_mbs <= 100
    error_message = "archive_rollover_size_mbs must be between 1 and 100."
  }
}

variable "archive_rollover_time_ms" {
  description = "Time in milliseconds after which an archive connector closes the current object and starts a new one."
  type        = number
  default     = 420000

  validation {
    condition     = var.archive_rollover_time_ms >= 60000 && var.archive_rollover_time_ms <= 420000
    error_message = "archive_rollover_time_ms must be between 60000 and 420000."
  }
}

variable "notify_dead_letter_messages" {
  description = "Also run a Connector Hub connector from the dead-letter stream to the topic (default false). It sends every dead letter raw (payload and custom header values included, one message each: a burst passes the topic's ~60 messages a minute, and a dead letter over 64 KB is refused by Notifications). The process and retry functions already publish a summary of each batch's dead letters; leave this off unless subscribers must receive the whole messages."
  type        = bool
  default     = false
}

variable "notify_dead_letter_payloads" {
  description = "Put each dead letter's payload (cut to 8 KiB) in the process and retry functions' dead-letter notifications (default false: ids, keys, classes, statuses, attempts, sizes and archive positions only; custom header values never). Subscribers (email) then receive business data."
  type        = bool
  default     = false
}

variable "notification_rate_per_minute" {
  description = "Most dead-letter notifications one function instance publishes per minute (default 20). A topic accepts about 60 messages a minute in all; alerts over the rate are counted and folded into the next notification."
  type        = number
  default     = 20

  validation {
    condition     = var.notification_rate_per_minute >= 1 && var.notification_rate_per_minute <= 600
    error_message = "notification_rate_per_minute must be from 1 to 600."
  }
}

# ---------------------------------------------------------------------------------------------
# Vault, notifications, archive, logs, alarms
# ---------------------------------------------------------------------------------------------

variable "vault_type" {
  description = "Vault type: DEFAULT (shared partition) or VIRTUAL_PRIVATE (dedicated partition, billed separately)."
  type        = string
  default     = "DEFAULT"

  validation {
    condition     = contains(["DEFAULT", "VIRTUAL_PRIVATE"], var.vault_type)
    error_message = "vault_type must be DEFAULT or VIRTUAL_PRIVATE."
  }
}

variable "key_protection_mode" {
  description = "Protection mode of the AES master key: HSM (never leaves the HSM) or SOFTWARE."
  type        = string
  default     = "HSM"

  validation {
    condition     = contains(["HSM", "SOFTWARE"], var.key_protection_mode)
    error_message = "key_protection_mode must be HSM or SOFTWARE."
  }
}

variable "notification_email" {
  description = "Email address subscribed to the alerts topic (dead-letter messages, failure summaries, alarms). OCI sends a confirmation mail that must be accepted."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.notification_email))
    error_message = "notification_email must be an email address."
  }
}

variable "archive_retention_days" {
  description = "Days after which archived error and dead-letter objects are deleted from the bucket."
  type        = number
  default     = 90

  validation {
    condition     = var.archive_retention_days >= 1 && var.archive_retention_days <= 3650 && floor(var.archive_retention_days) == var.archive_retention_days
    error_message = "archive_retention_days must be a whole number between 1 and 3650."
  }
}

variable "log_retention_days" {
  description = "Retention of the service logs in days (30, 60, 90, 120, 150 or 180)."
  type        = number
  default     = 30

  validation {
    condition     = contains([30, 60, 90, 120, 150, 180], var.log_retention_days)
    error_message = "log_retention_days must be one of 30, 60, 90, 120, 150, 180."
  }
}

variable "dead_letter_alarm_threshold" {
  description = "Alarm when more than this many messages reach the dead-letter stream within 5 minutes."
  type        = number
  default     = 0

  validation {
    condition     = var.dead_letter_alarm_threshold >= 0
    error_message = "dead_letter_alarm_threshold must not be negative."
  }
}

variable "process_error_alarm_threshold" {
  description = "Alarm when the process function returns more than this many error responses within 5 minutes (each one makes the connector re-deliver a batch)."
  type        = number
  default     = 0

  validation {
    condition     = var.process_error_alarm_threshold >= 0
    error_message = "process_error_alarm_threshold must not be negative."
  }
}

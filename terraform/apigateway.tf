# API Gateway: a public gateway in the public subnet and one deployment under /stream:
#   POST /stream/sync  -> populate   (scopes: sync_scopes)
#   POST /stream/retry -> retry      (scopes: retry_scopes, operators only)
#
# Authentication: the gateway itself validates the token taken from jwt_token_header
# (TOKEN_AUTHENTICATION), in one of two ways (jwt_validation_type):
#   - REMOTE_JWKS (default): a JWT's signature against the identity provider's JWKS, which the
#     gateway fetches without credentials (an OCI identity domain serves it only with its "access
#     signing certificate" setting on: terraform/README.md);
#   - REMOTE_DISCOVERY: the provider's OAuth 2.0 introspection endpoint, found through its
#     discovery URL, called with a client id and a client secret kept in Vault;
# then issuer, audience, expiry and presence of the caller-identity claim. Usage-plan client tokens (x-api-key) are not used: OCI
# documents them as being for usage-plan reporting only, not for authentication, and they are not
# exposed to policies as a context variable, so they cannot feed the caller-identity header.
#
# Caller identity: each route sets x-datasync-caller from the validated token
# (${request.auth[<claim>]}) with if_exists = OVERWRITE, so a copy sent by the client is replaced,
# never passed on. (A BLOCK filter on the same header cannot be used: filters run after the other
# transformations and would drop the value just set, and a header name may appear in only one
# transformation policy.) The token header itself is filtered out so the functions never see it.
#
# Body limit: the deployment specification has no body-size setting. A function back end takes at
# most 6 MB (the Functions invoke limit), and populate accepts bodies up to that, but each message
# it writes (stream key + envelope) must fit Streaming's 1 MB: a bigger one is a 413 naming the
# item. The gateway additionally requires a JSON body on both routes.

resource "oci_apigateway_gateway" "main" {
  compartment_id             = local.compartment_id
  display_name               = "${var.name_prefix}-gateway"
  endpoint_type              = "PUBLIC"
  subnet_id                  = oci_core_subnet.gateway.id
  network_security_group_ids = [oci_core_network_security_group.gateway.id]
  freeform_tags              = var.freeform_tags
}

resource "oci_apigateway_deployment" "main" {
  compartment_id = local.compartment_id
  gateway_id     = oci_apigateway_gateway.main.id
  display_name   = "${var.name_prefix}-deployment"
  path_prefix    = "/stream"
  freeform_tags  = var.freeform_tags

  specification {
    logging_policies {
      access_log {
        is_enabled = true
      }
      execution_log {
        is_enabled = true
        log_level  = var.gateway_execution_log_level
      }
    }

    request_policies {
      authentication {
        type                        = "TOKEN_AUTHENTICATION"
        token_header                = var.jwt_token_header
        token_auth_scheme           = var.jwt_token_auth_scheme
        is_anonymous_access_allowed = false
        max_clock_skew_in_seconds   = var.jwt_max_clock_skew_seconds

        validation_policy {
          type                        = var.jwt_validation_type
          uri                         = local.jwt_discovery ? null : var.jwt_jwks_uri
          max_cache_duration_in_hours = var.jwks_cache_hours

          dynamic "source_uri_details" {
            for_each = local.jwt_discovery ? [var.jwt_discovery_uri] : []
            content {
              type = "DISCOVERY_URI"
              uri  = source_uri_details.value
            }
          }

          dynamic "client_details" {
            for_each = local.jwt_discovery ? [var.jwt_introspection_client_id] : []
            content {
              type                         = "CUSTOM"
              client_id                    = client_details.value
              client_secret_id             = var.jwt_introspection_client_secret_ocid
              client_secret_version_number = tostring(var.jwt_introspection_client_secret_version)
            }
          }

          additional_validation_policy {
            issuers   = var.jwt_issuers
            audiences = var.jwt_audiences

            verify_claims {
              key         = var.caller_identity_claim
              is_required = true
            }
          }
        }
      }

      rate_limiting {
        rate_in_requests_per_second = var.gateway_rate_limit_per_second
        rate_key                    = var.gateway_rate_limit_key
      }
    }

    routes {
      path    = "/sync"
      methods = ["POST"]

      backend {
        type        = "ORACLE_FUNCTIONS_BACKEND"
        function_id = oci_functions_function.populate.id
      }

      request_policies {
        authorization {
          type          = "ANY_OF"
          allowed_scope = var.sync_scopes
        }

        body_validation {
          required        = true
          validation_mode = "ENFORCING"

          content {
            media_type      = "application/json"
            validation_type = "NONE"
          }
        }

        header_transformations {
          set_headers {
            items {
              name      = local.caller_header
              values    = ["$${request.auth[${var.caller_identity_claim}]}"]
              if_exists = "OVERWRITE"
            }
          }

          filter_headers {
            type = "BLOCK"

            items {
              name = var.jwt_token_header
            }
          }
        }
      }
    }

    routes {
      path    = "/retry"
      methods = ["POST"]

      backend {
        type        = "ORACLE_FUNCTIONS_BACKEND"
        function_id = oci_functions_function.retry.id
      }

      request_policies {
        authorization {
          type          = "ANY_OF"
          allowed_scope = var.retry_scopes
        }

        body_validation {
          required        = true
          validation_mode = "ENFORCING"

          content {
            media_type      = "application/json"
            validation_type = "NONE"
          }
        }

        header_transformations {
          set_headers {
            items {
              name      = local.caller_header
              values    = ["$${request.auth[${var.caller_identity_claim}]}"]
              if_exists = "OVERWRITE"
            }
          }

          filter_headers {
            type = "BLOCK"

            items {
              name = var.jwt_token_header
            }
          }
        }
      }
    }
  }

  # The gateway needs the policy that lets it invoke the functions before the first request.
  depends_on = [oci_identity_policy.apigateway_invoke]

  lifecycle {
    precondition {
      condition     = local.jwt_discovery || var.jwt_jwks_uri != null
      error_message = "jwt_validation_type REMOTE_JWKS needs jwt_jwks_uri."
    }

    precondition {
      condition     = !local.jwt_discovery || (var.jwt_discovery_uri != null && var.jwt_introspection_client_id != null && var.jwt_introspection_client_secret_ocid != null)
      error_message = "jwt_validation_type REMOTE_DISCOVERY needs jwt_discovery_uri, jwt_introspection_client_id and jwt_introspection_client_secret_ocid."
    }
  }
}

locals {
  # Whether the gateway validates tokens through the provider's discovery document and
  # introspection endpoint rather than a JWKS.
  jwt_discovery = var.jwt_validation_type == "REMOTE_DISCOVERY"
}

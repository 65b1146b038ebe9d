# API Gateway: a public gateway in the public subnet and one deployment under /stream:
#   POST /stream/sync  -> populate   (scopes: sync_scopes)
#   POST /stream/retry -> retry      (scopes: retry_scopes, operators only)
#
# Authentication: the gateway itself validates a JWT (TOKEN_AUTHENTICATION, REMOTE_JWKS) taken
# from jwt_token_header: signature against the identity provider's JWKS, issuer, audience, expiry,
# and presence of the caller-identity claim. Usage-plan client tokens (x-api-key) are not used: OCI
# documents them as being for usage-plan reporting only, not for authentication, and they are not
# exposed to policies as a context variable, so they cannot feed the caller-identity header.
#
# Caller identity: each route sets x-datasync-caller from the validated token
# (${request.auth[<claim>]}) with if_exists = OVERWRITE, so a copy sent by the client is replaced,
# never passed on. (A BLOCK filter on the same header cannot be used: filters run after the other
# transformations and would drop the value just set, and a header name may appear in only one
# transformation policy.) The token header itself is filtered out so the functions never see it.
#
# Body limit: the deployment specification has no body-size setting. API Gateway caps a request to
# a function back end at 6 MB, and populate rejects bodies over 1 MB; the gateway additionally
# requires a JSON body on both routes.

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
          type                        = "REMOTE_JWKS"
          uri                         = var.jwt_jwks_uri
          max_cache_duration_in_hours = var.jwks_cache_hours

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
}

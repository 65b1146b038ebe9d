# IAM: one dynamic group per function (matched by the function's OCID, so no other function in the
# compartment inherits anything) and least-privilege policies:
#   - each function: only the streams, vault, key and topic it uses;
#   - the Functions service: the functions subnet and the registry;
#   - API Gateway: this gateway invoking functions in this compartment;
#   - the retry schedules: invoking the retry function (schedule.tf);
#   - each connector: reading its source stream and writing to its target;
#   - Object Storage: running the archive bucket's lifecycle rule.
# Policies are attached to policy_compartment_ocid (the tenancy by default), which must be an
# ancestor of every compartment the statements name.

resource "oci_identity_dynamic_group" "functions" {
  for_each = {
    populate = oci_functions_function.populate.id
    process  = oci_functions_function.process.id
    retry    = oci_functions_function.retry.id
  }

  compartment_id = var.tenancy_ocid
  name           = "${var.name_prefix}-fn-${each.key}"
  description    = "datasync ${each.key} function"
  matching_rule  = "ALL {resource.type = 'fnfunc', resource.id = '${each.value}'}"
  freeform_tags  = var.freeform_tags
}

locals {
  dg_populate = oci_identity_dynamic_group.functions["populate"].name
  dg_process  = oci_identity_dynamic_group.functions["process"].name
  dg_retry    = oci_identity_dynamic_group.functions["retry"].name

  in_app   = "in compartment id ${local.compartment_id}"
  in_vault = "in compartment id ${local.vault_compartment_id}"

  vault_condition       = "target.vault.id = '${oci_kms_vault.main.id}'"
  topic_condition       = "target.topic.id = '${oci_ons_notification_topic.alerts.id}'"
  failure_streams_match = "any {${local.failure_stream_conditions}}"

  # The prefix of every secret name a message may name (datasync_core::message::scoped_secret_name),
  # as an IAM pattern: /ds-*/ matches names starting with "ds-".
  secret_name_prefix    = "ds-"
  secret_name_condition = "target.secret.name = /${local.secret_name_prefix}*/"

  function_statements = [
    # populate: write envelopes to the data stream; find (list) the secrets operators stored for
    # callers, to refuse a vaultSecretName that names none. Callers' tokens are sealed with the
    # vault key (crypto.tf), never written to Vault, so populate creates and changes no secret.
    # Listing names no secret, so it cannot be narrowed by name.
    "Allow dynamic-group ${local.dg_populate} to use stream-push ${local.in_app} where target.stream.id = '${oci_streaming_stream.data.id}'",
    "Allow dynamic-group ${local.dg_populate} to read streams ${local.in_app} where target.stream.id = '${oci_streaming_stream.data.id}'",
    "Allow dynamic-group ${local.dg_populate} to inspect secrets ${local.in_vault} where ${local.vault_condition}",

    # process: read secrets; write failures to the error and dead-letter streams; publish summaries.
    "Allow dynamic-group ${local.dg_process} to read secret-bundles ${local.in_vault} where all {${local.vault_condition}, ${local.secret_name_condition}}",
    "Allow dynamic-group ${local.dg_process} to use stream-push ${local.in_app} where ${local.failure_streams_match}",
    "Allow dynamic-group ${local.dg_process} to read streams ${local.in_app} where ${local.failure_streams_match}",
    "Allow dynamic-group ${local.dg_process} to use ons-topics ${local.in_app} where ${local.topic_condition}",

    # retry: read (and commit group positions on) the error and dead-letter streams, write
    # re-routed failures back to them, read secrets, publish summaries.
    "Allow dynamic-group ${local.dg_retry} to read secret-bundles ${local.in_vault} where all {${local.vault_condition}, ${local.secret_name_condition}}",
    "Allow dynamic-group ${local.dg_retry} to use stream-pull ${local.in_app} where ${local.failure_streams_match}",
    "Allow dynamic-group ${local.dg_retry} to use stream-push ${local.in_app} where ${local.failure_streams_match}",
    "Allow dynamic-group ${local.dg_retry} to read streams ${local.in_app} where ${local.failure_streams_match}",
    "Allow dynamic-group ${local.dg_retry} to use ons-topics ${local.in_app} where ${local.topic_condition}",
  ]

  # Connector Hub, written as the Console writes them (contracts section C): each connector's
  # source stream, then its target.
  sch_principal = "request.principal.type = 'serviceconnector', request.principal.compartment.id = '${local.compartment_id}'"

  connector_statements = concat(
    [
      # data-to-process: read the data stream, invoke the process function.
      "Allow any-user to {STREAM_READ, STREAM_CONSUME} ${local.in_app} where all {${local.sch_principal}, target.stream.id = '${oci_streaming_stream.data.id}'}",
      "Allow any-user to use fn-function ${local.in_app} where all {${local.sch_principal}}",
      "Allow any-user to use fn-invocation ${local.in_app} where all {${local.sch_principal}}",
    ],
    # archive-*: read each error stream and the dead-letter stream ...
    [for s in values(local.failure_streams) : "Allow any-user to {STREAM_READ, STREAM_CONSUME} ${local.in_app} where all {${local.sch_principal}, target.stream.id = '${s.id}'}"],
    [
      # ... and write new objects to the archive bucket only: create (PutObject and multipart
      # uploads of new objects) and list; no read, overwrite or delete.
      "Allow any-user to {OBJECT_CREATE, OBJECT_INSPECT} ${local.in_app} where all {${local.sch_principal}, target.bucket.name = '${oci_objectstorage_bucket.archive.name}'}",
      # dead-letter-to-notifications: publish to the alerts topic (its source is covered above).
      "Allow any-user to use ons-topics ${local.in_app} where all {${local.sch_principal}, ${local.topic_condition}}",
    ],
  )
}

resource "oci_identity_policy" "functions" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-functions"
  description    = "datasync functions: their streams, vault, key and topic"
  statements     = local.function_statements
  freeform_tags  = var.freeform_tags
}

resource "oci_identity_policy" "faas_service" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-faas-service"
  description    = "OCI Functions service: the functions subnet and the image repositories"
  freeform_tags  = var.freeform_tags

  statements = [
    "Allow service faas to use virtual-network-family in compartment id ${local.network_compartment_id}",
    "Allow service faas to read repos in compartment id ${local.registry_compartment_id}",
  ]

  lifecycle {
    # Repositories this module does not create are wherever they were made: a `docker push` to a
    # repository that does not exist creates it in the tenancy's root compartment. The Functions
    # service may read only the registry compartment, so it must be named.
    precondition {
      condition     = var.create_container_repositories || var.registry_compartment_ocid != null
      error_message = "With create_container_repositories = false, set registry_compartment_ocid to the compartment that holds the populate, process and retry repositories (the tenancy OCID for repositories a docker push created); otherwise the Functions service cannot pull the images."
    }
  }
}

resource "oci_identity_policy" "apigateway_invoke" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-apigateway-invoke"
  description    = "The datasync API gateway may invoke the functions in the datasync compartment"
  freeform_tags  = var.freeform_tags

  # Only this gateway (its resource principal's OCID), not every gateway in the compartment.
  # With REMOTE_DISCOVERY token validation it also reads the introspection client's secret.
  statements = concat(
    ["Allow any-user to use functions-family ${local.in_app} where ALL {request.principal.type = 'ApiGateway', request.principal.id = '${oci_apigateway_gateway.main.id}'}"],
    local.jwt_discovery ? ["Allow any-user to read secret-bundles ${local.in_vault} where ALL {request.principal.type = 'ApiGateway', request.principal.id = '${oci_apigateway_gateway.main.id}', target.secret.id = '${var.jwt_introspection_client_secret_ocid}'}"] : [],
  )
}

resource "oci_identity_policy" "connectors" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-connectors"
  description    = "datasync connectors: their source streams, the process function, the archive bucket and the alerts topic"
  statements     = local.connector_statements
  freeform_tags  = var.freeform_tags
}

resource "oci_identity_policy" "object_lifecycle" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-object-lifecycle"
  description    = "Object Storage may apply the archive bucket's lifecycle rule"
  freeform_tags  = var.freeform_tags

  statements = [
    "Allow service objectstorage-${var.region} to manage object-family ${local.in_app} where target.bucket.name = '${oci_objectstorage_bucket.archive.name}'",
  ]
}

# Logging: one log group with the functions' invocation logs (their stdout/stderr: the JSON lines
# tracing writes), the API deployment's access and execution logs, and each connector's run log.

resource "oci_logging_log_group" "main" {
  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-logs"
  description    = "datasync: functions, API gateway and connector logs"
  freeform_tags  = var.freeform_tags
}

resource "oci_logging_log" "functions_invoke" {
  display_name       = "${var.name_prefix}-functions-invoke"
  log_group_id       = oci_logging_log_group.main.id
  log_type           = "SERVICE"
  is_enabled         = true
  retention_duration = var.log_retention_days
  freeform_tags      = var.freeform_tags

  configuration {
    compartment_id = local.compartment_id

    source {
      source_type = "OCISERVICE"
      service     = "functions"
      category    = "invoke"
      resource    = oci_functions_application.main.id
    }
  }
}

resource "oci_logging_log" "apigateway" {
  for_each = toset(["access", "execution"])

  display_name       = "${var.name_prefix}-apigateway-${each.key}"
  log_group_id       = oci_logging_log_group.main.id
  log_type           = "SERVICE"
  is_enabled         = true
  retention_duration = var.log_retention_days
  freeform_tags      = var.freeform_tags

  configuration {
    compartment_id = local.compartment_id

    source {
      source_type = "OCISERVICE"
      service     = "apigateway"
      category    = each.key
      resource    = oci_apigateway_deployment.main.id
    }
  }
}

resource "oci_logging_log" "connectors" {
  for_each = local.connector_ids

  display_name       = "${var.name_prefix}-connector-${each.key}"
  log_group_id       = oci_logging_log_group.main.id
  log_type           = "SERVICE"
  is_enabled         = true
  retention_duration = var.log_retention_days
  freeform_tags      = var.freeform_tags

  configuration {
    compartment_id = local.compartment_id

    source {
      source_type = "OCISERVICE"
      service     = "och"
      category    = "runlog"
      resource    = each.value
    }
  }
}

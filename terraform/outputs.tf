output "sync_url" {
  description = "POST endpoint for source applications (populate)."
  value       = "${oci_apigateway_deployment.main.endpoint}/sync"
}

output "retry_url" {
  description = "POST endpoint for operators (retry)."
  value       = "${oci_apigateway_deployment.main.endpoint}/retry"
}

output "stream_ocids" {
  description = "OCIDs of the data stream, each error stream and the dead-letter stream."
  value = {
    data                = oci_streaming_stream.data.id
    service_unavailable = oci_streaming_stream.service_unavailable_errors.id
    internal_server     = oci_streaming_stream.internal_server_errors.id
    unrecoverable       = oci_streaming_stream.unrecoverable_errors.id
    default             = oci_streaming_stream.default_errors.id
    dead_letter         = oci_streaming_stream.dead_letter.id
  }
}

output "notification_topic_ocid" {
  description = "OCID of the alerts topic."
  value       = oci_ons_notification_topic.alerts.id
}

output "archive_bucket" {
  description = "Namespace and name of the failure archive bucket."
  value = {
    namespace = local.object_storage_namespace
    name      = oci_objectstorage_bucket.archive.name
  }
}

output "function_ocids" {
  description = "OCIDs of the three functions."
  value = {
    populate = oci_functions_function.populate.id
    process  = oci_functions_function.process.id
    retry    = oci_functions_function.retry.id
  }
}

output "vault" {
  description = "OCIDs of the vault and of the AES key populate creates secrets with."
  value = {
    vault_ocid = oci_kms_vault.main.id
    key_ocid   = oci_kms_key.secrets.id
  }
}

output "container_repositories" {
  description = "Repositories created for the images (empty when create_container_repositories is false)."
  value       = { for name, repo in oci_artifacts_container_repository.functions : name => repo.display_name }
}

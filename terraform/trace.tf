# `datasync trace --oci`: operators read the functions' trace lines (one JSON line per
# acceptance, attempt, re-route, outcome and replay, on the functions' stdout) from the invoke
# log in logging.tf, with SearchLogs signed by their own API key. Grant the operators' group
# `Allow group <operators> to read log-content in compartment id <compartment>` (optionally
# `where target.loggroup.id = '<log_group_id>'`); the functions need nothing more (OCI Functions
# writes their invoke log itself). See docs/trace.md.

output "functions_invoke_log_id" {
  description = "OCID of the functions' invoke log: datasync trace --oci --log-id <this> ID"
  value       = oci_logging_log.functions_invoke.id
}

output "log_group_id" {
  description = "OCID of the datasync log group (for an operator policy limited with where target.loggroup.id = '<this>')"
  value       = oci_logging_log_group.main.id
}

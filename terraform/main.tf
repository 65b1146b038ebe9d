# Shared lookups and names used by the service files.

data "oci_objectstorage_namespace" "this" {
  compartment_id = var.tenancy_ocid
}

# "All <region> Services In Oracle Services Network": the service gateway's target, so the functions
# reach Streaming, Vault, Notifications, Object Storage and the registry without the internet.
data "oci_core_services" "all" {
  filter {
    name   = "name"
    values = ["All .* Services In Oracle Services Network"]
    regex  = true
  }
}

locals {
  compartment_id           = var.compartment_ocid
  network_compartment_id   = coalesce(var.network_compartment_ocid, var.compartment_ocid)
  vault_compartment_id     = coalesce(var.vault_compartment_ocid, var.compartment_ocid)
  registry_compartment_id  = coalesce(var.registry_compartment_ocid, var.compartment_ocid)
  policy_compartment_id    = coalesce(var.policy_compartment_ocid, var.tenancy_ocid)
  object_storage_namespace = data.oci_objectstorage_namespace.this.namespace
  oci_services             = data.oci_core_services.all.services[0]

  # The header the gateway sets from the validated token; the functions read it as
  # Fn-Http-H-X-Datasync-Caller. Any copy a client sends is overwritten (see apigateway.tf).
  caller_header = "x-datasync-caller"

  # Function names, as in functions/<name>.
  function_names = ["populate", "process", "retry"]
}

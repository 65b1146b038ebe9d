# Vault and the AES master key populate encrypts callers' target tokens with. The functions get the
# key's OCID (vault_key_ocid), not a key version's: CreateSecret takes a key id, and no
# oci_kms_key_version resource is declared here, so an apply never rotates the key behind your back.
# Deleting a vault or key is only ever scheduled (7-30 days), see README.md "Tear down".

resource "oci_kms_vault" "main" {
  compartment_id = local.vault_compartment_id
  display_name   = "${var.name_prefix}-vault"
  vault_type     = var.vault_type
  freeform_tags  = var.freeform_tags
}

resource "oci_kms_key" "secrets" {
  compartment_id      = local.vault_compartment_id
  display_name        = "${var.name_prefix}-secrets-key"
  management_endpoint = oci_kms_vault.main.management_endpoint
  protection_mode     = var.key_protection_mode
  freeform_tags       = var.freeform_tags

  key_shape {
    algorithm = "AES"
    length    = 32
  }
}

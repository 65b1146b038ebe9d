# Callers' tokens travel sealed with the vault key (docs/secrets.md): populate may only Encrypt
# with it, process and retry may only Decrypt, and nothing else may use it for either. The
# functions get the vault's crypto endpoint (vault_crypto_endpoint in functions.tf), where
# Encrypt and Decrypt are served.

locals {
  key_condition = "target.key.id = '${oci_kms_key.secrets.id}'"

  token_sealing_statements = [
    "Allow dynamic-group ${local.dg_populate} to use keys ${local.in_vault} where all {${local.key_condition}, request.permission = 'KEY_ENCRYPT'}",
    "Allow dynamic-group ${local.dg_process} to use keys ${local.in_vault} where all {${local.key_condition}, request.permission = 'KEY_DECRYPT'}",
    "Allow dynamic-group ${local.dg_retry} to use keys ${local.in_vault} where all {${local.key_condition}, request.permission = 'KEY_DECRYPT'}",
  ]
}

resource "oci_identity_policy" "token_sealing" {
  compartment_id = local.policy_compartment_id
  name           = "${var.name_prefix}-token-sealing"
  description    = "datasync functions: populate seals callers' tokens with the vault key, process and retry open them"
  statements     = local.token_sealing_statements
  freeform_tags  = var.freeform_tags
}

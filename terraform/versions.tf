# Terraform and provider versions. No module or provider is downloaded by the CI checks; `terraform init`
# fetches oracle/oci from the registry when you deploy.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    oci = {
      source = "oracle/oci"
      # The argument names here are checked against the provider 8.28 schema
      # (tests/data/oci-terraform-schema.json, by tests/terraform_schema). 9.x deprecates the
      # top-level `image` and `image_digest` of oci_functions_function in favour of
      # `source_details`, so stay on 8.x.
      version = ">= 8.28.0, < 9.0.0"
    }
  }
}

# Authentication comes from the OCI CLI configuration (~/.oci/config, DEFAULT profile) or from the
# usual TF_VAR_/OCI_ environment variables; nothing secret lives in this directory.
provider "oci" {
  region              = var.region
  config_file_profile = var.oci_config_profile
}

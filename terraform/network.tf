# Network: one VCN, a public subnet for the API gateway (internet gateway, TCP 443 in), a private
# subnet for the functions (NAT gateway to reach target APIs, service gateway for OCI services and
# the registry). Traffic rules live in NSGs; the VCN's default security list is emptied, so a subnet
# opens nothing that an NSG does not.

resource "oci_core_vcn" "main" {
  compartment_id = local.network_compartment_id
  display_name   = "${var.name_prefix}-vcn"
  cidr_blocks    = [var.vcn_cidr]
  dns_label      = substr(replace(var.name_prefix, "-", ""), 0, 15)
  freeform_tags  = var.freeform_tags
}

# The default security list allows SSH from anywhere; take it over and leave it empty.
resource "oci_core_default_security_list" "main" {
  manage_default_resource_id = oci_core_vcn.main.default_security_list_id
  compartment_id             = local.network_compartment_id
  display_name               = "${var.name_prefix}-default-deny"
  freeform_tags              = var.freeform_tags
}

resource "oci_core_internet_gateway" "main" {
  compartment_id = local.network_compartment_id
  vcn_id         = oci_core_vcn.main.id
  display_name   = "${var.name_prefix}-igw"
  enabled        = true
  freeform_tags  = var.freeform_tags
}

resource "oci_core_nat_gateway" "main" {
  compartment_id = local.network_compartment_id
  vcn_id         = oci_core_vcn.main.id
  display_name   = "${var.name_prefix}-nat"
  freeform_tags  = var.freeform_tags
}

resource "oci_core_service_gateway" "main" {
  compartment_id = local.network_compartment_id
  vcn_id         = oci_core_vcn.main.id
  display_name   = "${var.name_prefix}-sgw"
  freeform_tags  = var.freeform_tags

  services {
    service_id = local.oci_services.id
  }
}

resource "oci_core_route_table" "gateway" {
  compartment_id = local.network_compartment_id
  vcn_id         = oci_core_vcn.main.id
  display_name   = "${var.name_prefix}-gateway-rt"
  freeform_tags  = var.freeform_tags

  route_rules {
    description       = "internet (callers in, JWKS and OCI service endpoints out)"
    destination       = "0.0.0.0/0"
    destination_type  = "CIDR_BLOCK"
    network_entity_id = oci_core_internet_gateway.main.id
  }
}

resource "oci_core_route_table" "functions" {
  compartment_id = local.network_compartment_id
  vcn_id         = oci_core_vcn.main.id
  display_name   = "${var.name_prefix}-functions-rt"
  freeform_tags  = var.freeform_tags

  route_rules {
    description       = "OCI services and the registry, without the internet"
    destination       = local.oci_services.cidr_block
    destination_type  = "SERVICE_CIDR_BLOCK"
    network_entity_id = oci_core_service_gateway.main.id
  }

  route_rules {
    description       = "target APIs on the internet"
    destination       = "0.0.0.0/0"
    destination_type  = "CIDR_BLOCK"
    network_entity_id = oci_core_nat_gateway.main.id
  }
}

resource "oci_core_subnet" "gateway" {
  compartment_id             = local.network_compartment_id
  vcn_id                     = oci_core_vcn.main.id
  display_name               = "${var.name_prefix}-gateway"
  cidr_block                 = var.gateway_subnet_cidr
  dns_label                  = "gateway"
  prohibit_public_ip_on_vnic = false
  route_table_id             = oci_core_route_table.gateway.id
  security_list_ids          = [oci_core_default_security_list.main.id]
  freeform_tags              = var.freeform_tags
}

resource "oci_core_subnet" "functions" {
  compartment_id             = local.network_compartment_id
  vcn_id                     = oci_core_vcn.main.id
  display_name               = "${var.name_prefix}-functions"
  cidr_block                 = var.functions_subnet_cidr
  dns_label                  = "functions"
  prohibit_public_ip_on_vnic = true
  route_table_id             = oci_core_route_table.functions.id
  security_list_ids          = [oci_core_default_security_list.main.id]
  freeform_tags              = var.freeform_tags
}

# --- NSG of the API gateway: HTTPS in from the allowed sources; HTTPS out (functions invoke
# endpoint, the identity provider's JWKS). Nothing else.

resource "oci_core_network_security_group" "gateway" {
  compartment_id = local.network_compartment_id
  vcn_id         = oci_core_vcn.main.id
  display_name   = "${var.name_prefix}-gateway-nsg"
  freeform_tags  = var.freeform_tags
}

resource "oci_core_network_security_group_security_rule" "gateway_https_in" {
  for_each = toset(var.api_allowed_cidrs)

  network_security_group_id = oci_core_network_security_group.gateway.id
  description               = "HTTPS from API callers"
  direction                 = "INGRESS"
  protocol                  = "6"
  source                    = each.value
  source_type               = "CIDR_BLOCK"
  stateless                 = false

  tcp_options {
    destination_port_range {
      min = 443
      max = 443
    }
  }
}

resource "oci_core_network_security_group_security_rule" "gateway_https_out" {
  network_security_group_id = oci_core_network_security_group.gateway.id
  description               = "HTTPS to the Functions invoke endpoint and the JWKS URI"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination               = "0.0.0.0/0"
  destination_type          = "CIDR_BLOCK"
  stateless                 = false

  tcp_options {
    destination_port_range {
      min = 443
      max = 443
    }
  }
}

# --- NSG of the functions: no ingress at all (the Functions service invokes them out of band);
# HTTPS out to OCI services through the service gateway, the target ports out through NAT, and DNS
# to the VCN resolver.

resource "oci_core_network_security_group" "functions" {
  compartment_id = local.network_compartment_id
  vcn_id         = oci_core_vcn.main.id
  display_name   = "${var.name_prefix}-functions-nsg"
  freeform_tags  = var.freeform_tags
}

resource "oci_core_network_security_group_security_rule" "functions_oci_services_out" {
  network_security_group_id = oci_core_network_security_group.functions.id
  description               = "HTTPS to OCI services (Streaming, Vault, Notifications, registry)"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination               = local.oci_services.cidr_block
  destination_type          = "SERVICE_CIDR_BLOCK"
  stateless                 = false

  tcp_options {
    destination_port_range {
      min = 443
      max = 443
    }
  }
}

resource "oci_core_network_security_group_security_rule" "functions_targets_out" {
  for_each = toset([for p in var.target_egress_ports : tostring(p)])

  network_security_group_id = oci_core_network_security_group.functions.id
  description               = "target APIs on TCP ${each.value}"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination               = "0.0.0.0/0"
  destination_type          = "CIDR_BLOCK"
  stateless                 = false

  tcp_options {
    destination_port_range {
      min = tonumber(each.value)
      max = tonumber(each.value)
    }
  }
}

resource "oci_core_network_security_group_security_rule" "functions_dns_udp_out" {
  network_security_group_id = oci_core_network_security_group.functions.id
  description               = "DNS to the VCN resolver"
  direction                 = "EGRESS"
  protocol                  = "17"
  destination               = "169.254.169.254/32"
  destination_type          = "CIDR_BLOCK"
  stateless                 = false

  udp_options {
    destination_port_range {
      min = 53
      max = 53
    }
  }
}

resource "oci_core_network_security_group_security_rule" "functions_dns_tcp_out" {
  network_security_group_id = oci_core_network_security_group.functions.id
  description               = "DNS over TCP to the VCN resolver"
  direction                 = "EGRESS"
  protocol                  = "6"
  destination               = "169.254.169.254/32"
  destination_type          = "CIDR_BLOCK"
  stateless                 = false

  tcp_options {
    destination_port_range {
      min = 53
      max = 53
    }
  }
}

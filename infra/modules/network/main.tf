# The private network every Plume component lives on: the Kapsule nodes, the managed
# PostgreSQL (when used) and a public gateway that gives the nodes their way out (the model
# providers, the object storage) without a public address of their own.

resource "scaleway_vpc" "this" {
  name           = "${var.name}-vpc"
  region         = var.region
  enable_routing = true
  tags           = var.tags
}

resource "scaleway_vpc_private_network" "this" {
  name   = "${var.name}-pn"
  vpc_id = scaleway_vpc.this.id
  region = var.region
  tags   = var.tags

  ipv4_subnet {
    subnet = var.ipv4_subnet
  }
}

# Egress for nodes without public addresses (masquerade), and nothing inward: no port is
# forwarded, SSH bastion off.
resource "scaleway_vpc_public_gateway_ip" "this" {
  zone = var.gateway_zone
  tags = var.tags
}

resource "scaleway_vpc_public_gateway" "this" {
  name            = "${var.name}-gw"
  type            = var.gateway_type
  zone            = var.gateway_zone
  ip_id           = scaleway_vpc_public_gateway_ip.this.id
  bastion_enabled = false
  tags            = var.tags
}

resource "scaleway_vpc_gateway_network" "this" {
  gateway_id         = scaleway_vpc_public_gateway.this.id
  private_network_id = scaleway_vpc_private_network.this.id
  enable_masquerade  = true
  zone               = var.gateway_zone

  ipam_config {
    push_default_route = true
  }
}

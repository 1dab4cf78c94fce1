# Plume in production: a private network, a Kapsule cluster with a pool in each of two
# zones of Paris, PostgreSQL (CloudNativePG in the cluster by default, or managed RDB), and
# the buckets for backups and exports. Then the Helm chart (deploy/helm/plume) is installed
# in the cluster: docs/operations.md.

locals {
  name = "plume-${var.environment}"
  tags = ["plume", var.environment, "seine-maritime-numerique"]
}

module "network" {
  source = "../../modules/network"

  name         = local.name
  region       = var.region
  gateway_zone = "${var.region}-1"
  ipv4_subnet  = var.private_subnet
  tags         = local.tags
}

module "kubernetes" {
  source = "../../modules/kubernetes"

  name               = local.name
  region             = var.region
  zones              = var.zones
  kubernetes_version = var.kubernetes_version
  private_network_id = module.network.private_network_id
  node_type          = var.node_type
  min_nodes_per_zone = var.min_nodes_per_zone
  max_nodes_per_zone = var.max_nodes_per_zone
  tags               = local.tags
}

module "database" {
  source = "../../modules/database"

  mode               = var.database_mode
  name               = "${local.name}-pg"
  region             = var.region
  private_network_id = module.network.private_network_id
  owner_password     = var.database_owner_password
  tags               = local.tags
}

module "storage" {
  source = "../../modules/storage"

  name   = "smn-${local.name}"
  region = var.region
  tags   = local.tags
}

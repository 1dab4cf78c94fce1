# Kapsule, Scaleway's managed Kubernetes: the control plane, and one node pool per zone so
# that Plume's pods (topologySpreadConstraints) and CloudNativePG's instances (one per zone)
# survive the loss of a zone. Nodes have no public address: they leave through the network
# module's public gateway.

resource "scaleway_k8s_cluster" "this" {
  name                        = var.name
  type                        = var.cluster_type
  version                     = var.kubernetes_version
  cni                         = "cilium"
  region                      = var.region
  private_network_id          = var.private_network_id
  delete_additional_resources = false
  tags                        = var.tags

  # Patch releases applied by Scaleway in a weekly window; minor versions are raised here,
  # on purpose, after the chart is validated for them (tests/deploy, KUBERNETES_VERSION).
  auto_upgrade {
    enable                        = true
    maintenance_window_start_hour = var.maintenance_hour
    maintenance_window_day        = var.maintenance_day
  }

  autoscaler_config {
    disable_scale_down              = false
    scale_down_delay_after_add      = "10m"
    scale_down_unneeded_time        = "10m"
    estimator                       = "binpacking"
    expander                        = "least_waste"
    ignore_daemonsets_utilization   = true
    balance_similar_node_groups     = true
    expendable_pods_priority_cutoff = -10
  }
}

resource "scaleway_k8s_pool" "zone" {
  for_each = toset(var.zones)

  cluster_id             = scaleway_k8s_cluster.this.id
  name                   = "${var.name}-${each.key}"
  zone                   = each.key
  node_type              = var.node_type
  size                   = var.min_nodes_per_zone
  min_size               = var.min_nodes_per_zone
  max_size               = var.max_nodes_per_zone
  autoscaling            = true
  autohealing            = true
  public_ip_disabled     = true
  container_runtime      = "containerd"
  root_volume_type       = "sbs_5k"
  root_volume_size_in_gb = 40
  tags                   = var.tags

  # Pool upgrades replace nodes one at a time; the chart's PodDisruptionBudget and
  # CloudNativePG's own keep the service and the database up meanwhile.
  upgrade_policy {
    max_surge       = 1
    max_unavailable = 0
  }
}

variable "name" {
  description = "The cluster's name."
  type        = string
}

variable "region" {
  description = "Scaleway region."
  type        = string
  default     = "fr-par"
}

variable "zones" {
  description = "One node pool per zone."
  type        = list(string)
  default     = ["fr-par-1", "fr-par-2"]
}

variable "cluster_type" {
  description = "kapsule (shared control plane) or a dedicated offer, e.g. kapsule-dedicated-4."
  type        = string
  default     = "kapsule"
}

variable "kubernetes_version" {
  description = "Kubernetes minor version; the chart is validated for it (tests/deploy/chart.py, KUBERNETES_VERSION)."
  type        = string
  default     = "1.33"
}

variable "private_network_id" {
  description = "The private network the nodes join (network module)."
  type        = string
}

variable "node_type" {
  description = "Node offer: 4 vCPU, 16 GiB holds several Plume pods (384 MiB requested each) and a PostgreSQL instance."
  type        = string
  default     = "PRO2-S"
}

variable "min_nodes_per_zone" {
  description = "Nodes per zone at least."
  type        = number
  default     = 1
}

variable "max_nodes_per_zone" {
  description = "Nodes per zone at most (the autoscaler)."
  type        = number
  default     = 3
}

variable "maintenance_hour" {
  description = "Hour (UTC) the weekly patch window opens."
  type        = number
  default     = 3
}

variable "maintenance_day" {
  description = "Day of the weekly patch window."
  type        = string
  default     = "tuesday"
}

variable "tags" {
  description = "Tags on every resource."
  type        = list(string)
  default     = []
}

variable "environment" {
  description = "Environment name, in every resource's name."
  type        = string
  default     = "production"
}

variable "region" {
  description = "Scaleway region: Paris."
  type        = string
  default     = "fr-par"
}

variable "zones" {
  description = "Zones with a node pool each."
  type        = list(string)
  default     = ["fr-par-1", "fr-par-2"]
}

variable "private_subnet" {
  description = "The private network's range (the chart's networkPolicy.externalDatabaseCidr with RDB)."
  type        = string
  default     = "172.16.0.0/22"
}

variable "kubernetes_version" {
  description = "Kapsule's Kubernetes minor version: the one the chart is validated for."
  type        = string
  default     = "1.33"
}

variable "node_type" {
  description = "Node offer of the pools."
  type        = string
  default     = "PRO2-S"
}

variable "min_nodes_per_zone" {
  description = "Nodes per zone at least: 2 zones x 1 node hold the 2 API pods and 3 PostgreSQL instances at rest."
  type        = number
  default     = 1
}

variable "max_nodes_per_zone" {
  description = "Nodes per zone at most."
  type        = number
  default     = 3
}

variable "database_mode" {
  description = "cloudnativepg (the chart's postgresql.mode=cloudnativepg) or managed (RDB; the chart's postgresql.mode=external)."
  type        = string
  default     = "cloudnativepg"
}

variable "database_owner_password" {
  description = "RDB's administrator (plume_owner) password with database_mode = managed: TF_VAR_database_owner_password."
  type        = string
  default     = null
  sensitive   = true
}

variable "name" {
  description = "Prefix of every resource's name, e.g. plume-production."
  type        = string
}

variable "region" {
  description = "Scaleway region (fr-par: Paris)."
  type        = string
  default     = "fr-par"
}

variable "gateway_zone" {
  description = "Zone of the public gateway (one zone of the region)."
  type        = string
  default     = "fr-par-1"
}

variable "gateway_type" {
  description = "Public gateway offer."
  type        = string
  default     = "VPC-GW-S"
}

variable "ipv4_subnet" {
  description = "The private network's range: the chart's networkPolicy.externalDatabaseCidr must cover the managed database's address in it."
  type        = string
  default     = "172.16.0.0/22"
}

variable "tags" {
  description = "Tags on every resource."
  type        = list(string)
  default     = []
}

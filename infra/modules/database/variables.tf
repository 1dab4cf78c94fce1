variable "mode" {
  description = "managed: Scaleway RDB; cloudnativepg: PostgreSQL in Kapsule by the Helm chart (nothing made here)."
  type        = string
  default     = "cloudnativepg"

  validation {
    condition     = contains(["managed", "cloudnativepg"], var.mode)
    error_message = "mode is managed or cloudnativepg."
  }
}

variable "name" {
  description = "The instance's name."
  type        = string
}

variable "region" {
  description = "Scaleway region."
  type        = string
  default     = "fr-par"
}

variable "engine" {
  description = "PostgreSQL engine version (15 or newer: the owner owns the schema public)."
  type        = string
  default     = "PostgreSQL-16"
}

variable "node_type" {
  description = "RDB node offer."
  type        = string
  default     = "DB-PRO2-XXS"
}

variable "volume_size_in_gb" {
  description = "Storage (GB)."
  type        = number
  default     = 50
}

variable "private_network_id" {
  description = "The private network the instance is reached on (network module)."
  type        = string
}

variable "owner_user" {
  description = "The administrator made with the instance: Plume's owner role."
  type        = string
  default     = "plume_owner"
}

variable "owner_password" {
  description = "Its password: TF_VAR_owner_password, never in a file. Unused with cloudnativepg."
  type        = string
  default     = null
  sensitive   = true
}

variable "tags" {
  description = "Tags on every resource."
  type        = list(string)
  default     = []
}

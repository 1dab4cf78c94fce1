variable "name" {
  description = "Prefix of the buckets' names (globally unique at Scaleway)."
  type        = string
}

variable "region" {
  description = "Scaleway region."
  type        = string
  default     = "fr-par"
}

variable "buckets" {
  description = "Buckets by suffix: how long objects live, and their previous versions. Backups outlive CloudNativePG's retentionPolicy (30 days) by a margin."
  type = map(object({
    expiration_days = number
    noncurrent_days = number
  }))
  default = {
    "pg-backups" = { expiration_days = 45, noncurrent_days = 7 }
    "exports"    = { expiration_days = 365, noncurrent_days = 30 }
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = list(string)
  default     = []
}

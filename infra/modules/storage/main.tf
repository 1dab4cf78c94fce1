# Object storage buckets: PostgreSQL backups (CloudNativePG's barman-cloud WAL and base
# backups, or dumps beside RDB's own), and exports (audit chains and records of processing
# handed to the communes). Private, versioned, encrypted by default with a Key Manager key,
# old versions expired by lifecycle rules.

resource "scaleway_key_manager_key" "buckets" {
  name        = "${var.name}-buckets"
  region      = var.region
  usage       = "symmetric_encryption"
  algorithm   = "aes_256_gcm"
  description = "Server-side encryption of Plume's buckets"
  unprotected = false
  tags        = var.tags

  rotation_policy {
    rotation_period = "8760h"
  }
}

resource "scaleway_object_bucket" "this" {
  for_each = var.buckets

  name   = "${var.name}-${each.key}"
  region = var.region
  tags   = { for tag in var.tags : tag => "true" }

  # Versioning: an overwritten or deleted backup can be recovered until its version expires.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    id      = "expire-old-versions"
    enabled = true

    expiration {
      days = each.value.expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = each.value.noncurrent_days
    }

    abort_incomplete_multipart_upload_days = 2
  }
}

resource "scaleway_object_bucket_acl" "this" {
  for_each = scaleway_object_bucket.this

  bucket = each.value.id
  region = var.region
  acl    = "private"
}

resource "scaleway_object_bucket_server_side_encryption_configuration" "this" {
  for_each = scaleway_object_bucket.this

  bucket = each.value.name
  region = var.region

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = scaleway_key_manager_key.buckets.id
    }
  }
}

# PostgreSQL for Plume: either Scaleway's managed PostgreSQL (RDB, mode "managed"), a
# highly-available pair on the private network only, or nothing here (mode "cloudnativepg":
# the Helm chart runs the cluster in Kapsule; this module then makes nothing, and the
# storage module's backups bucket receives its WAL and base backups).

locals {
  managed = var.mode == "managed"
}

resource "scaleway_rdb_instance" "this" {
  count = local.managed ? 1 : 0

  name              = var.name
  region            = var.region
  engine            = var.engine
  node_type         = var.node_type
  is_ha_cluster     = true
  volume_type       = "sbs_15k"
  volume_size_in_gb = var.volume_size_in_gb
  # Encrypted volumes and snapshots (the provider's own keys).
  encryption_at_rest = true
  tags               = var.tags

  # Daily automated backups kept 14 days, in another region than the instance's.
  disable_backup            = false
  backup_schedule_frequency = 24
  backup_schedule_retention = 14
  backup_same_region        = false

  # The administrator the instance is made with: Plume's owner role (plume_owner), which
  # runs `plume migrate` (docs/operations.md, "Production"). Its password is given by the
  # operator (TF_VAR_owner_password, from the team's vault), never in a file; it is in the
  # state, which is why the state bucket is private, versioned and encrypted.
  user_name = var.owner_user
  password  = var.owner_password

  # The private network only: without a load_balancer block there is no public endpoint.
  private_network {
    pn_id       = var.private_network_id
    enable_ipam = true
  }

  settings = {
    # Plume sets its own statement and idle timeouts per connection; these are a floor for
    # sessions that do not (psql by hand).
    idle_in_transaction_session_timeout = "300000"
    log_min_duration_statement          = "1000"
  }

  lifecycle {
    # Never destroyed by a plan that renames it: the tenants' data.
    prevent_destroy = true

    precondition {
      condition     = var.owner_password != null
      error_message = "owner_password is required with mode = \"managed\" (TF_VAR_owner_password)."
    }
  }
}

# Exact versions of Terraform and of the Scaleway provider; `terraform init` records the
# provider's checksums in .terraform.lock.hcl, to commit after the first init (it could not
# be made where this was written: providers cannot be downloaded there).
terraform {
  required_version = "= 1.11.4"

  required_providers {
    scaleway = {
      source  = "scaleway/scaleway"
      version = "= 2.79.0"
    }
  }

  # The state, in a Scaleway bucket made once by hand (docs/operations.md, "Infrastructure"):
  # private, versioned. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (a
  # Scaleway API key), never from this file.
  backend "s3" {
    bucket = "smn-plume-terraform-state"
    key    = "production/terraform.tfstate"
    region = "fr-par"
    endpoints = {
      s3 = "https://s3.fr-par.scw.cloud"
    }
    # Scaleway is not AWS: no STS, no region list, no account id, no checksums.
    skip_credentials_validation = true
    skip_region_validation      = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_s3_checksum            = true
  }
}

# SCW_ACCESS_KEY, SCW_SECRET_KEY, SCW_DEFAULT_PROJECT_ID from the environment.
provider "scaleway" {
  region = var.region
  zone   = "${var.region}-1"
}

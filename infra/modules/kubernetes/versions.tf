# Exact versions: the environment pins the same ones (a module may not ask for another).
terraform {
  required_version = "= 1.11.4"
  required_providers {
    scaleway = {
      source  = "scaleway/scaleway"
      version = "= 2.79.0"
    }
  }
}

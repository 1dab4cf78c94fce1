output "cluster_id" {
  description = "The Kapsule cluster."
  value       = module.kubernetes.cluster_id
}

output "kubeconfig" {
  description = "terraform output -raw kubeconfig > ~/.kube/plume-production (mode 0600)."
  value       = module.kubernetes.kubeconfig
  sensitive   = true
}

output "egress_ip" {
  description = "The address providers see Plume's requests come from."
  value       = module.network.egress_ip
}

output "database_endpoint" {
  description = "The managed database's private host:port (null with CloudNativePG)."
  value       = module.database.private_endpoint
}

output "buckets" {
  description = "Bucket names: pg-backups for the chart's backup.destinationPath."
  value       = module.storage.bucket_names
}

output "s3_endpoint" {
  description = "The chart's backup.endpointURL."
  value       = module.storage.s3_endpoint
}

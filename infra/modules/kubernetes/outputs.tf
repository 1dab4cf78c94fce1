output "cluster_id" {
  description = "The Kapsule cluster."
  value       = scaleway_k8s_cluster.this.id
}

output "apiserver_url" {
  description = "The Kubernetes API's address."
  value       = scaleway_k8s_cluster.this.apiserver_url
}

output "kubeconfig" {
  description = "An administrator's kubeconfig: keep it out of logs (terraform output -raw kubeconfig > …)."
  value       = scaleway_k8s_cluster.this.kubeconfig[0].config_file
  sensitive   = true
}

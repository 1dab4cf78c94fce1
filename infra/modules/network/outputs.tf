output "vpc_id" {
  description = "The VPC."
  value       = scaleway_vpc.this.id
}

output "private_network_id" {
  description = "The private network the cluster and the database join."
  value       = scaleway_vpc_private_network.this.id
}

output "ipv4_subnet" {
  description = "The private network's range."
  value       = var.ipv4_subnet
}

output "egress_ip" {
  description = "The nodes' address on the Internet: give it to providers that filter by source."
  value       = scaleway_vpc_public_gateway_ip.this.address
}

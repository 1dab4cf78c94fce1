output "private_endpoint" {
  description = "host:port of the managed instance on the private network (null with cloudnativepg): the host of the URLs in the chart's database Secret."
  value = (
    length(scaleway_rdb_instance.this) == 1
    ? "${scaleway_rdb_instance.this[0].private_network[0].ip}:${scaleway_rdb_instance.this[0].private_network[0].port}"
    : null
  )
}

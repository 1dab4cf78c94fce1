output "bucket_names" {
  description = "Bucket names by suffix: pg-backups is the chart's postgresql.cloudnativepg.backup.destinationPath (s3://<name>/)."
  value       = { for suffix, bucket in scaleway_object_bucket.this : suffix => bucket.name }
}

output "s3_endpoint" {
  description = "The S3 endpoint of the region: the chart's backup.endpointURL."
  value       = "https://s3.${var.region}.scw.cloud"
}

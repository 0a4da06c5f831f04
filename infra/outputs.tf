output "lb_ip" {
  description = "Global IPv4 address of the HTTPS load balancer: the A record of var.domain."
  value       = google_compute_global_address.lb.address
}

output "lb_url" {
  description = "Public base URL of the API (works once DNS points at lb_ip and the certificate is ACTIVE)."
  value       = "https://${var.domain}"
}

output "service_names" {
  description = "Cloud Run service name per function."
  value       = { for f, s in google_cloud_run_v2_service.fn : f => s.name }
}

output "service_urls" {
  description = "run.app URL per function. Public services only accept traffic through the load balancer; the worker only from Pub/Sub."
  value       = { for f, s in google_cloud_run_v2_service.fn : f => s.uri }
}

output "migrate_job_name" {
  description = "Cloud Run job that applies database migrations."
  value       = google_cloud_run_v2_job.migrate.name
}

output "maintain_job_name" {
  description = "Cloud Run job that runs database maintenance (migrate maintain: partitions ahead, retention drops); run it by hand with gcloud run jobs execute."
  value       = google_cloud_run_v2_job.maintain.name
}

output "maintenance_scheduler_job" {
  description = "Cloud Scheduler job that runs the maintain job on maintenance_schedule (gcloud scheduler jobs pause/resume/run)."
  value       = google_cloud_scheduler_job.maintain.name
}

output "events_topic" {
  description = "Pub/Sub topic events publishes to in pubsub ingest mode (the PUBSUB_TOPIC value)."
  value       = google_pubsub_topic.events.id
}

output "dead_letter_topic" {
  description = "Dead-letter topic for events the worker failed max_delivery_attempts times."
  value       = google_pubsub_topic.dead_letter.id
}

output "push_subscription" {
  description = "Push subscription delivering events to the worker."
  value       = google_pubsub_subscription.worker_push.name
}

output "dead_letter_subscription" {
  description = "Pull subscription for inspecting dead-lettered events."
  value       = google_pubsub_subscription.dead_letter_inspect.name
}

output "artifact_registry_url" {
  description = "Docker repository URL; images are <url>/<function>:<commit sha>."
  value       = local.artifact_registry_url
}

output "sql_instance_connection_name" {
  description = "Cloud SQL connection name (PROJECT:REGION:INSTANCE), for the Cloud SQL Auth Proxy (cloud-sql-proxy --private-ip) from a host inside the VPC. The functions do not use it."
  value       = google_sql_database_instance.main.connection_name
}

output "sql_private_ip" {
  description = "Private IP of the Cloud SQL instance: the host in DATABASE_URL (port 5432, TLS verified against the cloudsql_ca_secret bundle)."
  value       = google_sql_database_instance.main.private_ip_address
}

output "cloudsql_ca_secret" {
  description = "Secret holding the Cloud SQL server CA bundle (PEM) that every function mounts at /etc/cloudsql-ca/server-ca.pem (versions written by Terraform)."
  value       = google_secret_manager_secret.cloudsql_ca.secret_id
}

output "tenant_keys_secret" {
  description = "Secret to add tenant key versions to (gcloud secrets versions add)."
  value       = google_secret_manager_secret.tenant_keys.secret_id
}

output "database_url_secret" {
  description = "Secret holding DATABASE_URL: postgres://USER:PASSWORD@PRIVATE_IP:5432/DB?sslmode=verify-ca&sslrootcert=/etc/cloudsql-ca/server-ca.pem (versions written by Terraform)."
  value       = google_secret_manager_secret.database_url.secret_id
}

output "build_service_account" {
  description = "Service account Cloud Build runs as (triggers, and manual gcloud builds submit)."
  value       = google_service_account.build.email
}

output "build_sources_bucket" {
  description = "Bucket for source archives of manual gcloud builds submit runs."
  value       = google_storage_bucket.build_sources.name
}

output "build_triggers" {
  description = "Cloud Build trigger name per function."
  value       = { for f, t in google_cloudbuild_trigger.fn : f => t.name }
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of the service (dashboards/service.json) in the Google Cloud console."
  value       = local.dashboard_url
}

output "log_metric_types" {
  description = "Cloud Monitoring metric type of each log-based metric (log_metrics.tf), for charts and alert policies of your own."
  value       = local.log_metric_types
}

output "trace_explorer_url" {
  description = "Cloud Trace's Trace Explorer for the project, where the functions' spans appear (when tracing_enabled)."
  value       = "https://console.cloud.google.com/traces/explorer?project=${var.project_id}"
}

output "warehouse_dataset" {
  description = "BigQuery dataset of the warehouse export (project:dataset), or null while it is off (docs/warehouse.md)."
  value       = one(google_bigquery_dataset.warehouse[*].id) == null ? null : "${var.project_id}:${google_bigquery_dataset.warehouse[0].dataset_id}"
}

output "warehouse_table" {
  description = "The append-only table Datastream writes (every change of event_log), or null while the export is off. Query warehouse_view instead."
  value       = one(google_bigquery_table.events[*].id) == null ? null : "${var.project_id}.${google_bigquery_table.events[0].dataset_id}.${google_bigquery_table.events[0].table_id}"
}

output "warehouse_view" {
  description = "The view to query: every stored event once (project.dataset.events), or null while the export is off."
  value       = one(google_bigquery_table.events_view[*].id) == null ? null : "${var.project_id}.${google_bigquery_table.events_view[0].dataset_id}.${google_bigquery_table.events_view[0].table_id}"
}

output "warehouse_stream" {
  description = "Datastream stream of the warehouse export (gcloud datastream streams describe NAME --location=REGION), or null while it is off."
  value       = one(google_datastream_stream.events[*].stream_id)
}

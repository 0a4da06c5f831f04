locals {
  # The deployable functions: the directories in functions/ minus `local` (a development-only
  # binary that is never shipped). scripts/check_functions.py fails CI when the Cloud Run
  # services, the job, the Cloud Build triggers or docker-compose.yml drift from that set.
  http_functions   = ["events", "metrics", "health", "worker"]
  public_functions = ["events", "metrics", "health"]
  job_functions    = ["migrate"]
  functions        = concat(local.http_functions, local.job_functions)

  # The functions tenants call refuse to start without tenant keys, so each reads the
  # tenant-keys secret at runtime. The worker is called only by Pub/Sub push (Cloud Run checks
  # its OIDC token) and migrate only needs DATABASE_URL: neither may read the keys.
  tenant_key_readers = toset(local.public_functions)

  # The plain path the services read with the Secret Manager API (never mounted as env).
  tenant_keys_secret_version = "${google_secret_manager_secret.tenant_keys.id}/versions/latest"

  # Where every function finds the Cloud SQL server CA bundle: a secret volume (run.tf) named
  # in DATABASE_URL as sslrootcert (secrets.tf).
  cloudsql_ca_dir  = "/etc/cloudsql-ca"
  cloudsql_ca_file = "server-ca.pem"
  cloudsql_ca_path = "${local.cloudsql_ca_dir}/${local.cloudsql_ca_file}"

  # Every pool at its maximum, plus migrate's single connection, plus headroom. Enforced by a
  # precondition on the SQL instance so an over-committed plan never applies.
  connection_budget = sum([for f in local.http_functions : var.services[f].max_instances * var.services[f].pool_size]) + 1 + var.db_connection_headroom

  artifact_registry_url = "${var.region}-docker.pkg.dev/${var.project_id}/${var.artifact_repository_id}"

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # The deployable functions are the directories of functions/ that hold a deploy.json
  # (functions/README.md); `local` has none, so it is never shipped. Every list below, and so
  # every service, job, service account, grant, alert and Cloud Build trigger keyed by function,
  # is derived from those files: adding a function is adding its directory. Terraform must
  # therefore run from a full checkout (it reads ../functions).
  functions_dir = "${path.module}/../functions"
  deploy_raw = {
    for p in fileset(local.functions_dir, "*/deploy.json") :
    dirname(p) => jsondecode(file("${local.functions_dir}/${p}"))
  }
  # What an absent field means; preconditions on google_service_account.fn (iam.tf) reject
  # unknown fields and values.
  deploy_fields = ["kind", "ingress", "tenant_keys", "extra_build_inputs"]
  deploy = {
    for f, d in local.deploy_raw : f => merge({ kind = null, ingress = null, tenant_keys = false, extra_build_inputs = [] }, d)
  }

  functions        = keys(local.deploy)
  http_functions   = [for f, d in local.deploy : f if d.kind == "service"]
  public_functions = [for f in local.http_functions : f if local.deploy[f].ingress == "public"]
  job_functions    = [for f, d in local.deploy : f if d.kind == "job"]

  # The functions tenants call refuse to start without tenant keys, so each reads the
  # tenant-keys secret at runtime ("tenant_keys": true). The worker is called only by Pub/Sub
  # push (Cloud Run checks its OIDC token) and migrate only needs DATABASE_URL: neither may
  # read the keys.
  tenant_key_readers = toset([for f in local.http_functions : f if local.deploy[f].tenant_keys == true])

  # Instances, concurrency, pool and resources per service: var.services where it names the
  # service, var.default_service otherwise, so a new function needs no Terraform edit.
  service_settings = { for f in local.http_functions : f => lookup(var.services, f, var.default_service) }

  # The plain path the services read with the Secret Manager API (never mounted as env).
  tenant_keys_secret_version = "${google_secret_manager_secret.tenant_keys.id}/versions/latest"

  # Where every function finds the Cloud SQL server CA bundle: a secret volume (run.tf) named
  # in DATABASE_URL as sslrootcert (secrets.tf).
  cloudsql_ca_dir  = "/etc/cloudsql-ca"
  cloudsql_ca_file = "server-ca.pem"
  cloudsql_ca_path = "${local.cloudsql_ca_dir}/${local.cloudsql_ca_file}"

  # Every pool at its maximum, plus the single connection of each job (migrate, maintain), plus
  # the warehouse export's Datastream connections (warehouse.tf; 0 while it is off), plus
  # headroom. Enforced by a precondition on the SQL instance so an over-committed plan never
  # applies.
  connection_budget = sum(concat([0], [for f in local.http_functions : local.service_settings[f].max_instances * local.service_settings[f].pool_size])) + 2 + local.warehouse_connections + var.db_connection_headroom

  artifact_registry_url = "${var.region}-docker.pkg.dev/${var.project_id}/${var.artifact_repository_id}"

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project_id
}

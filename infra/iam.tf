# One identity per function, one for Cloud Build, one for Pub/Sub push, one for the maintain
# job and one for Cloud Scheduler to start it. No identity gets a basic role or project-wide
# access to secrets, topics or Cloud Run.

resource "google_service_account" "fn" {
  for_each = toset(local.functions)

  account_id   = "${var.service_prefix}${each.key}"
  display_name = "Cloud Run runtime: ${each.key}"
  description  = "Runtime identity of the ${each.key} function."

  # Every deployable function has one of these, so its deploy.json is checked here
  # (functions/README.md; scripts/check-shipping checks the same against the JSON schema).
  lifecycle {
    precondition {
      # Service account ids are 6-30 characters, the tightest of the names built from it.
      condition     = can(regex("^[a-z]([a-z0-9-]*[a-z0-9])?$", each.key)) && length("${var.service_prefix}${each.key}") >= 6 && length("${var.service_prefix}${each.key}") <= 30
      error_message = "functions/${each.key}: a function name must be lowercase letters, digits and hyphens, start with a letter, and make \"${var.service_prefix}${each.key}\" 6-30 characters long (a service account id)."
    }
    precondition {
      condition     = each.key != "local"
      error_message = "functions/local/deploy.json: local is a development binary and is never deployed; delete that file."
    }
    precondition {
      condition     = length(setsubtract(keys(local.deploy_raw[each.key]), local.deploy_fields)) == 0
      error_message = "functions/${each.key}/deploy.json has unknown fields ${join(", ", setsubtract(keys(local.deploy_raw[each.key]), local.deploy_fields))}; the fields are ${join(", ", local.deploy_fields)}."
    }
    precondition {
      condition = (
        local.deploy[each.key].kind == "service" ? contains(["public", "internal"], coalesce(local.deploy[each.key].ingress, "-")) :
        local.deploy[each.key].kind == "job" ? local.deploy[each.key].ingress == null && local.deploy[each.key].tenant_keys == false :
        false
      )
      error_message = "functions/${each.key}/deploy.json: kind must be \"service\" (with ingress \"public\" or \"internal\") or \"job\" (no ingress, tenant_keys false)."
    }
    precondition {
      condition     = local.deploy[each.key].tenant_keys == true || local.deploy[each.key].tenant_keys == false
      error_message = "functions/${each.key}/deploy.json: tenant_keys must be true or false."
    }
    precondition {
      condition     = can([for g in local.deploy[each.key].extra_build_inputs : regex("^[^/]", g)])
      error_message = "functions/${each.key}/deploy.json: extra_build_inputs must be a list of globs relative to the repository root."
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "build" {
  account_id   = "${var.service_prefix}cloud-build"
  display_name = "Cloud Build deployer"
  description  = "Builds and pushes the function images, runs migrations and rolls out the Cloud Run services."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "pubsub_push" {
  account_id   = "${var.service_prefix}pubsub-push"
  display_name = "Pub/Sub push to worker"
  description  = "Identity in the OIDC token Pub/Sub attaches to pushes to the worker; may invoke the worker and nothing else."

  depends_on = [google_project_service.enabled]
}

# The maintain job runs the migrate image but is no function (functions/README.md), so it has
# an identity of its own rather than sharing migrate's: the two jobs are granted separately.
resource "google_service_account" "maintain" {
  account_id   = "${var.service_prefix}maintain"
  display_name = "Cloud Run runtime: maintain job"
  description  = "Runtime identity of the maintain job (migrate maintain): reads DATABASE_URL and the Cloud SQL CA, writes logs."

  lifecycle {
    # A function named maintain would get the same service account id (google_service_account.fn).
    precondition {
      condition     = !contains(local.functions, "maintain")
      error_message = "functions/maintain/deploy.json: \"maintain\" is taken by the maintain job (infra/run.tf), whose service account is ${var.service_prefix}maintain; name the function otherwise."
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.service_prefix}scheduler"
  display_name = "Cloud Scheduler: maintain job"
  description  = "Identity whose OAuth token Cloud Scheduler sends to the Cloud Run Admin API to run the maintain job; may run that job and nothing else."

  lifecycle {
    precondition {
      condition     = !contains(local.functions, "scheduler")
      error_message = "functions/scheduler/deploy.json: \"scheduler\" is taken by the Cloud Scheduler service account ${var.service_prefix}scheduler; name the function otherwise."
    }
  }

  depends_on = [google_project_service.enabled]
}

# ---- runtime identities --------------------------------------------------------------------

locals {
  # Telemetry roles cannot be scoped below the project. Every runtime account writes logs; the
  # services also metrics; every account (services and jobs) writes trace spans when tracing is
  # on (run.tf).
  #
  # Spans go to the Telemetry API (OTLP), whose permission is telemetry.traces.write. The least
  # role that holds it is Cloud Telemetry Traces Writer: "roles/telemetry.tracesWriter: Access to
  # write trace spans. telemetry.traces.write"
  # (https://cloud.google.com/iam/docs/roles-permissions/telemetry). Cloud Trace Agent holds
  # it too, but also cloudtrace.traces.patch, the Cloud Trace API's write, which nothing here
  # calls: "roles/cloudtrace.agent: For service accounts. Provides ability to write traces by
  # sending the data to Stackdriver Trace. cloudtrace.traces.patch, telemetry.traces.write"
  # (https://cloud.google.com/trace/docs/iam).
  trace_writer_role = "roles/telemetry.tracesWriter"
  trace_roles       = var.tracing_enabled ? [local.trace_writer_role] : []
  runtime_roles = merge(
    { for f in local.http_functions : f => concat(["roles/logging.logWriter", "roles/monitoring.metricWriter"], local.trace_roles) },
    { for f in local.job_functions : f => concat(["roles/logging.logWriter"], local.trace_roles) },
  )
  runtime_role_bindings = merge([
    for f, roles in local.runtime_roles : { for r in roles : "${f}/${r}" => { function = f, role = r } }
  ]...)
}

resource "google_project_iam_member" "runtime" {
  for_each = local.runtime_role_bindings

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.fn[each.value.function].member
}

# No roles/cloudsql.client: the functions reach the database over TCP to its private IP with
# a password, which involves no Cloud SQL Admin API call. That role is for the Cloud SQL Auth
# Proxy and connectors (the /cloudsql socket), which nothing here uses any more.

# Every function reads DATABASE_URL (resolved by Cloud Run at instance start, as the runtime SA).
resource "google_secret_manager_secret_iam_member" "database_url" {
  for_each = toset(local.functions)

  secret_id = google_secret_manager_secret.database_url.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn[each.key].member
}

# ... and mounts the server CA bundle DATABASE_URL names as sslrootcert (also read by Cloud Run
# as the runtime SA when it mounts the volume).
resource "google_secret_manager_secret_iam_member" "cloudsql_ca" {
  for_each = toset(local.functions)

  secret_id = google_secret_manager_secret.cloudsql_ca.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn[each.key].member
}

# The maintain job needs the same two secrets, and only those (no tenant keys).
resource "google_secret_manager_secret_iam_member" "maintain_database_url" {
  secret_id = google_secret_manager_secret.database_url.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.maintain.member
}

resource "google_secret_manager_secret_iam_member" "maintain_cloudsql_ca" {
  secret_id = google_secret_manager_secret.cloudsql_ca.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.maintain.member
}

# A job, like migrate: it logs, and writes trace spans when tracing is on (no metrics of its own).
resource "google_project_iam_member" "maintain_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.maintain.member
}

resource "google_project_iam_member" "maintain_trace_writer" {
  count = var.tracing_enabled ? 1 : 0

  project = var.project_id
  role    = local.trace_writer_role
  member  = google_service_account.maintain.member
}

resource "google_secret_manager_secret_iam_member" "tenant_keys" {
  for_each = local.tenant_key_readers

  secret_id = google_secret_manager_secret.tenant_keys.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn[each.key].member
}

# Only events publishes, and only to its topic.
resource "google_pubsub_topic_iam_member" "events_publisher" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn["events"].member
}

# ---- Pub/Sub push --------------------------------------------------------------------------

# The worker is private: only the push identity may invoke it.
resource "google_cloud_run_v2_service_iam_member" "worker_invoker" {
  name     = google_cloud_run_v2_service.fn["worker"].name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.pubsub_push.member

  lifecycle {
    # Public would put the worker behind the load balancer with allUsers as invoker, and
    # anyone could then post forged push messages.
    precondition {
      condition     = contains(local.http_functions, "worker") && !contains(local.public_functions, "worker")
      error_message = "The worker is invoked only by Pub/Sub push: functions/worker/deploy.json must say \"kind\": \"service\", \"ingress\": \"internal\"."
    }
  }
}

# Pub/Sub mints the push OIDC tokens as the push identity. Needed for projects older than
# April 2021; harmless and scoped to this one account otherwise.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_pubsub_topic.events]
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter topic
# and acknowledge (subscribe) on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  subscription = google_pubsub_subscription.worker_push.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# ---- Cloud Scheduler -----------------------------------------------------------------------

# Cloud Scheduler calls jobs.run (permission run.jobs.run) on the maintain job as this account.
# Cloud Run Invoker is the narrowest predefined role that holds it (Jobs Executor adds
# cancelling executions), and it is granted on this one job, not the project. It does not
# include run.jobs.runWithOverrides: the schedule cannot change what the job runs.
resource "google_cloud_run_v2_job_iam_member" "scheduler_invoker" {
  name     = google_cloud_run_v2_job.maintain.name
  location = google_cloud_run_v2_job.maintain.location
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# ---- Cloud Build ---------------------------------------------------------------------------

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# Roll out new revisions of these services and this job only (not create, delete or IAM).
resource "google_cloud_run_v2_service_iam_member" "build_developer" {
  for_each = toset(local.http_functions)

  name     = google_cloud_run_v2_service.fn[each.key].name
  location = var.region
  role     = "roles/run.developer"
  member   = google_service_account.build.member
}

resource "google_cloud_run_v2_job_iam_member" "build_developer" {
  name     = google_cloud_run_v2_job.migrate.name
  location = var.region
  role     = "roles/run.developer"
  member   = google_service_account.build.member
}

# Deploying a revision that runs as a service account requires acting as it.
resource "google_service_account_iam_member" "build_act_as" {
  for_each = toset(local.functions)

  service_account_id = google_service_account.fn[each.key].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.build.member
}

# Every build points the maintain job at the new migrate image (cloudbuild.yaml): the same
# two grants, on that job and its account only.
resource "google_cloud_run_v2_job_iam_member" "build_developer_maintain" {
  name     = google_cloud_run_v2_job.maintain.name
  location = google_cloud_run_v2_job.maintain.location
  role     = "roles/run.developer"
  member   = google_service_account.build.member
}

resource "google_service_account_iam_member" "build_act_as_maintain" {
  service_account_id = google_service_account.maintain.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.build.member
}

# Build logs go to Cloud Logging only (options.logging in cloudbuild.yaml).
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

# Source archives uploaded by `gcloud builds submit` (README.md) are read from this bucket.
resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

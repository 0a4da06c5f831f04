locals {
  # RETENTION_DAYS, one value for every binary that applies it: events refuses older events,
  # the worker dead-letters them, metrics refuses a window starting before the horizon, and the
  # maintain job drops what is past it. Unset (retention_days = null) keeps everything. Health
  # ignores it; it goes to every HTTP function so that no function can be left out.
  retention_env = var.retention_days == null ? {} : { RETENTION_DAYS = tostring(var.retention_days) }

  # Traces: OpenTelemetry spans over OTLP/HTTP (protobuf) to Google's OTLP endpoint, the
  # Telemetry API, which stores them in Cloud Trace. The binaries append /v1/traces to the base
  # URL and, because the host ends in .googleapis.com, send an access token from the runtime
  # account (Application Default Credentials, scope cloud-platform) with each export. Google's
  # documentation:
  #   "POST https://telemetry.googleapis.com/v1/traces" and "Requires one of the following OAuth
  #   scopes: https://www.googleapis.com/auth/trace.append,
  #   https://www.googleapis.com/auth/cloud-platform"
  #   (https://cloud.google.com/stackdriver/docs/reference/telemetry/api)
  #   "In your collector, specify only the root URL: endpoint: https://telemetry.googleapis.com
  #   ... OpenTelemetry detects the data type and automatically appends /v1/traces"
  #   (https://cloud.google.com/stackdriver/docs/reference/telemetry/overview)
  # The project the spans belong to is the gcp.project_id resource attribute, as Google's OTLP
  # samples set it: "export OTEL_RESOURCE_ATTRIBUTES="gcp.project_id=<project-id>"" with
  # "export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://telemetry.googleapis.com:443/v1/traces""
  # (https://pypi.org/project/opentelemetry-exporter-credential-provider-gcp/, which points to
  # https://cloud.google.com/trace/docs/migrate-to-otlp-endpoints). The writer role is in
  # iam.tf, the API in apis.tf. The service name is K_SERVICE on services; the jobs, which have
  # no K_SERVICE, name themselves (OTEL_SERVICE_NAME below). tracing_enabled = false sets none
  # of these, and the binaries then export nothing.
  otlp_endpoint = "https://telemetry.googleapis.com"
  tracing_env = var.tracing_enabled ? {
    OTEL_EXPORTER_OTLP_ENDPOINT = local.otlp_endpoint
    OTEL_TRACES_SAMPLER         = "parentbased_traceidratio"
    OTEL_TRACES_SAMPLER_ARG     = tostring(var.trace_sampling_ratio)
    OTEL_RESOURCE_ATTRIBUTES    = "gcp.project_id=${var.project_id}"
  } : {}

  # Env every HTTP function reads. PORT is set by Cloud Run itself; K_SERVICE makes the logs
  # JSON, LOG_FORMAT says so explicitly.
  common_env = merge({
    DB_ACQUIRE_TIMEOUT_MS   = tostring(var.db_acquire_timeout_ms)
    DB_STATEMENT_TIMEOUT_MS = tostring(var.db_statement_timeout_ms)
    SHUTDOWN_GRACE_SECS     = tostring(var.shutdown_grace_secs)
    MAX_FUTURE_SKEW_SECS    = tostring(var.max_future_skew_secs)
    LOG_FORMAT              = "json"
    RUST_LOG                = var.rust_log
    GOOGLE_CLOUD_PROJECT    = var.project_id
  }, local.retention_env, local.tracing_env)

  # Env of the migrate job: logs and traces only (DATABASE_URL comes from its secret). A job has
  # no K_SERVICE, so it names its spans' service itself: the job's name.
  migrate_env = merge({
    RUST_LOG             = var.rust_log
    LOG_FORMAT           = "json"
    GOOGLE_CLOUD_PROJECT = var.project_id
  }, local.tracing_env, var.tracing_enabled ? { OTEL_SERVICE_NAME = "${var.service_prefix}migrate" } : {})

  # Env of the maintain job (`migrate maintain`): the same retention as the functions, and how
  # far ahead partitions are kept; with the warehouse export on, whom to grant and which slot to
  # create (EXPORT_REPLICATION_USER/SLOT, warehouse.tf).
  maintain_env = merge({
    RUST_LOG             = var.rust_log
    LOG_FORMAT           = "json"
    GOOGLE_CLOUD_PROJECT = var.project_id
    PARTITION_AHEAD_DAYS = tostring(var.partition_ahead_days)
  }, local.retention_env, local.tracing_env, var.tracing_enabled ? { OTEL_SERVICE_NAME = "${var.service_prefix}maintain" } : {}, local.warehouse_maintain_env)

  # Env only some functions read; a function not named here gets common_env alone.
  function_env = {
    events = {
      INGEST_MODE  = var.ingest_mode
      PUBSUB_TOPIC = google_pubsub_topic.events.id
    }
  }

  service_env = {
    for f in local.http_functions : f => merge(
      local.common_env,
      try(local.function_env[f], {}),
      { DB_POOL_SIZE = tostring(local.service_settings[f].pool_size) },
      contains(local.tenant_key_readers, f) ? { TENANT_KEYS_SECRET = local.tenant_keys_secret_version } : {},
    )
  }
}

resource "google_cloud_run_v2_service" "fn" {
  for_each = toset(local.http_functions)

  name     = "${var.service_prefix}${each.key}"
  location = var.region

  # Provider 6.x default, spelled out: destroying a serving API needs a deliberate edit first.
  deletion_protection = true

  # Public functions are reachable only through the HTTPS load balancer (its URL map is the API
  # surface); the worker only from Pub/Sub push in this project.
  ingress = contains(local.public_functions, each.key) ? "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" : "INGRESS_TRAFFIC_INTERNAL_ONLY"

  template {
    service_account                  = google_service_account.fn[each.key].email
    max_instance_request_concurrency = local.service_settings[each.key].concurrency
    timeout                          = "${var.request_timeout_seconds}s"

    scaling {
      min_instance_count = local.service_settings[each.key].min_instances
      max_instance_count = local.service_settings[each.key].max_instances
    }

    vpc_access {
      # Only private ranges go through the VPC: the Cloud SQL private IP, which DATABASE_URL
      # names. Google APIs (Secret Manager, Pub/Sub, logging) stay on the default path.
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = google_compute_network.main.name
        subnetwork = google_compute_subnetwork.run.name
      }
    }

    # The Cloud SQL server CA bundle that DATABASE_URL names as sslrootcert, pinned like
    # DATABASE_URL so a new bundle rolls out a new revision. Files default to mode 0444, so the
    # non-root runtime user can read it.
    volumes {
      name = "cloudsql-ca"
      secret {
        secret = google_secret_manager_secret.cloudsql_ca.secret_id
        items {
          version = google_secret_manager_secret_version.cloudsql_ca.version
          path    = local.cloudsql_ca_file
        }
      }
    }

    containers {
      image = var.placeholder_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = local.service_settings[each.key].cpu
          memory = local.service_settings[each.key].memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.service_env[each.key]
        content {
          name  = env.key
          value = env.value
        }
      }

      # Pinned to the version Terraform wrote, so a rotated password rolls out a new revision.
      env {
        name = "DATABASE_URL"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.database_url.secret_id
            version = google_secret_manager_secret_version.database_url.version
          }
        }
      }

      volume_mounts {
        name       = "cloudsql-ca"
        mount_path = local.cloudsql_ca_dir
      }

      # /health answers while the process runs; it does not touch the database, so a database
      # outage makes /ready fail (503) without Cloud Run restarting healthy instances.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 1
        timeout_seconds       = 1
        failure_threshold     = 20
        http_get {
          path = "/health"
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
        http_get {
          path = "/health"
          port = 8080
        }
      }
    }
  }

  lifecycle {
    # Cloud Build owns the image (gcloud run deploy --image); it also stamps client fields.
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]

    # A services key that names no service (a typo, or a function since removed) would
    # otherwise leave the real service on default_service without a word.
    precondition {
      condition     = length(setsubtract(keys(var.services), local.http_functions)) == 0
      error_message = "services names ${join(", ", setsubtract(keys(var.services), local.http_functions))}, which is no service in functions/*/deploy.json (services: ${join(", ", local.http_functions)})."
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.cloudsql_ca,
    google_secret_manager_secret_iam_member.database_url,
    google_secret_manager_secret_iam_member.tenant_keys,
  ]
}

# Public services answer whoever the load balancer forwards; ingress keeps the run.app URL shut.
resource "google_cloud_run_v2_service_iam_member" "public_invoker" {
  for_each = toset(local.public_functions)

  name     = google_cloud_run_v2_service.fn[each.key].name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_job" "migrate" {
  name     = "${var.service_prefix}migrate"
  location = var.region

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.fn["migrate"].email
      timeout         = "${var.migrate_timeout_seconds}s"
      # A failed migration must fail the deploy, not be retried blindly: a non-transactional
      # step (CREATE INDEX CONCURRENTLY) can leave state that needs a look first.
      max_retries = 0

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = google_compute_network.main.name
          subnetwork = google_compute_subnetwork.run.name
        }
      }

      volumes {
        name = "cloudsql-ca"
        secret {
          secret = google_secret_manager_secret.cloudsql_ca.secret_id
          items {
            version = google_secret_manager_secret_version.cloudsql_ca.version
            path    = local.cloudsql_ca_file
          }
        }
      }

      containers {
        image = var.placeholder_job_image

        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }

        dynamic "env" {
          for_each = local.migrate_env
          content {
            name  = env.key
            value = env.value
          }
        }

        env {
          name = "DATABASE_URL"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.database_url.secret_id
              version = google_secret_manager_secret_version.database_url.version
            }
          }
        }

        volume_mounts {
          name       = "cloudsql-ca"
          mount_path = local.cloudsql_ca_dir
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].template[0].containers[0].image,
      client,
      client_version,
    ]

    # migrate is the one job function: cloudbuild.yaml runs it before every deploy and deploys
    # no other function as a job (the maintain job below is no function: it reuses migrate's
    # image), so another "kind": "job" would get a service account and a trigger whose build
    # tries to deploy it as a service. A new job needs its own resource here (and a schedule or
    # whatever runs it) and a deploy step in cloudbuild.yaml, as maintain has.
    precondition {
      condition     = join(",", local.job_functions) == "migrate"
      error_message = "The only job this configuration deploys is migrate, but functions/*/deploy.json declare the jobs [${join(", ", local.job_functions)}]."
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.cloudsql_ca,
    google_secret_manager_secret_iam_member.database_url,
  ]
}

# ---- maintenance ---------------------------------------------------------------------------

# `migrate maintain` on the migrate image: creates the next partition_ahead_days of daily
# partitions, moves stray rows out of the default partition, and drops the days past
# retention_days with their identities and rollup rows. Idempotent and serialised by an
# advisory lock (a concurrent run does nothing and exits 0), so a retry, an overlapping
# scheduled run or a manual `gcloud run jobs execute` is harmless. Cloud Scheduler starts it
# (google_cloud_scheduler_job.maintain below); Cloud Build points it at each new migrate image
# once that image's migrations are applied (cloudbuild.yaml, update-maintain-job).
resource "google_cloud_run_v2_job" "maintain" {
  name     = "${var.service_prefix}maintain"
  location = var.region

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.maintain.email
      timeout         = "${var.maintenance_timeout_seconds}s"
      # Safe to retry (idempotent, locked); a second failure fails the execution and alerts.
      max_retries = 1

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = google_compute_network.main.name
          subnetwork = google_compute_subnetwork.run.name
        }
      }

      volumes {
        name = "cloudsql-ca"
        secret {
          secret = google_secret_manager_secret.cloudsql_ca.secret_id
          items {
            version = google_secret_manager_secret_version.cloudsql_ca.version
            path    = local.cloudsql_ca_file
          }
        }
      }

      containers {
        image = var.placeholder_job_image
        # The image's entrypoint is the migrate binary: this makes it `migrate maintain`.
        args = ["maintain"]

        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }

        dynamic "env" {
          for_each = local.maintain_env
          content {
            name  = env.key
            value = env.value
          }
        }

        env {
          name = "DATABASE_URL"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.database_url.secret_id
              version = google_secret_manager_secret_version.database_url.version
            }
          }
        }

        volume_mounts {
          name       = "cloudsql-ca"
          mount_path = local.cloudsql_ca_dir
        }
      }
    }
  }

  lifecycle {
    # Cloud Build owns the image, as for migrate.
    ignore_changes = [
      template[0].template[0].containers[0].image,
      client,
      client_version,
    ]
  }

  depends_on = [
    google_secret_manager_secret_iam_member.maintain_cloudsql_ca,
    google_secret_manager_secret_iam_member.maintain_database_url,
  ]
}

# Runs the maintain job on maintenance_schedule through the Cloud Run Admin API (v2 jobs.run),
# authenticated with an OAuth access token of its own account, which may run this one job and
# nothing else (iam.tf). jobs.run answers as soon as the execution is created, so the attempt
# deadline is short; whether the run succeeded is the execution's business (monitoring.tf).
resource "google_cloud_scheduler_job" "maintain" {
  name        = "${var.service_prefix}maintain"
  region      = var.region
  description = "Runs the Cloud Run job ${google_cloud_run_v2_job.maintain.name} (migrate maintain)."
  schedule    = var.maintenance_schedule
  time_zone   = var.maintenance_time_zone

  attempt_deadline = "60s"

  # Retries only when the API call itself fails (e.g. 503); a retry that duplicates an
  # execution is harmless.
  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${google_cloud_run_v2_job.maintain.location}/jobs/${google_cloud_run_v2_job.maintain.name}:run"
    # An empty RunJobRequest: no overrides.
    body = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }

    # An access token (not an OIDC identity token): the target is a Google API.
    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_v2_job_iam_member.scheduler_invoker,
  ]
}

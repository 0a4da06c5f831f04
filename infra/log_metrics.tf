# Log-based metrics: numbers only the functions' logs know (events per tenant, why requests are
# refused, group-commit sizes, pool waits, maintenance runs), turned into Cloud Monitoring
# metrics (logging.googleapis.com/user/<name>) for the dashboard (dashboard.tf).
#
# Every function writes one JSON line per request on Cloud Run: message "request completed"
# ("request failed" for a 5xx), with the request's fields (tenant_id, outcome, events_created,
# events_duplicate, events_rejected, problem, group_commit_size, pool_wait_ms). Other lines
# written while a request runs carry the same fields, so every filter here selects the request
# line by its message: a request counts once. The maintain job writes "maintenance done" once
# per successful run.
#
# Counters count log entries; a distribution records the values it extracts (count, mean,
# histogram and so the sum), which is how a batch's 200 events count as 200, not as one line.
# A metric only counts entries that arrive after it exists; nothing is backfilled.
#
# tenant_id is a label on the per-tenant metrics: every tenant becomes its own time series.
# Fine for tens to a few thousand tenants; far beyond, drop the label (or the metric) rather
# than pay for and slow down that many series.

locals {
  # Logging query language (not Monitoring filters): the request lines of this stack's Cloud
  # Run services, derived from functions/*/deploy.json like everything else.
  log_filter_run = "resource.type=\"cloud_run_revision\""
  log_filter_services = "${local.log_filter_run} AND (${join(" OR ", [
    for f in local.http_functions : "resource.labels.service_name=\"${google_cloud_run_v2_service.fn[f].name}\""
  ])})"
  # What tenants call: the public services (behind the load balancer).
  log_filter_public_services = "${local.log_filter_run} AND (${join(" OR ", [
    for f in local.public_functions : "resource.labels.service_name=\"${google_cloud_run_v2_service.fn[f].name}\""
  ])})"
  # The push subscription's worker, whose refusals end on the dead-letter topic.
  log_filter_worker = "${local.log_filter_run} AND resource.labels.service_name=\"${google_cloud_run_v2_service.fn["worker"].name}\""

  log_request_line = "(jsonPayload.message=\"request completed\" OR jsonPayload.message=\"request failed\")"
  # A 4xx: its line says "request completed" (a 5xx says "request failed") and names a problem
  # (only error responses record one).
  log_refused_line = "jsonPayload.message=\"request completed\" AND jsonPayload.problem:*"

  log_filter_maintain = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${google_cloud_run_v2_job.maintain.name}\""

  # Monitoring metric type of each log-based metric, for the dashboard.
  log_metric_types = {
    events_created    = "logging.googleapis.com/user/${google_logging_metric.events_created.name}"
    events_duplicate  = "logging.googleapis.com/user/${google_logging_metric.events_duplicate.name}"
    requests_refused  = "logging.googleapis.com/user/${google_logging_metric.requests_refused.name}"
    worker_refused    = "logging.googleapis.com/user/${google_logging_metric.worker_refused.name}"
    group_commit_size = "logging.googleapis.com/user/${google_logging_metric.group_commit_size.name}"
    pool_wait         = "logging.googleapis.com/user/${google_logging_metric.pool_wait.name}"
    maintenance_runs  = "logging.googleapis.com/user/${google_logging_metric.maintenance_runs.name}"
  }
}

# Events taken in, per tenant and (resource label service_name) per service: the sum of
# events_created over request lines. On events that is what it stored (ingest_mode inline) or
# published to Pub/Sub (pubsub: "accepted"); on the worker what it stored from Pub/Sub. In
# pubsub mode an event therefore counts on both: chart per service, never summed across them.
resource "google_logging_metric" "events_created" {
  name        = "${var.service_prefix}events-created"
  description = "Events taken in per request line (events_created: stored, or accepted for Pub/Sub on events in pubsub mode), per tenant; per service through the resource label service_name. Its sum is the event count."
  filter      = "${local.log_filter_services} AND ${local.log_request_line} AND jsonPayload.events_created>0"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Events created (per request)"
    labels {
      key         = "tenant_id"
      value_type  = "STRING"
      description = "Tenant that sent the events."
    }
  }

  value_extractor = "EXTRACT(jsonPayload.events_created)"
  label_extractors = {
    tenant_id = "EXTRACT(jsonPayload.tenant_id)"
  }

  # 1, 2, 4, ... 1024: a single event up to a full batch (1000).
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 11
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}

# Replays of an event already stored with the same payload (answered 200 "duplicate", or acked by
# the worker), per tenant. Counted where the event is stored, so never twice.
resource "google_logging_metric" "events_duplicate" {
  name        = "${var.service_prefix}events-duplicate"
  description = "Duplicate events per request line (events_duplicate: replays of an event already stored with the same payload), per tenant. Its sum is the duplicate count."
  filter      = "${local.log_filter_services} AND ${local.log_request_line} AND jsonPayload.events_duplicate>0"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Duplicate events (per request)"
    labels {
      key         = "tenant_id"
      value_type  = "STRING"
      description = "Tenant that sent the events."
    }
  }

  value_extractor = "EXTRACT(jsonPayload.events_duplicate)"
  label_extractors = {
    tenant_id = "EXTRACT(jsonPayload.tenant_id)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 11
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}

# Requests the public services answered with a 4xx, by reason and tenant (empty when the
# request never got as far as a tenant, e.g. unauthorized). Cloud Armor's own 429s never reach a
# service and are not here.
resource "google_logging_metric" "requests_refused" {
  name        = "${var.service_prefix}requests-refused"
  description = "Requests the public services refused with a 4xx, by problem (validation, unauthorized, key_reused, payload_too_large, ...) and tenant."
  filter      = "${local.log_filter_public_services} AND ${local.log_refused_line}"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Requests refused (4xx)"
    labels {
      key         = "problem"
      value_type  = "STRING"
      description = "Why: the problem kind of the response (validation, unauthorized, not_found, key_reused, rate_limited, ...)."
    }
    labels {
      key         = "tenant_id"
      value_type  = "STRING"
      description = "Tenant of the request; empty before authentication."
    }
  }

  label_extractors = {
    problem   = "EXTRACT(jsonPayload.problem)"
    tenant_id = "EXTRACT(jsonPayload.tenant_id)"
  }

  depends_on = [google_project_service.enabled]
}

# Pushes the worker refused with a 4xx: messages it will never store (too old for the
# retention, malformed, an identity reused with another payload). Pub/Sub retries them like any
# failure, so one such message counts max_delivery_attempts times and then lands on the
# dead-letter topic.
resource "google_logging_metric" "worker_refused" {
  name        = "${var.service_prefix}worker-refused"
  description = "Pushes the worker refused with a 4xx (each attempt; after max_delivery_attempts the message is dead-lettered), by tenant and problem."
  filter      = "${local.log_filter_worker} AND ${local.log_refused_line}"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Pushes refused by the worker (4xx)"
    labels {
      key         = "tenant_id"
      value_type  = "STRING"
      description = "Tenant of the message; empty when the message could not be read."
    }
    labels {
      key         = "problem"
      value_type  = "STRING"
      description = "Why: validation or key_reused."
    }
  }

  label_extractors = {
    tenant_id = "EXTRACT(jsonPayload.tenant_id)"
    problem   = "EXTRACT(jsonPayload.problem)"
  }

  depends_on = [google_project_service.enabled]
}

# How many events shared the group-commit statement that stored a single event (inline events,
# worker pushes): 1 under light load, larger as concurrent requests are folded together.
resource "google_logging_metric" "group_commit_size" {
  name        = "${var.service_prefix}group-commit-size"
  description = "Events in the group-commit statement that stored a request's single event (group_commit_size), per service through the resource label service_name."
  filter      = "${local.log_filter_services} AND ${local.log_request_line} AND jsonPayload.group_commit_size:*"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Group-commit batch size"
  }

  value_extractor = "EXTRACT(jsonPayload.group_commit_size)"

  # 1, 2, 4, ... 2048.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 12
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}

# How long that statement waited for a pooled database connection: the first sign of an
# exhausted pool, before acquire timeouts turn into 503s.
resource "google_logging_metric" "pool_wait" {
  name        = "${var.service_prefix}pool-wait"
  description = "Milliseconds the group-commit statement of a request waited for a pooled database connection (pool_wait_ms), per service through the resource label service_name."
  filter      = "${local.log_filter_services} AND ${local.log_request_line} AND jsonPayload.pool_wait_ms:*"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "Database pool wait"
  }

  value_extractor = "EXTRACT(jsonPayload.pool_wait_ms)"

  # 0.1 ms doubling to 6.5 s: beyond db_acquire_timeout_ms (default 2 s), which ends the wait.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 0.1
    }
  }

  depends_on = [google_project_service.enabled]
}

# Successful maintenance runs ("maintenance done"; a failed run writes "error: maintenance
# failed" on stderr instead).
resource "google_logging_metric" "maintenance_runs" {
  name        = "${var.service_prefix}maintenance-runs"
  description = "Successful runs of the maintain job (its \"maintenance done\" line)."
  filter      = "${local.log_filter_maintain} AND jsonPayload.message=\"maintenance done\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Maintenance runs"
  }

  depends_on = [google_project_service.enabled]
}

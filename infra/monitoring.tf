resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  display_name = "Event analytics on-call (${var.alert_email})"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.enabled]
}

locals {
  notification_channels = google_monitoring_notification_channel.email[*].id

  # The Monitoring filters the alert policies below and the dashboard (dashboard.tf) share: where
  # they watch the same thing they read the same time series, so what a policy fires on is what
  # the dashboard draws. Each names one metric type on one kind of resource; an alert narrows it
  # to one service (run_service_filter), the dashboard to this stack's services.
  monitoring_filter = {
    request_count       = "metric.type = \"run.googleapis.com/request_count\" AND resource.type = \"cloud_run_revision\""
    request_latencies   = "metric.type = \"run.googleapis.com/request_latencies\" AND resource.type = \"cloud_run_revision\""
    push_backlog        = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.worker_push.name}\""
    push_backlog_age    = "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.worker_push.name}\""
    dead_letters        = "metric.type = \"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.worker_push.name}\""
    dead_letter_backlog = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_inspect.name}\""
    maintain_executions = "metric.type = \"run.googleapis.com/job/completed_execution_count\" AND resource.type = \"cloud_run_job\" AND resource.labels.job_name = \"${google_cloud_run_v2_job.maintain.name}\""
    db_backends         = "metric.type = \"cloudsql.googleapis.com/database/postgresql/num_backends\" AND resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${var.project_id}:${google_sql_database_instance.main.name}\""
    db_cpu              = "metric.type = \"cloudsql.googleapis.com/database/cpu/utilization\" AND resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${var.project_id}:${google_sql_database_instance.main.name}\""
  }

  # One service, for the per-service policies ...
  run_service_filter = { for f in local.http_functions : f => "resource.labels.service_name = \"${google_cloud_run_v2_service.fn[f].name}\"" }
  # ... and every service of this stack, for the dashboard.
  run_services_filter = "(${join(" OR ", values(local.run_service_filter))})"

  # Aggregations the policies evaluate, reused by the dashboard tiles that mirror them.
  alert_window = "300s"

  # alert_5xx_ratio as a percentage for names and text. Terraform's exact arithmetic makes
  # 0.02 * 100 print as 1.9999...; six significant digits print 2.
  alert_5xx_percent = format("%.6g", var.alert_5xx_ratio * 100)
}

# 5xx share per service: 5xx request count / all request count, summed over revisions.
resource "google_monitoring_alert_policy" "error_ratio" {
  for_each = toset(local.http_functions)

  display_name          = "${google_cloud_run_v2_service.fn[each.key].name}: 5xx ratio above ${local.alert_5xx_percent}%"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "5xx / all requests over 5 min"

    condition_threshold {
      filter             = "${local.monitoring_filter.request_count} AND ${local.run_service_filter[each.key]} AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = "${local.monitoring_filter.request_count} AND ${local.run_service_filter[each.key]}"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_5xx_ratio
      duration           = "0s"

      aggregations {
        alignment_period     = local.alert_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = local.alert_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${local.alert_5xx_percent}% of requests to `${google_cloud_run_v2_service.fn[each.key].name}` failed with 5xx over 5 minutes. 503s usually mean the database pool is exhausted or Cloud SQL is unreachable: check `/ready`, Cloud SQL CPU/connections, and the service's logs (severity>=ERROR). Dashboard (tile \"Alert: 5xx share\", database pool wait and connections): ${local.dashboard_url}"
  }
}

# p95 latency per service, computed from the merged latency distributions of all revisions.
resource "google_monitoring_alert_policy" "latency_p95" {
  for_each = toset(local.http_functions)

  display_name          = "${google_cloud_run_v2_service.fn[each.key].name}: p95 latency above ${var.alert_latency_p95_ms} ms"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels

  conditions {
    display_name = "p95 request latency over 5 min"

    condition_threshold {
      filter          = "${local.monitoring_filter.request_latencies} AND ${local.run_service_filter[each.key]}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_latency_p95_ms
      duration        = "300s"

      aggregations {
        alignment_period     = local.alert_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "p95 latency of `${google_cloud_run_v2_service.fn[each.key].name}` stayed above ${var.alert_latency_p95_ms} ms for 10 minutes. Check Cloud SQL load and connections, pool acquire timeouts in the logs, and instance counts against max_instances. Dashboard (tile \"Alert: p95 latency\", database pool wait, group-commit size): ${local.dashboard_url}"
  }
}

resource "google_monitoring_alert_policy" "push_backlog" {
  display_name          = "${google_pubsub_subscription.worker_push.name}: oldest unacked message older than ${var.alert_backlog_age_seconds} s"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Oldest unacked message age"

    condition_threshold {
      filter          = local.monitoring_filter.push_backlog_age
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_backlog_age_seconds
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The worker is not keeping up with, or keeps failing, pushes on `${google_pubsub_subscription.worker_push.name}`. Check the worker's 5xx rate and logs, its max_instances, and Cloud SQL health. Accepted events are not lost while they wait (7 days retention). Dashboard (tile \"Alert: oldest unacked message age\"): ${local.dashboard_url}"
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "${google_pubsub_subscription.worker_push.name}: messages dead-lettered"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Messages forwarded to the dead-letter topic"

    condition_threshold {
      filter          = local.monitoring_filter.dead_letters
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = local.alert_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.subscription_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Events that failed ${var.max_delivery_attempts} pushes to the worker were moved to `${google_pubsub_topic.dead_letter.name}`. They were accepted (202) but are not stored. Inspect them with `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter_inspect.name} --limit=10`, fix the cause, then republish them to `${google_pubsub_topic.events.name}` (inserts are idempotent). The dashboard's tile \"Pushes refused by the worker\" shows the tenants and reasons (each refusal is one attempt; a 5xx is an outage, see the worker's 5xx tile): ${local.dashboard_url}"
  }
}

# The maintain job: an execution that failed (both attempts: a crash, exit 2 with its one-line
# reason on stderr, a timeout), or no successful execution for alert_maintenance_stale_seconds
# (the schedule stopped or was paused, Cloud Scheduler cannot run the job, every run fails).
# Absence only counts once a run has succeeded after the policy was created or changed.
resource "google_monitoring_alert_policy" "maintenance" {
  display_name          = "${google_cloud_run_v2_job.maintain.name}: maintenance failed or stopped"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Failed executions of the maintain job"

    condition_threshold {
      filter          = "${local.monitoring_filter.maintain_executions} AND metric.labels.result = \"failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = local.alert_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.job_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "No successful maintenance run for ${var.alert_maintenance_stale_seconds} s"

    condition_absent {
      filter   = "${local.monitoring_filter.maintain_executions} AND metric.labels.result = \"succeeded\""
      duration = "${var.alert_maintenance_stale_seconds}s"

      aggregations {
        alignment_period     = local.alert_window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.job_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Maintenance of the partitioned event log (`${google_cloud_run_v2_job.maintain.name}`) failed or has not succeeded for ${var.alert_maintenance_stale_seconds} s. Nothing is lost meanwhile: events of days without a partition land in the default partition, and expired days are dropped by the next successful run; but partitions run out ${var.partition_ahead_days} days after the last good run. Read the failed execution's logs (`resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${google_cloud_run_v2_job.maintain.name}\"`, severity>=ERROR and its stderr line), check `gcloud scheduler jobs describe ${google_cloud_scheduler_job.maintain.name} --location=${var.region}` (status code 7 is a permission problem), fix, then `gcloud run jobs execute ${google_cloud_run_v2_job.maintain.name} --region=${var.region} --wait`. Dashboard (tile \"Alert: maintain job executions\"): ${local.dashboard_url}"
  }
}

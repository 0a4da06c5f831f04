# The service's Cloud Monitoring dashboard, as code: dashboards/service.json is the dashboard
# (Cloud Monitoring's dashboard JSON), rendered with templatefile(). Its filters are the ones
# the alert policies use (monitoring.tf, local.monitoring_filter) and the log-based metrics of
# log_metrics.tf, so every tile reads a Google metric or one of ours, and the tiles marked
# "Alert" draw what a policy evaluates, with the same aggregation.
#
# Every placeholder in the file sits inside a JSON string, so the file parses as JSON as it is
# (python3 -m json.tool infra/dashboards/service.json), and each value is passed JSON-escaped:
# the filters' quotes come out as \" in the rendered document.
#
# Edit the file by hand, or build the dashboard in the console and paste its JSON back
# (Dashboard settings > JSON), putting the placeholders back in place of names and numbers.

locals {
  # PromQL name of a Monitoring metric type: the first / becomes :, every other character
  # outside [A-Za-z0-9_] becomes _ (Cloud Monitoring's PromQL mapping). A distribution's
  # <name>_sum is the sum of its values: events, not request lines.
  log_metric_promql = {
    for k, t in local.log_metric_types : k => replace(replace(t, "/^([^/]*)//", "$1:"), "/[^A-Za-z0-9_:]/", "_")
  }

  dashboard_vars = merge(local.monitoring_filter, local.log_metric_types, {
    display_name    = "Event analytics (${trimsuffix(var.service_prefix, "-")})"
    services        = local.run_services_filter
    services_list   = join(", ", [for f in local.http_functions : google_cloud_run_v2_service.fn[f].name])
    ingest_service  = google_cloud_run_v2_service.fn["events"].name
    metric_prefix   = var.service_prefix
    trace_sampling  = var.tracing_enabled ? "${format("%.6g", var.trace_sampling_ratio * 100)}% (trace_sampling_ratio)" : "0% (tracing_enabled = false: no spans are exported)"
    alert_window    = local.alert_window
    alert_5xx_ratio = "${local.alert_5xx_percent}%"

    pq_events_created   = local.log_metric_promql.events_created
    pq_events_duplicate = local.log_metric_promql.events_duplicate

    alert_latency_p95_ms      = tostring(var.alert_latency_p95_ms)
    alert_backlog_age_seconds = tostring(var.alert_backlog_age_seconds)
    db_max_connections        = tostring(var.db_max_connections)
    db_acquire_timeout_ms     = tostring(var.db_acquire_timeout_ms)
  })

  # Each value as the inside of a JSON string literal (jsonencode, without its quotes).
  dashboard_json = templatefile("${path.module}/dashboards/service.json", {
    for k, v in local.dashboard_vars : k => trimsuffix(trimprefix(jsonencode(tostring(v)), "\""), "\"")
  })
}

locals {
  # The dashboard in the console (its id is projects/<number>/dashboards/<dashboard id>); the
  # alert policies link to it.
  dashboard_url = "https://console.cloud.google.com/monitoring/dashboards/custom/${element(split("/", google_monitoring_dashboard.service.id), length(split("/", google_monitoring_dashboard.service.id)) - 1)}?project=${var.project_id}"
}

resource "google_monitoring_dashboard" "service" {
  dashboard_json = local.dashboard_json

  depends_on = [google_project_service.enabled]
}

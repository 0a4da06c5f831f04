# Async ingestion: events publishes one message per event; Pub/Sub pushes each to the worker,
# which inserts idempotently (duplicates are acked). What fails max_delivery_attempts times
# lands on the dead-letter topic, kept for inspection on a pull subscription.

resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest, as for Cloud SQL and Secret Manager in this stack. CMEK is a compliance decision that would need a KMS key for every store, not just the topics.
  name = "${var.service_prefix}events"

  # Unacked messages are kept on the subscription; the topic itself retains nothing extra.
  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Same as the events topic: Google-managed encryption at rest.
  name = "${var.service_prefix}events-dead-letter"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "worker_push" {
  name  = "${var.service_prefix}events-worker"
  topic = google_pubsub_topic.events.id

  ack_deadline_seconds       = var.push_ack_deadline_seconds
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.fn["worker"].uri}/pubsub/push"

    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      # Cloud Run checks the token's audience against the service URL.
      audience = google_cloud_run_v2_service.fn["worker"].uri
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  # Never expire for inactivity: a quiet week must not delete the pipeline.
  expiration_policy {
    ttl = ""
  }

  lifecycle {
    # Each backoff is validated on its own (variables.tf); their order needs both, and a
    # variable validation may only refer to itself before Terraform 1.9.
    precondition {
      condition     = tonumber(trimsuffix(var.retry_minimum_backoff, "s")) <= tonumber(trimsuffix(var.retry_maximum_backoff, "s"))
      error_message = "retry_minimum_backoff (${var.retry_minimum_backoff}) must not be longer than retry_maximum_backoff (${var.retry_maximum_backoff})."
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.worker_invoker]
}

resource "google_pubsub_subscription" "dead_letter_inspect" {
  name  = "${var.service_prefix}events-dead-letter-inspect"
  topic = google_pubsub_topic.dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

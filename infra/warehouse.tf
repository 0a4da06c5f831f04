# Warehouse export: every stored event in BigQuery, through Datastream CDC from Cloud SQL.
# docs/warehouse.md explains the choice (against a Pub/Sub BigQuery subscription and a
# scheduled federated query), the table, the deduplicating view, retention, erasure and cost;
# README.md ("Warehouse export") the order of operations. Everything here exists only while
# warehouse_export_enabled is true (the two warehouse_keep_* variables hold parts of it while
# switching off).
#
#   event_log --pgoutput, publication event_export, slot--> NAT VM (this VPC) <--VPC peering--
#     Datastream private connection --> stream (append-only, backfill_all) --> BigQuery
#     <dataset>.public_event_log (partitioned by day of occurred_at, clustered) --> view events
#
# The database side is in the repository: the publication (migrations/
# 2026-12-02-000005_warehouse_publication) and `migrate maintain`, which grants
# EXPORT_REPLICATION_USER read access and REPLICATION and creates the pgoutput slot
# EXPORT_REPLICATION_SLOT once wal_level is logical (run.tf passes both to the maintain job).

locals {
  warehouse_enabled = var.warehouse_export_enabled
  warehouse_count   = local.warehouse_enabled ? 1 : 0
  # cloudsql.logical_decoding (sql.tf) stays on until the slot is dropped when switching off.
  warehouse_logical_decoding = var.warehouse_export_enabled || var.warehouse_keep_logical_decoding
  warehouse_dataset_count    = var.warehouse_export_enabled || var.warehouse_keep_dataset ? 1 : 0

  # Fixed by the database side (the migration's publication) and by Datastream's naming: with a
  # single target dataset "Datastream creates all tables as <schema>_<table>"
  # (https://cloud.google.com/datastream/docs/destination-bigquery), so public.event_log lands
  # in public_event_log, the table Terraform creates below.
  warehouse_publication = "event_export"
  warehouse_table_id    = "public_event_log"
  warehouse_location    = coalesce(var.warehouse_location, var.region)

  # Env of the maintain job (run.tf): whom to grant, which slot to create. Unset while the
  # export is off, so no slot (which would keep WAL for ever) is ever made for nobody.
  warehouse_maintain_env = local.warehouse_enabled ? {
    EXPORT_REPLICATION_USER = var.warehouse_db_user
    EXPORT_REPLICATION_SLOT = var.warehouse_replication_slot
  } : {}

  # Connections the stream holds on Cloud SQL: the replication connection, one more for
  # Datastream's own queries, and one per concurrent backfill task. Counted in the connection
  # budget (locals.tf). The split of CDC connections is an estimate, not a documented number.
  warehouse_connections = local.warehouse_enabled ? 2 + var.warehouse_backfill_tasks : 0

  # Datastream's service agent. It writes to BigQuery with the Datastream Service Agent role
  # Google grants it on the project: "The permissions required for using the API and ingesting
  # data to BigQuery are granted to the Datastream Service Agent role"
  # (https://cloud.google.com/datastream/docs/configure-bigquery-destination). It also reads
  # the database password from Secret Manager (below).
  datastream_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-datastream.iam.gserviceaccount.com"
}

resource "google_project_service" "warehouse" {
  for_each = toset(local.warehouse_dataset_count == 1 ? concat(
    ["bigquery.googleapis.com"],
    local.warehouse_enabled ? ["datastream.googleapis.com"] : [],
  ) : [])

  service = each.value

  disable_on_destroy         = false
  disable_dependent_services = false
}

# ---- database user ---------------------------------------------------------------------------

# Alphanumeric, like the application's password.
resource "random_password" "datastream" {
  count = local.warehouse_count

  length  = 40
  special = false
}

# A built-in user with a password, as Datastream's PostgreSQL profile expects. It gets nothing
# in Terraform: the maintain job grants it event_export_reader (SELECT on event_log) and
# REPLICATION when EXPORT_REPLICATION_USER names it.
resource "google_sql_user" "datastream" {
  count = local.warehouse_count

  name     = var.warehouse_db_user
  instance = google_sql_database_instance.main.name
  password = random_password.datastream[0].result

  lifecycle {
    precondition {
      condition     = var.warehouse_db_user != var.db_user
      error_message = "warehouse_db_user must differ from db_user: Datastream gets a user of its own."
    }
  }
}

# The password, for Datastream to read: "Datastream integrates with Secret Manager to let you
# securely store authentication resources, such as source database passwords. Rather than use a
# plain text password when creating a connection profile, create and use a secret."
# (https://cloud.google.com/datastream/docs/use-secret-manager)
resource "google_secret_manager_secret" "datastream_password" {
  count = local.warehouse_count

  secret_id = "datastream-db-password"

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "datastream_password" {
  count = local.warehouse_count

  secret      = google_secret_manager_secret.datastream_password[0].id
  secret_data = random_password.datastream[0].result
}

# The same page: the Datastream service account needs Secret Manager Secret Accessor
# (roles/secretmanager.secretAccessor). Granted on this one secret only. The service agent is
# created with Datastream's first resources in the project, hence the dependency.
resource "google_secret_manager_secret_iam_member" "datastream_password" {
  count = local.warehouse_count

  secret_id = google_secret_manager_secret.datastream_password[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.datastream_service_agent

  depends_on = [
    google_datastream_private_connection.warehouse,
    google_datastream_connection_profile.bigquery,
  ]
}

# ---- private connectivity: Datastream -> NAT VM -> Cloud SQL private IP ----------------------

# Cloud SQL has a private IP only. Datastream reaches a VPC through a private connection (VPC
# Network Peering with Datastream's network), but peering is not transitive, so it cannot reach
# the Cloud SQL instance (in Google's service producer network, peered with this VPC) directly:
# "Because Datastream's network can't be peered directly with Cloud SQL's private services
# network, and because VPC peering isn't transitive, a reverse proxy for Cloud SQL is required
# to bridge the connection from Datastream to your Cloud SQL instance." The page's current
# version names the proxy: "To establish connectivity between Datastream and a resource that's
# only accessible from your VPC network, you can use a network address translation (NAT) VM in
# your VPC network. A common use case for a NAT VM is when Datastream needs to connect to a
# Cloud SQL instance." (https://cloud.google.com/datastream/docs/private-connectivity). The VM
# below is that NAT VM.
resource "google_datastream_private_connection" "warehouse" {
  count = local.warehouse_count

  private_connection_id = "${var.service_prefix}datastream"
  display_name          = "${var.service_prefix}datastream"
  location              = var.region

  vpc_peering_config {
    vpc    = google_compute_network.main.id
    subnet = var.warehouse_datastream_cidr
  }

  depends_on = [google_project_service.warehouse]
}

resource "google_compute_subnetwork" "warehouse_proxy" {
  count = local.warehouse_count

  name                     = "${var.service_prefix}datastream-proxy"
  network                  = google_compute_network.main.id
  region                   = var.region
  ip_cidr_range            = var.warehouse_proxy_subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# A fixed address, so that a replaced VM keeps the host name of the connection profile.
resource "google_compute_address" "warehouse_proxy" {
  count = local.warehouse_count

  name         = "${var.service_prefix}datastream-proxy"
  region       = var.region
  address_type = "INTERNAL"
  subnetwork   = google_compute_subnetwork.warehouse_proxy[0].id
}

data "google_compute_zones" "available" {
  count = local.warehouse_count

  region = var.region
  status = "UP"
}

# Its own identity, with nothing but writing its logs (no default Compute Engine account).
resource "google_service_account" "warehouse_proxy" {
  count = local.warehouse_count

  account_id   = "${var.service_prefix}ds-proxy"
  display_name = "Datastream NAT VM"
  description  = "Runtime identity of the VM that forwards Datastream's PostgreSQL connections to the Cloud SQL private IP; writes its logs and nothing else."

  lifecycle {
    precondition {
      condition     = !contains(local.functions, "ds-proxy")
      error_message = "functions/ds-proxy/deploy.json: \"ds-proxy\" is taken by the Datastream NAT VM's service account ${var.service_prefix}ds-proxy; name the function otherwise."
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "warehouse_proxy_log_writer" {
  count = local.warehouse_count

  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.warehouse_proxy[0].member
}

locals {
  # Forward TCP 5432 from Datastream's range to the Cloud SQL private IP (DNAT), with the VM's
  # own address as source (SNAT) so the replies come back through it: the configuration
  # Google's NAT VM example uses (private-connectivity page above). The TLS session runs from
  # Datastream to Cloud SQL through it untouched. Runs at every boot; iptables as in Google's
  # example where the image has it, nftables (Debian's default) otherwise.
  warehouse_proxy_script = <<-EOT
    #!/bin/bash
    set -euo pipefail
    sql_ip='${google_sql_database_instance.main.private_ip_address}'
    source_range='${var.warehouse_datastream_cidr}'
    vm_ip="$(curl -fsS -H 'Metadata-Flavor: Google' http://169.254.169.254/computeMetadata/v1/instance/network-interfaces/0/ip)"
    sysctl -w net.ipv4.ip_forward=1
    if command -v iptables >/dev/null 2>&1; then
      iptables -t nat -F
      iptables -t nat -A PREROUTING -p tcp -s "$source_range" --dport 5432 -j DNAT --to-destination "$sql_ip:5432"
      iptables -t nat -A POSTROUTING -p tcp -d "$sql_ip" --dport 5432 -j SNAT --to-source "$vm_ip"
    else
      nft -f - <<NFT
    table ip datastream_nat
    delete table ip datastream_nat
    table ip datastream_nat {
      chain prerouting { type nat hook prerouting priority dstnat; ip saddr $source_range tcp dport 5432 dnat to $sql_ip:5432; }
      chain postrouting { type nat hook postrouting priority srcnat; ip daddr $sql_ip tcp dport 5432 snat to $vm_ip; }
    }
    NFT
    fi
  EOT
}

resource "google_compute_instance" "warehouse_proxy" {
  #checkov:skip=CKV_GCP_38:The boot disk holds a stock Debian image and a forwarding rule, no data (the database traffic only passes through, TLS-encrypted end to end); Google-managed encryption at rest is enough, a customer-supplied key would add key handling for nothing.
  count = local.warehouse_count

  name         = "${var.service_prefix}datastream-proxy"
  machine_type = var.warehouse_proxy_machine_type
  zone         = data.google_compute_zones.available[0].names[0]
  description  = "NAT VM: forwards Datastream's PostgreSQL connections (from ${var.warehouse_datastream_cidr}) to the Cloud SQL private IP."

  # A changed script (a new Cloud SQL address) replaces the VM; the address stays.
  metadata_startup_script = local.warehouse_proxy_script
  metadata = {
    block-project-ssh-keys = "true"
    enable-oslogin         = "TRUE"
  }

  boot_disk {
    initialize_params {
      image = "debian-cloud/debian-12"
      size  = 10
      type  = "pd-balanced"
    }
  }

  # No external address: it talks to Datastream (peered) and Cloud SQL (private) only.
  network_interface {
    subnetwork = google_compute_subnetwork.warehouse_proxy[0].id
    network_ip = google_compute_address.warehouse_proxy[0].address
  }

  tags = ["datastream-proxy"]

  service_account {
    email  = google_service_account.warehouse_proxy[0].email
    scopes = ["https://www.googleapis.com/auth/logging.write"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  scheduling {
    automatic_restart   = true
    on_host_maintenance = "MIGRATE"
  }

  depends_on = [google_project_iam_member.warehouse_proxy_log_writer]
}

# The only way in: PostgreSQL from Datastream's peering range, to the NAT VM only. Everything
# else stays refused by deny-all-ingress (network.tf).
resource "google_compute_firewall" "datastream_to_proxy" {
  count = local.warehouse_count

  name        = "${var.service_prefix}allow-datastream-proxy"
  network     = google_compute_network.main.id
  direction   = "INGRESS"
  priority    = 1000
  description = "Datastream (private connection range) to the NAT VM on PostgreSQL's port."

  allow {
    protocol = "tcp"
    ports    = ["5432"]
  }

  source_ranges           = [var.warehouse_datastream_cidr]
  target_service_accounts = [google_service_account.warehouse_proxy[0].email]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# ---- connection profiles and the stream -----------------------------------------------------

# The source: PostgreSQL through the NAT VM, over the private connection. No ssl_config: this
# provider version has none for PostgreSQL, and without it "the connection will use the default
# SSL mode, which is prefer (i.e. this mode will only use encryption if enabled from database
# side [...])" (https://cloud.google.com/python/docs/reference/datastream/latest/google.cloud.datastream_v1.types.PostgresqlProfile);
# the instance enforces TLS (ssl_mode ENCRYPTED_ONLY, sql.tf), so the session is encrypted.
# Created without validation: on the first apply the instance may still be restarting for
# logical decoding and the VM booting; the stream validates the whole path when it starts.
resource "google_datastream_connection_profile" "postgres" {
  count = local.warehouse_count

  connection_profile_id     = "${var.service_prefix}events-postgres"
  display_name              = "${var.service_prefix}events-postgres"
  location                  = var.region
  create_without_validation = true

  postgresql_profile {
    hostname                       = google_compute_address.warehouse_proxy[0].address
    port                           = 5432
    username                       = google_sql_user.datastream[0].name
    secret_manager_stored_password = google_secret_manager_secret_version.datastream_password[0].name
    database                       = google_sql_database.events.name
  }

  private_connectivity {
    private_connection = google_datastream_private_connection.warehouse[0].id
  }

  depends_on = [google_secret_manager_secret_iam_member.datastream_password]
}

resource "google_datastream_connection_profile" "bigquery" {
  count = local.warehouse_count

  connection_profile_id = "${var.service_prefix}events-bigquery"
  display_name          = "${var.service_prefix}events-bigquery"
  location              = var.region

  bigquery_profile {}

  depends_on = [google_project_service.warehouse]
}

# Append-only, because event_log has no primary key (a partitioned table's keys must contain
# the partition key) and the moves and erasure deletes must stay visible as changes; the view
# below turns the changes into one row per event. The root table only, as Google documents for
# replicating a partitioned table as one table: publish_via_partition_root = true, and "Select
# only the root table and make sure that the partitioned tables aren't selected."
# (https://cloud.google.com/datastream/docs/work-with-postgresql-partitioned-tables).
# backfill_all copies what event_log holds when the stream starts; the slot carries the rest.
resource "google_datastream_stream" "events" {
  count = local.warehouse_count

  stream_id                 = "${var.service_prefix}events"
  display_name              = "${var.service_prefix}events"
  location                  = var.region
  desired_state             = var.warehouse_stream_state
  create_without_validation = true

  source_config {
    source_connection_profile = google_datastream_connection_profile.postgres[0].id

    postgresql_source_config {
      publication                   = local.warehouse_publication
      replication_slot              = var.warehouse_replication_slot
      max_concurrent_backfill_tasks = var.warehouse_backfill_tasks

      include_objects {
        postgresql_schemas {
          schema = "public"
          postgresql_tables {
            table = "event_log"
          }
        }
      }
    }
  }

  destination_config {
    destination_connection_profile = google_datastream_connection_profile.bigquery[0].id

    bigquery_destination_config {
      data_freshness = var.warehouse_data_freshness

      single_target_dataset {
        dataset_id = google_bigquery_dataset.warehouse[0].id
      }

      append_only {}
    }
  }

  backfill_all {}

  depends_on = [
    google_bigquery_table.events,
    google_compute_firewall.datastream_to_proxy,
    google_compute_instance.warehouse_proxy,
  ]
}

# ---- BigQuery -----------------------------------------------------------------------------

resource "google_bigquery_dataset" "warehouse" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption at rest, like Cloud SQL where the same events live (sql.tf); a customer-managed key would need Cloud KMS, which this stack does not run.
  count = local.warehouse_dataset_count

  dataset_id    = var.warehouse_dataset_id
  friendly_name = "Event warehouse"
  description   = "Every stored event, copied from Cloud SQL by the Datastream stream ${var.service_prefix}events (docs/warehouse.md). Query the view events."
  location      = local.warehouse_location

  # Never delete the copy of the events along with the dataset by accident.
  delete_contents_on_destroy = false

  depends_on = [google_project_service.warehouse]
}

# The table Datastream writes, created beforehand so that it is partitioned and clustered:
# Datastream applies partitioning and clustering only to tables it creates, and this provider
# version cannot configure them on the stream, so the table is made the way Google describes
# for partitioned tables, "Create manually a BigQuery table compatible with Datastream"
# (https://cloud.google.com/datastream/docs/best-practices-partitioned-tables), with the
# columns of event_log in their BigQuery types and the datastream_metadata column of the
# append-only write mode: "UUID [...] STRING, SOURCE_TIMESTAMP [...] INTEGER,
# CHANGE_SEQUENCE_NUMBER [...] STRING, CHANGE_TYPE [...] STRING [...] INSERT, UPDATE-INSERT,
# UPDATE-DELETE or DELETE, SORT_KEYS [...] an array of STRING values"
# (https://cloud.google.com/datastream/docs/destination-bigquery). All columns nullable, as in
# the tables Datastream creates.
resource "google_bigquery_table" "events" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption at rest, as for the dataset (see there).
  count = local.warehouse_dataset_count

  dataset_id  = google_bigquery_dataset.warehouse[0].dataset_id
  table_id    = local.warehouse_table_id
  description = "Changes of public.event_log as Datastream writes them (append-only: inserts, and deletes from erasure or from maintenance moving a row between partitions). Query the view events instead."

  deletion_protection = true

  time_partitioning {
    type          = "DAY"
    field         = "occurred_at"
    expiration_ms = var.warehouse_retention_days == null ? null : var.warehouse_retention_days * 86400000
  }

  clustering = ["tenant_id", "event_name"]

  schema = jsonencode([
    { name = "tenant_id", type = "STRING", mode = "NULLABLE" },
    { name = "event_id", type = "STRING", mode = "NULLABLE" },
    { name = "event_name", type = "STRING", mode = "NULLABLE" },
    { name = "occurred_at", type = "TIMESTAMP", mode = "NULLABLE" },
    { name = "properties", type = "JSON", mode = "NULLABLE" },
    { name = "payload_hash", type = "BYTES", mode = "NULLABLE" },
    { name = "received_at", type = "TIMESTAMP", mode = "NULLABLE" },
    {
      name = "datastream_metadata", type = "RECORD", mode = "NULLABLE"
      fields = [
        { name = "uuid", type = "STRING", mode = "NULLABLE" },
        { name = "source_timestamp", type = "INTEGER", mode = "NULLABLE" },
        { name = "change_sequence_number", type = "STRING", mode = "NULLABLE" },
        { name = "change_type", type = "STRING", mode = "NULLABLE" },
        { name = "sort_keys", type = "STRING", mode = "REPEATED" },
      ]
    },
  ])
}

# What users query: each event once, as it is stored. Per event the latest change wins, and an
# event whose latest change is a delete (erasure) is left out. An event's identity never
# changes its name or time (a move between partitions deletes and re-inserts the same row), so
# event_name and occurred_at can join the window's key; that lets filters on them (the table's
# partitioning and clustering columns) reach the table through the view. Changes in one
# transaction share a source timestamp: there the insert wins, because the only transaction
# that deletes and inserts the same event is a move, which deletes first.
resource "google_bigquery_table" "events_view" {
  #checkov:skip=CKV_GCP_80:A view stores no data to encrypt.
  count = local.warehouse_dataset_count

  dataset_id          = google_bigquery_dataset.warehouse[0].dataset_id
  table_id            = "events"
  description         = "Every stored event once: the latest change per (tenant_id, event_id) of ${local.warehouse_table_id}, without erased events (docs/warehouse.md)."
  deletion_protection = true

  view {
    use_legacy_sql = false
    query          = <<-SQL
      SELECT tenant_id, event_id, event_name, occurred_at, properties, payload_hash, received_at
      FROM (
        SELECT
          tenant_id, event_id, event_name, occurred_at, properties, payload_hash, received_at,
          datastream_metadata.change_type AS change_type,
          ROW_NUMBER() OVER (
            PARTITION BY tenant_id, event_id, event_name, occurred_at
            ORDER BY datastream_metadata.source_timestamp DESC,
                     IF(datastream_metadata.change_type = 'DELETE', 0, 1) DESC,
                     datastream_metadata.change_sequence_number DESC
          ) AS change_rank
        FROM `${var.project_id}.${google_bigquery_dataset.warehouse[0].dataset_id}.${google_bigquery_table.events[0].table_id}`
      )
      WHERE change_rank = 1 AND change_type != 'DELETE'
    SQL
  }
}

# ---- alerts -------------------------------------------------------------------------------

locals {
  warehouse_stream_filter = local.warehouse_enabled ? "resource.type = \"datastream.googleapis.com/Stream\" AND resource.labels.stream_id = \"${google_datastream_stream.events[0].stream_id}\"" : ""
}

# The stream: behind the source, stopped, or dropping events. Freshness is "the time elapsed
# between the source timestamp and the read timestamp for the oldest event being processed. If
# there are no new events to read from the source, the freshness is set to 0."
# (https://cloud.google.com/datastream/docs/monitor-a-stream), so it is reported while the
# stream runs, idle or not; its absence means the stream is not running. Off while the stream
# is meant to be paused or not started.
resource "google_monitoring_alert_policy" "warehouse_stream" {
  count = local.warehouse_count

  display_name          = "${google_datastream_stream.events[0].stream_id}: warehouse export behind, stopped or dropping events"
  combiner              = "OR"
  severity              = "ERROR"
  enabled               = var.warehouse_stream_state == "RUNNING"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Data freshness above ${var.alert_warehouse_freshness_seconds} s for 10 min"

    condition_threshold {
      filter          = "metric.type = \"datastream.googleapis.com/stream/freshness\" AND ${local.warehouse_stream_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_warehouse_freshness_seconds
      duration        = "600s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "No data freshness reported for 30 min (stream not running)"

    condition_absent {
      filter   = "metric.type = \"datastream.googleapis.com/stream/freshness\" AND ${local.warehouse_stream_filter}"
      duration = "1800s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "Unsupported events (not written to BigQuery)"

    condition_threshold {
      filter          = "metric.type = \"datastream.googleapis.com/stream/unsupported_event_count\" AND ${local.warehouse_stream_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.stream_id"]
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
    content   = "The Datastream stream `${google_datastream_stream.events[0].stream_id}` (warehouse export to BigQuery `${var.warehouse_dataset_id}`) is behind, not running, or reports unsupported events. Events are not lost while it is behind or stopped: the replication slot `${var.warehouse_replication_slot}` keeps the changes, and Cloud SQL keeps their WAL (disk grows). Look at the stream's status and errors: `gcloud datastream streams describe ${google_datastream_stream.events[0].stream_id} --location=${var.region}` or Console > Datastream > Streams. Usual causes: the NAT VM `${google_compute_instance.warehouse_proxy[0].name}` is down, the slot or grants are missing (run `gcloud run jobs execute ${google_cloud_run_v2_job.maintain.name} --region=${var.region} --wait`), the password secret is unreadable, or BigQuery refused rows. README.md, \"Warehouse export\"."
  }
}

# The slot. Cloud SQL publishes no metric of the WAL a replication slot retains (its
# replication metrics are for read replicas); the closest is the age of the oldest transaction
# a replication slot holds back, "oldest transaction type can be one of [running, prepared,
# replication_slot, replica]" (cloudsql.googleapis.com/database/postgresql/vacuum/
# oldest_transaction_age, https://cloud.google.com/monitoring/api/metrics_gcp). A slot nobody
# reads stops advancing and keeps its WAL; this fires when it has stood still long enough. It
# stays while logical decoding does, i.e. also in the switching-off window when the stream is
# gone but the slot may not be. The stream policy above catches a stopped stream much sooner.
resource "google_monitoring_alert_policy" "warehouse_slot" {
  count = local.warehouse_logical_decoding ? 1 : 0

  display_name          = "${google_sql_database_instance.main.name}: replication slot holds back more than ${var.alert_warehouse_slot_xid_age} transactions"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Oldest transaction held by a replication slot"

    condition_threshold {
      filter          = "metric.type = \"cloudsql.googleapis.com/database/postgresql/vacuum/oldest_transaction_age\" AND resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${var.project_id}:${google_sql_database_instance.main.name}\" AND metric.labels.oldest_transaction_type = \"replication_slot\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_warehouse_slot_xid_age
      duration        = "900s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
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
    content   = "A replication slot on `${google_sql_database_instance.main.name}` has not advanced for more than ${var.alert_warehouse_slot_xid_age} transactions: nothing reads it, and Cloud SQL keeps all WAL since (the disk grows and never shrinks). List the slots with psql (README.md, \"psql as an operator\"): `SELECT slot_name, active, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) AS retained FROM pg_replication_slots;`. If it is `${var.warehouse_replication_slot}` and the export is meant to run, bring the Datastream stream back (its own alert says why it stopped). If the export was switched off, drop the slot: `SELECT pg_drop_replication_slot('${var.warehouse_replication_slot}');` (README.md, \"Warehouse export\")."
  }
}

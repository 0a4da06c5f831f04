# Instance names cannot be reused for about a week after deletion: a suffix keeps a rebuilt
# stack from waiting on that.
resource "random_id" "sql_suffix" {
  byte_length = 3
}

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV_GCP_79:PostgreSQL 15 is the version the project builds and tests against (docker-compose, CI); a major upgrade is a deliberate migration, not a lint fix.
  #checkov:skip=CKV_GCP_108:Clients are Cloud Run instances on private egress addresses without reverse DNS; log_hostname would add a lookup to every new connection and log nothing useful. log_connections records the address.
  #checkov:skip=CKV_GCP_6:ssl_mode is ENCRYPTED_ONLY, which refuses every connection without TLS (what the check asks for); the check only accepts TRUSTED_CLIENT_CERTIFICATE_REQUIRED, which also demands a client certificate. The functions authenticate by password over TLS to the private IP and verify the server against the instance CA; client certificates would put private keys into Terraform state and Secret Manager. docs/cloud-sql-connectivity.md.
  #checkov:skip=CKV2_GCP_13:log_duration writes a line for every statement, i.e. per ingested event; Query Insights already gives per-query latency without that volume.
  name                = "${var.service_prefix}pg-${random_id.sql_suffix.hex}"
  database_version    = "POSTGRES_15"
  region              = var.region
  deletion_protection = true

  settings {
    tier                        = var.db_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.db_availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.db_disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = true

    ip_configuration {
      ipv4_enabled       = false
      private_network    = google_compute_network.main.id
      allocated_ip_range = google_compute_global_address.private_services.name
      # The functions connect over TCP to the private IP (Direct VPC egress) with password
      # authentication and TLS, verifying the server against this instance's CA
      # (sslmode=verify-ca, secrets.tf). They present no client certificate, so the mode is
      # "TLS required, client certificate not checked"; TRUSTED_CLIENT_CERTIFICATE_REQUIRED
      # would refuse them. The Cloud SQL Auth Proxy (operators) still works: it always uses
      # TLS with its own client certificate. docs/cloud-sql-connectivity.md has the sources.
      ssl_mode = "ENCRYPTED_ONLY"
      # Per-instance CA: the CA signs this instance's server certificate only, so checking the
      # chain against it (verify-ca) identifies the server. Its server certificate does not
      # name the private IP (with this CA it carries a DNS name only for Private Service
      # Connect instances), so hostname checking (verify-full) cannot succeed against the IP.
      server_ca_mode = "GOOGLE_MANAGED_INTERNAL_CA"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = var.db_backup_start_time
      transaction_log_retention_days = var.db_log_retention_days

      backup_retention_settings {
        retained_backups = var.db_retained_backups
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 3
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      # Client addresses are Cloud Run egress IPs: noise, and personal data in some readings.
      record_client_address = false
    }

    database_flags {
      name  = "max_connections"
      value = tostring(var.db_max_connections)
    }

    # Audit-relevant logging (connections, lock waits, temp files, DDL); statements themselves
    # are not logged because event properties are customer data.
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    # Loads pgaudit so an operator can turn on session audit logging (CREATE EXTENSION pgaudit
    # plus a pgaudit.log flag) without a restart-inducing flag change later.
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    # Logical decoding (wal_level = logical) for the warehouse export's Datastream stream
    # (warehouse.tf). Turning it on or off restarts the instance. Datastream: "Choose the
    # cloudsql.logical_decoding flag [...] Set the flag value to on. [...] You'll need to restart
    # your instance" (https://cloud.google.com/datastream/docs/configure-cloudsql-psql). It
    # stays on while a slot may exist (warehouse_keep_logical_decoding): PostgreSQL will not
    # start with a logical slot and wal_level below logical.
    dynamic "database_flags" {
      for_each = local.warehouse_logical_decoding ? ["on"] : []
      content {
        name  = "cloudsql.logical_decoding"
        value = database_flags.value
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.connection_budget <= var.db_max_connections
      error_message = "Connection budget exceeded: sum over services of max_instances x pool_size, + 2 for the migrate and maintain jobs, + ${local.warehouse_connections} for the warehouse export (Datastream), + db_connection_headroom = ${local.connection_budget}, but db_max_connections = ${var.db_max_connections}. Lower max_instances or pool_size, or raise db_max_connections (and the tier)."
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "events" {
  name     = var.db_name
  instance = google_sql_database_instance.main.name
}

# Alphanumeric only: it goes into a URL (DATABASE_URL) without percent-encoding.
resource "random_password" "db" {
  length  = 40
  special = false
}

resource "google_sql_user" "app" {
  name     = var.db_user
  instance = google_sql_database_instance.main.name
  password = random_password.db.result

  # The user owns the schema; PostgreSQL refuses to drop it while it owns objects.
  deletion_policy = "ABANDON"
}

# Tenant keys: {"tenant": ["key", ...]}. Terraform creates only the container; operators add
# versions (README.md: "Tenant keys"), so keys never pass through Terraform state. The services
# read versions/latest with the Secret Manager API at runtime and refresh it in the background.
resource "google_secret_manager_secret" "tenant_keys" {
  secret_id = var.tenant_keys_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# DATABASE_URL, injected as an env var (secret_key_ref): TCP to the instance's private IP
# (reached through Direct VPC egress), TLS required and the server checked against the
# instance's CA, which every function mounts from the cloudsql-server-ca secret below.
# docs/cloud-sql-connectivity.md explains the choice and quotes Google's documentation.
resource "google_secret_manager_secret" "database_url" {
  secret_id = var.database_url_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "database_url" {
  secret = google_secret_manager_secret.database_url.id
  # verify-ca, not verify-full: the per-instance CA's server certificate does not name the
  # private IP, and checking the chain against this instance's own CA already identifies it.
  secret_data = "postgres://${google_sql_user.app.name}:${random_password.db.result}@${google_sql_database_instance.main.private_ip_address}:5432/${google_sql_database.events.name}?sslmode=verify-ca&sslrootcert=${local.cloudsql_ca_path}"
}

# The instance's server CA certificate(s), PEM, mounted as a file in every function
# (local.cloudsql_ca_path) for sslrootcert. All CAs the instance trusts are listed, so during a
# CA rotation the bundle holds the current and the upcoming CA (README.md, "Key rotation").
# Not secret, but a secret volume is how Cloud Run mounts a file.
data "google_sql_ca_certs" "main" {
  instance = google_sql_database_instance.main.name
}

resource "google_secret_manager_secret" "cloudsql_ca" {
  secret_id = var.cloudsql_ca_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "cloudsql_ca" {
  secret      = google_secret_manager_secret.cloudsql_ca.id
  secret_data = "${join("\n", [for c in data.google_sql_ca_certs.main.certs : trimspace(c.cert)])}\n"

  lifecycle {
    precondition {
      condition     = length(data.google_sql_ca_certs.main.certs) > 0
      error_message = "The Cloud SQL instance lists no server CA certificate: the functions could not verify it (sslmode=verify-ca)."
    }
  }
}

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

# DATABASE_URL for the Cloud SQL unix socket, injected as an env var (secret_key_ref).
resource "google_secret_manager_secret" "database_url" {
  secret_id = var.database_url_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "database_url" {
  secret      = google_secret_manager_secret.database_url.id
  secret_data = "postgres://${google_sql_user.app.name}:${random_password.db.result}@/${google_sql_database.events.name}?host=/cloudsql/${google_sql_database_instance.main.connection_name}"
}

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest. The images hold compiled code only, no data or secrets; CMEK would add a KMS key lifecycle for no protected asset.
  location      = var.region
  repository_id = var.artifact_repository_id
  format        = "DOCKER"
  description   = "Function images, tagged with the commit SHA they were built from."

  docker_config {
    # A retried build of the same commit pushes a rebuilt (non byte-identical) image under the
    # same tag; immutable tags would make that retry fail.
    immutable_tags = false
  }

  # Keep the last 20 images of each function for rollbacks; delete older ones after 30 days.
  # KEEP wins over DELETE, so a rarely deployed function never loses its recent images.
  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Source archives for manual `gcloud builds submit` runs as the deployer account (README.md).
# Triggered builds fetch from GitHub and do not use it.
resource "google_storage_bucket" "build_sources" {
  #checkov:skip=CKV_GCP_62:Holds throwaway source archives for manual builds, deleted after 7 days; the sources are in Git, and Cloud Audit Logs already record who submitted builds.
  #checkov:skip=CKV_GCP_78:Versioning would keep copies of archives that exist only to be read once by a build; Git is the history.
  name                        = "${var.project_id}-${var.service_prefix}build-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

locals {
  # What each function's image is built from: its own directory (deploy.json included), what
  # every function shares, and the extra_build_inputs of its deploy.json. A change anywhere
  # else (infra/, docs, tests/) deploys nothing. shared/data embeds migrations/, but only
  # migrate applies them, so only migrate lists migrations/**.
  common_build_inputs = ["shared/**", "Cargo.toml", "Cargo.lock", "Dockerfile", ".dockerignore", "cloudbuild.yaml"]
  build_inputs = {
    for f in local.functions : f => distinct(concat(
      ["functions/${f}/**"],
      local.common_build_inputs,
      local.deploy[f].extra_build_inputs,
    ))
  }
}

# One trigger per function: a push to the branch that touches a function's inputs builds,
# migrates and deploys that function only.
resource "google_cloudbuild_trigger" "fn" {
  for_each = toset(local.functions)

  name            = "${var.service_prefix}${each.key}"
  description     = "Build, migrate and deploy ${each.key} on pushes to ${var.branch}."
  filename        = "cloudbuild.yaml"
  included_files  = local.build_inputs[each.key]
  service_account = google_service_account.build.id

  github {
    owner = var.github_owner
    name  = var.github_repo
    push {
      branch = "^${var.branch}$"
    }
  }

  substitutions = {
    _FUNCTION       = each.key
    _REGION         = var.region
    _REPOSITORY     = google_artifact_registry_repository.images.repository_id
    _SERVICE_PREFIX = var.service_prefix
  }

  depends_on = [
    google_artifact_registry_repository_iam_member.build_writer,
    google_project_iam_member.build_log_writer,
  ]
}

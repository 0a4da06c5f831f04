terraform {
  # optional() object attributes, preconditions and the gcs backend as used here all work
  # from 1.6; nothing newer is needed.
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Partial configuration: the state bucket is created once by hand (see README.md) and passed
  # at init time, so no environment's bucket name is committed.
  #   terraform init -backend-config="bucket=<state-bucket>" -backend-config="prefix=event-analytics"
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = var.labels
}

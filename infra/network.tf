# Cloud SQL has a private IP only. Cloud Run reaches it through Direct VPC egress into this
# network (no Serverless VPC Access connector VMs to run): the functions open TCP connections
# to the private address (DATABASE_URL, secrets.tf), which lies in the private services range
# below and is peered into this VPC.

resource "google_compute_network" "main" {
  name                    = "${var.service_prefix}vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.enabled]
}

resource "google_compute_subnetwork" "run" {
  name                     = "${var.service_prefix}run-egress"
  network                  = google_compute_network.main.id
  region                   = var.region
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Range Google's service producer network (where Cloud SQL lives) takes its addresses from.
resource "google_compute_global_address" "private_services" {
  name          = "${var.service_prefix}private-services"
  network       = google_compute_network.main.id
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.private_services_prefix_length
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]

  # Deleting the peering while Cloud SQL still uses it fails; abandon it instead so a destroy
  # of the stack can finish once the instance is gone.
  deletion_policy = "ABANDON"
}

# Nothing in this network accepts inbound connections: Cloud Run only sends through it (replies
# are allowed by connection tracking). Stated explicitly, and logged, rather than left to the
# implied rule.
resource "google_compute_firewall" "deny_all_ingress" {
  name        = "${var.service_prefix}deny-all-ingress"
  network     = google_compute_network.main.id
  direction   = "INGRESS"
  priority    = 65534
  description = "Deny all inbound traffic; nothing in this VPC serves connections."

  deny {
    protocol = "all"
  }

  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

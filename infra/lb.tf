# Global external Application Load Balancer: the only public entry. Its URL map is the API's
# routing table, mirrored locally by deploy/gateway/nginx.conf:
#   /events, /events/*  -> events
#   /metrics            -> metrics
#   /health, /ready     -> health
#   anything else       -> health (answers 404 problem+json)

resource "google_compute_global_address" "lb" {
  name = "${var.service_prefix}lb"

  depends_on = [google_project_service.enabled]
}

resource "google_compute_region_network_endpoint_group" "fn" {
  for_each = toset(local.public_functions)

  name                  = "${var.service_prefix}${each.key}-neg"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = google_cloud_run_v2_service.fn[each.key].name
  }
}

resource "google_compute_backend_service" "fn" {
  for_each = toset(local.public_functions)

  name                  = "${var.service_prefix}${each.key}"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.edge.id

  backend {
    group = google_compute_region_network_endpoint_group.fn[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

# Edge protection in front of every backend: a per-client rate limit (the API is keyed, but a
# flood of bad keys still costs instances and key lookups) and the preconfigured Log4j rule,
# cheap insurance against scanners even though nothing here runs Java.
resource "google_compute_security_policy" "edge" {
  name        = "${var.service_prefix}edge"
  description = "Rate limit per client IP and preconfigured WAF rules for the event analytics API."

  rule {
    action      = "deny(403)"
    priority    = 1000
    description = "Log4j (CVE-2021-44228) probes"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
  }

  rule {
    action      = "throttle"
    priority    = 2000
    description = "Per-IP rate limit"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"
      rate_limit_threshold {
        count        = var.rate_limit_per_ip_per_minute
        interval_sec = 60
      }
    }
  }

  rule {
    action      = "allow"
    priority    = 2147483647
    description = "Default allow"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}

resource "google_compute_url_map" "https" {
  name            = "${var.service_prefix}https"
  default_service = google_compute_backend_service.fn["health"].id

  host_rule {
    hosts        = ["*"]
    path_matcher = "api"
  }

  path_matcher {
    name            = "api"
    default_service = google_compute_backend_service.fn["health"].id

    path_rule {
      paths   = ["/events", "/events/*"]
      service = google_compute_backend_service.fn["events"].id
    }

    path_rule {
      paths   = ["/metrics"]
      service = google_compute_backend_service.fn["metrics"].id
    }

    path_rule {
      paths   = ["/health", "/ready"]
      service = google_compute_backend_service.fn["health"].id
    }
  }
}

# Named after the domain so a new domain creates the new certificate before the old one goes.
resource "google_compute_managed_ssl_certificate" "api" {
  name = "${var.service_prefix}api-${substr(sha1(var.domain), 0, 8)}"

  managed {
    domains = [var.domain]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_ssl_policy" "modern" {
  name            = "${var.service_prefix}tls12-modern"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "api" {
  name             = "${var.service_prefix}https"
  url_map          = google_compute_url_map.https.id
  ssl_certificates = [google_compute_managed_ssl_certificate.api.id]
  ssl_policy       = google_compute_ssl_policy.modern.id
}

resource "google_compute_global_forwarding_rule" "https" {
  name                  = "${var.service_prefix}https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  port_range            = "443"
  ip_address            = google_compute_global_address.lb.address
  target                = google_compute_target_https_proxy.api.id
}

# Port 80 only redirects to HTTPS; API keys never travel in plaintext beyond the first request.
resource "google_compute_url_map" "http_redirect" {
  name = "${var.service_prefix}http-redirect"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  name    = "${var.service_prefix}http-redirect"
  url_map = google_compute_url_map.http_redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  name                  = "${var.service_prefix}http-redirect"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  port_range            = "80"
  ip_address            = google_compute_global_address.lb.address
  target                = google_compute_target_http_proxy.redirect.id
}

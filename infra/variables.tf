# ---- project -------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that holds the whole stack (one project per environment)."
  type        = string
}

variable "region" {
  description = "Region for Cloud Run, Cloud SQL, Artifact Registry, the subnet and the serverless NEGs."
  type        = string
  default     = "europe-west1"
}

variable "service_prefix" {
  description = "Prefix of every named resource (Cloud Run services and job, service accounts, SQL instance, LB parts). Must match _SERVICE_PREFIX in the Cloud Build triggers, which this configuration sets itself."
  type        = string
  default     = "analytics-"

  validation {
    # Service account ids are 6-30 characters; the longest suffix used is "pubsub-push" (11).
    condition     = can(regex("^([a-z][a-z0-9-]{0,17}-)?$", var.service_prefix))
    error_message = "service_prefix must be empty or lowercase letters, digits and hyphens, start with a letter, end with '-' and be at most 19 characters."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them (provider default_labels)."
  type        = map(string)
  default = {
    app = "event-analytics"
  }
}

# ---- images and deploys --------------------------------------------------------------------

variable "artifact_repository_id" {
  description = "Artifact Registry Docker repository for the function images (the _REPOSITORY substitution of cloudbuild.yaml)."
  type        = string
  default     = "event-analytics"
}

variable "placeholder_image" {
  description = "Image the Cloud Run services are created with. Cloud Build owns the image afterwards (Terraform ignores later changes to it). It must answer GET /health on $PORT."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/hello"
}

variable "placeholder_job_image" {
  description = "Image the migrate job is created with; a container that exits 0. Cloud Build replaces it with the migrate image."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/job"
}

variable "github_owner" {
  description = "GitHub owner (user or organisation) of the repository the Cloud Build triggers watch. The Cloud Build GitHub App must be installed on it."
  type        = string
}

variable "github_repo" {
  description = "GitHub repository name the Cloud Build triggers watch."
  type        = string
}

variable "branch" {
  description = "Branch whose pushes deploy. Used as an anchored regular expression."
  type        = string
  default     = "main"
}

# ---- network -------------------------------------------------------------------------------

variable "subnet_cidr" {
  description = "Range of the subnet Cloud Run uses for Direct VPC egress. Each instance takes addresses from it, so size it for the sum of max instances (x2 during rollouts)."
  type        = string
  default     = "10.8.0.0/24"
}

variable "private_services_prefix_length" {
  description = "Prefix length of the range reserved for private services access (Cloud SQL private IP)."
  type        = number
  default     = 20

  validation {
    condition     = var.private_services_prefix_length >= 8 && var.private_services_prefix_length <= 24
    error_message = "private_services_prefix_length must be between 8 and 24 (Cloud SQL needs at least a /24)."
  }
}

# ---- database ------------------------------------------------------------------------------

variable "db_tier" {
  description = "Cloud SQL machine tier. max_connections must fit the tier's memory."
  type        = string
  default     = "db-custom-1-3840"
}

variable "db_availability_type" {
  description = "REGIONAL (HA with a standby in another zone) or ZONAL."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.db_availability_type)
    error_message = "db_availability_type must be REGIONAL or ZONAL."
  }
}

variable "db_disk_size_gb" {
  description = "Initial SSD size in GB; the disk grows automatically."
  type        = number
  default     = 20
}

variable "db_max_connections" {
  description = "PostgreSQL max_connections flag. Must cover every service's max instances x pool size, plus migrate and db_connection_headroom (checked at plan time)."
  type        = number
  default     = 200

  validation {
    condition     = var.db_max_connections >= 25 && var.db_max_connections <= 10000
    error_message = "db_max_connections must be between 25 and 10000."
  }
}

variable "db_connection_headroom" {
  description = "Connections kept free beyond the services' pools and migrate: superuser-reserved slots, an operator's psql session, and instances of an old revision still draining during a rollout."
  type        = number
  default     = 20
}

variable "db_backup_start_time" {
  description = "Daily backup window start, HH:MM in UTC."
  type        = string
  default     = "02:00"
}

variable "db_retained_backups" {
  description = "Number of daily backups kept."
  type        = number
  default     = 14
}

variable "db_log_retention_days" {
  description = "Days of write-ahead log kept for point-in-time recovery (1-7 on the Enterprise edition)."
  type        = number
  default     = 7

  validation {
    condition     = var.db_log_retention_days >= 1 && var.db_log_retention_days <= 7
    error_message = "db_log_retention_days must be between 1 and 7."
  }
}

variable "db_name" {
  description = "PostgreSQL database the functions use."
  type        = string
  default     = "events"
}

variable "db_user" {
  description = "PostgreSQL user the functions and migrate connect as (built-in user with a generated password)."
  type        = string
  default     = "events"
}

# ---- secrets -------------------------------------------------------------------------------

variable "tenant_keys_secret_id" {
  description = "Secret Manager secret holding the tenant keys JSON ({\"tenant\":[\"key\",...]}). Terraform creates the secret, never a version: operators add versions (README.md)."
  type        = string
  default     = "tenant-keys"
}

variable "database_url_secret_id" {
  description = "Secret Manager secret holding the full DATABASE_URL (Cloud SQL unix socket). Terraform writes its versions."
  type        = string
  default     = "database-url"
}

# ---- services ------------------------------------------------------------------------------

variable "services" {
  description = "Per Cloud Run service: instances, request concurrency, DB pool size and resources. Sum of max_instances x pool_size must fit db_max_connections (checked at plan time)."
  type = map(object({
    min_instances = number
    max_instances = number
    concurrency   = number
    pool_size     = number
    cpu           = optional(string, "1")
    memory        = optional(string, "256Mi")
  }))
  default = {
    events  = { min_instances = 1, max_instances = 10, concurrency = 80, pool_size = 10 }
    metrics = { min_instances = 0, max_instances = 4, concurrency = 80, pool_size = 5 }
    health  = { min_instances = 0, max_instances = 2, concurrency = 80, pool_size = 2 }
    worker  = { min_instances = 0, max_instances = 4, concurrency = 40, pool_size = 10 }
  }

  validation {
    condition     = length(var.services) == 4 && alltrue([for f in ["events", "metrics", "health", "worker"] : contains(keys(var.services), f)])
    error_message = "services must have exactly the keys events, metrics, health and worker."
  }

  validation {
    condition = alltrue([for s in values(var.services) :
      s.min_instances >= 0 && s.max_instances >= 1 && s.min_instances <= s.max_instances &&
      s.concurrency >= 1 && s.concurrency <= 1000 && s.pool_size >= 1
    ])
    error_message = "each service needs 0 <= min_instances <= max_instances, max_instances >= 1, 1 <= concurrency <= 1000 and pool_size >= 1."
  }
}

variable "ingest_mode" {
  description = "INGEST_MODE of the events service: inline (write to the database in the request) or pubsub (publish, answer 202; the worker writes). Deploy the worker before switching to pubsub."
  type        = string
  default     = "inline"

  validation {
    condition     = contains(["inline", "pubsub"], var.ingest_mode)
    error_message = "ingest_mode must be inline or pubsub."
  }
}

variable "rust_log" {
  description = "RUST_LOG filter for every function."
  type        = string
  default     = "info"
}

variable "db_acquire_timeout_ms" {
  description = "DB_ACQUIRE_TIMEOUT_MS: how long a request waits for a pooled connection before answering 503."
  type        = number
  default     = 2000
}

variable "db_statement_timeout_ms" {
  description = "DB_STATEMENT_TIMEOUT_MS: statement_timeout set on every connection."
  type        = number
  default     = 5000
}

variable "max_future_skew_secs" {
  description = "MAX_FUTURE_SKEW_SECS: how far ahead of the server clock an event timestamp may be."
  type        = number
  default     = 3600
}

variable "shutdown_grace_secs" {
  description = "SHUTDOWN_GRACE_SECS: drain time after SIGTERM. Cloud Run kills the instance 10 s after SIGTERM, so keep it below 10."
  type        = number
  default     = 8

  validation {
    condition     = var.shutdown_grace_secs >= 0 && var.shutdown_grace_secs < 10
    error_message = "shutdown_grace_secs must be below Cloud Run's 10 s termination grace."
  }
}

variable "request_timeout_seconds" {
  description = "Cloud Run request timeout for the HTTP services."
  type        = number
  default     = 30
}

variable "migrate_timeout_seconds" {
  description = "Timeout of one migrate job run."
  type        = number
  default     = 900
}

# ---- Pub/Sub -------------------------------------------------------------------------------

variable "max_delivery_attempts" {
  description = "Push deliveries to the worker before a message goes to the dead-letter topic (5-100). Failed pushes during a database outage count too: with the default backoff, 15 attempts ride out about 1.5 hours of outage (5 would dead-letter after about 2.5 minutes)."
  type        = number
  default     = 15

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub limits)."
  }
}

variable "push_ack_deadline_seconds" {
  description = "Time the worker has to answer a push before Pub/Sub retries it."
  type        = number
  default     = 30
}

variable "retry_minimum_backoff" {
  description = "Minimum backoff between redeliveries of a nacked message (duration, e.g. \"10s\")."
  type        = string
  default     = "10s"
}

variable "retry_maximum_backoff" {
  description = "Maximum backoff between redeliveries of a nacked message (duration, at most \"600s\")."
  type        = string
  default     = "600s"
}

# ---- load balancer -------------------------------------------------------------------------

variable "domain" {
  description = "Public hostname of the API (e.g. api.example.com). Point its A record at the lb_ip output; the managed certificate is issued once DNS resolves there."
  type        = string
}

variable "rate_limit_per_ip_per_minute" {
  description = "Requests per minute one client IP may send through the load balancer before Cloud Armor answers 429. Bulk senders should use POST /events/batch."
  type        = number
  default     = 6000
}

# ---- monitoring ----------------------------------------------------------------------------

variable "alert_email" {
  description = "E-mail address alerts are sent to. Empty: the policies are created without a notification channel."
  type        = string
  default     = ""
}

variable "alert_5xx_ratio" {
  description = "Share of 5xx responses (0-1) over 5 minutes above which a service alerts."
  type        = number
  default     = 0.02
}

variable "alert_latency_p95_ms" {
  description = "p95 request latency in milliseconds over 5 minutes above which a service alerts."
  type        = number
  default     = 1000
}

variable "alert_backlog_age_seconds" {
  description = "Age in seconds of the oldest unacked message on the worker's push subscription above which to alert."
  type        = number
  default     = 600
}

# ---- project -------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that holds the whole stack (one project per environment)."
  type        = string

  validation {
    # Project IDs are 6-30 characters: lowercase letters, digits and hyphens, starting with a
    # letter and not ending with a hyphen. (Legacy domain-scoped ids, "example.com:id", would
    # also break the build-sources bucket name, which embeds the project id.)
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be 6-30 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
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

  validation {
    # Google Cloud labels: keys 1-63 characters, starting with a lowercase letter, of lowercase
    # letters, digits, '_' and '-' (international lowercase letters allowed); values 0-63 of
    # the same; at most 64 per resource, one of which the provider adds itself
    # (goog-terraform-provisioned).
    condition = length(var.labels) <= 63 && alltrue([for k, v in var.labels :
      can(regex("^[\\p{Ll}\\p{Lo}][\\p{Ll}\\p{Lo}\\p{N}_-]{0,62}$", k)) && can(regex("^[\\p{Ll}\\p{Lo}\\p{N}_-]{0,63}$", v))
    ])
    error_message = "labels: at most 63 entries; keys 1-63 lowercase letters, digits, '_' or '-' starting with a letter; values 0-63 of the same characters."
  }
}

# ---- images and deploys --------------------------------------------------------------------

variable "artifact_repository_id" {
  description = "Artifact Registry Docker repository for the function images (the _REPOSITORY substitution of cloudbuild.yaml)."
  type        = string
  default     = "event-analytics"

  validation {
    # Artifact Registry repository ids: lowercase letters, digits and hyphens, starting with a
    # letter and ending with a letter or digit, at most 63 characters.
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.artifact_repository_id))
    error_message = "artifact_repository_id must be 1-63 lowercase letters, digits and hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "placeholder_image" {
  description = "Image the Cloud Run services are created with. Cloud Build owns the image afterwards (Terraform ignores later changes to it). It must answer GET /health on $PORT."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/hello"
}

variable "placeholder_job_image" {
  description = "Image the migrate and maintain jobs are created with; a container that exits 0. Cloud Build replaces it with the migrate image."
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

  validation {
    # An IPv4 CIDR block; a VPC subnet's primary range is at most a /29.
    condition     = can(regex("^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$", var.subnet_cidr)) && can(cidrhost(var.subnet_cidr, 0)) && try(tonumber(split("/", var.subnet_cidr)[1]) <= 29, false)
    error_message = "subnet_cidr must be an IPv4 CIDR block (e.g. 10.8.0.0/24) no smaller than a /29."
  }
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

  validation {
    # Enterprise edition tiers: shared-core db-f1-micro / db-g1-small, or db-custom-<vCPUs>-<MB>
    # with 1 or an even number of vCPUs up to 96 and memory a multiple of 256 MB, at least
    # 3840 MB and 0.9-6.5 GB per vCPU.
    condition = contains(["db-f1-micro", "db-g1-small"], var.db_tier) || try(alltrue([
      for t in [regex("^db-custom-(?P<cpus>[0-9]+)-(?P<mb>[0-9]+)$", var.db_tier)] :
      (tonumber(t.cpus) == 1 || (tonumber(t.cpus) % 2 == 0 && tonumber(t.cpus) <= 96)) &&
      tonumber(t.mb) % 256 == 0 && tonumber(t.mb) >= 3840 &&
      tonumber(t.mb) * 10 >= 9216 * tonumber(t.cpus) && tonumber(t.mb) <= 6656 * tonumber(t.cpus)
    ]), false)
    error_message = "db_tier must be db-f1-micro, db-g1-small or db-custom-<vCPUs>-<MB> with 1 or an even number of vCPUs up to 96 and memory a multiple of 256 MB, at least 3840 MB and between 0.9 and 6.5 GB per vCPU."
  }
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

  validation {
    # Cloud SQL storage: 10 GB to 64 TB.
    condition     = var.db_disk_size_gb >= 10 && var.db_disk_size_gb <= 65536 && floor(var.db_disk_size_gb) == var.db_disk_size_gb
    error_message = "db_disk_size_gb must be a whole number between 10 and 65536 (64 TB)."
  }
}

variable "db_max_connections" {
  description = "PostgreSQL max_connections flag. Must cover every service's max instances x pool size, plus one connection each for the migrate and maintain jobs, plus db_connection_headroom (checked at plan time)."
  type        = number
  default     = 200

  validation {
    condition     = var.db_max_connections >= 25 && var.db_max_connections <= 10000
    error_message = "db_max_connections must be between 25 and 10000."
  }
}

variable "db_connection_headroom" {
  description = "Connections kept free beyond the services' pools and the migrate and maintain jobs: superuser-reserved slots, an operator's psql session or erase-tenant run, and instances of an old revision still draining during a rollout."
  type        = number
  default     = 20

  validation {
    condition     = var.db_connection_headroom >= 0 && floor(var.db_connection_headroom) == var.db_connection_headroom
    error_message = "db_connection_headroom must be a whole number >= 0."
  }
}

variable "db_backup_start_time" {
  description = "Daily backup window start, HH:MM in UTC."
  type        = string
  default     = "02:00"

  validation {
    # The API takes the backup window start as 24-hour HH:MM in UTC.
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.db_backup_start_time))
    error_message = "db_backup_start_time must be HH:MM (24-hour, UTC), e.g. 02:00."
  }
}

variable "db_retained_backups" {
  description = "Number of daily backups kept."
  type        = number
  default     = 14

  validation {
    # Cloud SQL keeps 1 to 365 automated backups.
    condition     = var.db_retained_backups >= 1 && var.db_retained_backups <= 365 && floor(var.db_retained_backups) == var.db_retained_backups
    error_message = "db_retained_backups must be a whole number between 1 and 365."
  }
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

  validation {
    # A PostgreSQL identifier (at most 63 bytes) that also goes into DATABASE_URL unescaped.
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be 1-63 lowercase letters, digits or '_', not starting with a digit."
  }
}

variable "db_user" {
  description = "PostgreSQL user the functions and migrate connect as (built-in user with a generated password)."
  type        = string
  default     = "events"

  validation {
    # A PostgreSQL role name (at most 63 bytes) that also goes into DATABASE_URL unescaped.
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_user))
    error_message = "db_user must be 1-63 lowercase letters, digits or '_', not starting with a digit."
  }
}

# ---- secrets -------------------------------------------------------------------------------

variable "tenant_keys_secret_id" {
  description = "Secret Manager secret holding the tenant keys JSON ({\"tenant\":[\"key\",...]}). Terraform creates the secret, never a version: operators add versions (README.md)."
  type        = string
  default     = "tenant-keys"

  validation {
    # Secret Manager secret ids: 1-255 letters, digits, '-' and '_'.
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.tenant_keys_secret_id))
    error_message = "tenant_keys_secret_id must be 1-255 letters, digits, hyphens or underscores."
  }
}

variable "database_url_secret_id" {
  description = "Secret Manager secret holding the full DATABASE_URL (TCP to the Cloud SQL private IP, sslmode=verify-ca). Terraform writes its versions."
  type        = string
  default     = "database-url"

  validation {
    # Secret Manager secret ids: 1-255 letters, digits, '-' and '_'.
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.database_url_secret_id))
    error_message = "database_url_secret_id must be 1-255 letters, digits, hyphens or underscores."
  }
}

variable "cloudsql_ca_secret_id" {
  description = "Secret Manager secret holding the Cloud SQL server CA certificate(s) (PEM) that every function mounts as DATABASE_URL's sslrootcert. Terraform writes its versions."
  type        = string
  default     = "cloudsql-server-ca"

  validation {
    # Secret Manager secret ids: 1-255 letters, digits, '-' and '_'.
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.cloudsql_ca_secret_id))
    error_message = "cloudsql_ca_secret_id must be 1-255 letters, digits, hyphens or underscores."
  }
}

# ---- services ------------------------------------------------------------------------------

variable "services" {
  description = "Per Cloud Run service (a function whose functions/<name>/deploy.json says kind service): instances, request concurrency, DB pool size and resources. A service not named here gets default_service; a key that names no service is an error (checked at plan time). Sum of max_instances x pool_size over every service must fit db_max_connections (checked at plan time)."
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
    condition = alltrue([for s in values(var.services) :
      s.min_instances >= 0 && s.max_instances >= 1 && s.min_instances <= s.max_instances &&
      s.concurrency >= 1 && s.concurrency <= 1000 && s.pool_size >= 1
    ])
    error_message = "each service needs 0 <= min_instances <= max_instances, max_instances >= 1, 1 <= concurrency <= 1000 and pool_size >= 1."
  }

  validation {
    # Cloud Run limits: cpu 1, 2, 4, 6 or 8, or a fraction from 80m (below 1 CPU only with
    # concurrency 1); memory 128Mi-32Gi in Mi or Gi, needing at least 2 CPUs above 4Gi, 4 above
    # 8Gi, 6 above 16Gi and 8 above 24Gi; 4 CPUs need at least 2Gi, 6 or 8 CPUs at least 4Gi.
    condition = alltrue(flatten([for s in values(var.services) : [
      for c in [try(endswith(s.cpu, "m") ? tonumber(trimsuffix(s.cpu, "m")) / 1000 : tonumber(s.cpu), -1)] : [
        for m in [try(endswith(s.memory, "Gi") ? tonumber(trimsuffix(s.memory, "Gi")) * 1024 : tonumber(trimsuffix(s.memory, "Mi")), -1)] :
        (contains([1, 2, 4, 6, 8], c) || (c >= 0.08 && c < 1 && s.concurrency == 1)) &&
        can(regex("^[0-9]+(Mi|Gi)$", s.memory)) && m >= 128 && m <= 32768 &&
        c >= (m > 24576 ? 8 : m > 16384 ? 6 : m > 8192 ? 4 : m > 4096 ? 2 : 0) &&
        m >= (c >= 6 ? 4096 : c >= 4 ? 2048 : 128)
      ]
    ]]))
    error_message = "services: cpu must be 1, 2, 4, 6 or 8 (or 80m-999m with concurrency 1) and memory 128Mi-32Gi, with enough CPUs for the memory (>4Gi: 2, >8Gi: 4, >16Gi: 6, >24Gi: 8) and enough memory for the CPUs (4 CPUs: 2Gi, 6 or 8: 4Gi)."
  }
}

variable "default_service" {
  description = "Settings of a Cloud Run service that services does not name, e.g. a function just added to functions/. Same fields as an entry of services."
  type = object({
    min_instances = number
    max_instances = number
    concurrency   = number
    pool_size     = number
    cpu           = optional(string, "1")
    memory        = optional(string, "256Mi")
  })
  default = { min_instances = 0, max_instances = 2, concurrency = 80, pool_size = 2 }

  # The same rules as for each entry of services (a validation may only refer to its own
  # variable before Terraform 1.9, so they are repeated here).
  validation {
    condition = alltrue([for s in [var.default_service] :
      s.min_instances >= 0 && s.max_instances >= 1 && s.min_instances <= s.max_instances &&
      s.concurrency >= 1 && s.concurrency <= 1000 && s.pool_size >= 1
    ])
    error_message = "default_service needs 0 <= min_instances <= max_instances, max_instances >= 1, 1 <= concurrency <= 1000 and pool_size >= 1."
  }

  validation {
    # Cloud Run's cpu and memory limits, as for services.
    condition = alltrue(flatten([for s in [var.default_service] : [
      for c in [try(endswith(s.cpu, "m") ? tonumber(trimsuffix(s.cpu, "m")) / 1000 : tonumber(s.cpu), -1)] : [
        for m in [try(endswith(s.memory, "Gi") ? tonumber(trimsuffix(s.memory, "Gi")) * 1024 : tonumber(trimsuffix(s.memory, "Mi")), -1)] :
        (contains([1, 2, 4, 6, 8], c) || (c >= 0.08 && c < 1 && s.concurrency == 1)) &&
        can(regex("^[0-9]+(Mi|Gi)$", s.memory)) && m >= 128 && m <= 32768 &&
        c >= (m > 24576 ? 8 : m > 16384 ? 6 : m > 8192 ? 4 : m > 4096 ? 2 : 0) &&
        m >= (c >= 6 ? 4096 : c >= 4 ? 2048 : 128)
      ]
    ]]))
    error_message = "default_service: cpu must be 1, 2, 4, 6 or 8 (or 80m-999m with concurrency 1) and memory 128Mi-32Gi, with enough CPUs for the memory (>4Gi: 2, >8Gi: 4, >16Gi: 6, >24Gi: 8) and enough memory for the CPUs (4 CPUs: 2Gi, 6 or 8: 4Gi)."
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

  validation {
    # Cloud Run request timeout: 1 s to 60 minutes.
    condition     = var.request_timeout_seconds >= 1 && var.request_timeout_seconds <= 3600 && floor(var.request_timeout_seconds) == var.request_timeout_seconds
    error_message = "request_timeout_seconds must be a whole number between 1 and 3600 (Cloud Run limit)."
  }
}

variable "migrate_timeout_seconds" {
  description = "Timeout of one migrate job run."
  type        = number
  default     = 900

  validation {
    # Cloud Run job task timeout: up to 168 hours.
    condition     = var.migrate_timeout_seconds >= 1 && var.migrate_timeout_seconds <= 604800 && floor(var.migrate_timeout_seconds) == var.migrate_timeout_seconds
    error_message = "migrate_timeout_seconds must be a whole number between 1 and 604800 (168 hours, the Cloud Run job task limit)."
  }
}

# ---- data lifecycle ------------------------------------------------------------------------

variable "retention_days" {
  description = "RETENTION_DAYS: days of events kept, one value for every HTTP function and the maintain job (Terraform passes the same value to all; a different value per binary would accept events that maintenance then drops). Older events are refused at ingest (400; the worker dead-letters them), a count may not start before the horizon (400), and the maintain job drops whole day partitions more than a day past it, with their identities and rollup rows. Default 395: a year and a month, so a year-over-year comparison of a whole month still has both months. null keeps everything and refuses nothing for its age. Lowering it drops data on the next maintenance run, for good (only backups keep it)."
  type        = number
  default     = 395
  nullable    = true

  validation {
    # The binaries accept 1-36500 days (shared/settings); null leaves RETENTION_DAYS unset.
    # Terraform before 1.12 evaluates both sides of ||, so null is tested with a conditional.
    condition     = var.retention_days == null ? true : (var.retention_days >= 1 && var.retention_days <= 36500 && floor(var.retention_days) == var.retention_days)
    error_message = "retention_days must be null (keep everything) or a whole number of days between 1 and 36500."
  }
}

variable "partition_ahead_days" {
  description = "PARTITION_AHEAD_DAYS of the maintain job: days of partitions kept ready beyond today. Events whose day has no partition yet still land in the default partition and are counted; the next run moves them out."
  type        = number
  default     = 14

  validation {
    condition     = var.partition_ahead_days >= 1 && var.partition_ahead_days <= 366 && floor(var.partition_ahead_days) == var.partition_ahead_days
    error_message = "partition_ahead_days must be a whole number between 1 and 366."
  }
}

variable "maintenance_schedule" {
  description = "When Cloud Scheduler runs the maintain job (unix-cron, in maintenance_time_zone). Default: hourly at minute 17, away from the top of the hour when other schedules pile up. A run is idempotent and a second concurrent run does nothing, so retries and manual runs are safe."
  type        = string
  default     = "17 * * * *"

  validation {
    # unix-cron: five fields separated by spaces (minute hour day-of-month month day-of-week).
    condition     = can(regex("^[0-9A-Za-z*/,-]+( [0-9A-Za-z*/,-]+){4}$", var.maintenance_schedule))
    error_message = "maintenance_schedule must be a unix-cron expression of five fields, e.g. \"17 * * * *\"."
  }
}

variable "maintenance_time_zone" {
  description = "Time zone of maintenance_schedule (a tz database name). Partitions are UTC days whatever this says."
  type        = string
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", var.maintenance_time_zone))
    error_message = "maintenance_time_zone must be a tz database name such as Etc/UTC or Europe/Brussels."
  }
}

variable "maintenance_timeout_seconds" {
  description = "Task timeout of one maintain job run. Keep it well under the schedule's interval; a run normally takes seconds (creating partitions, dropping a day)."
  type        = number
  default     = 1800

  validation {
    # Cloud Run job task timeout: up to 168 hours.
    condition     = var.maintenance_timeout_seconds >= 1 && var.maintenance_timeout_seconds <= 604800 && floor(var.maintenance_timeout_seconds) == var.maintenance_timeout_seconds
    error_message = "maintenance_timeout_seconds must be a whole number between 1 and 604800 (168 hours, the Cloud Run job task limit)."
  }
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

  validation {
    # Pub/Sub acknowledgement deadline: 10 to 600 seconds.
    condition     = var.push_ack_deadline_seconds >= 10 && var.push_ack_deadline_seconds <= 600 && floor(var.push_ack_deadline_seconds) == var.push_ack_deadline_seconds
    error_message = "push_ack_deadline_seconds must be a whole number between 10 and 600 (Pub/Sub limits)."
  }
}

variable "retry_minimum_backoff" {
  description = "Minimum backoff between redeliveries of a nacked message (duration, e.g. \"10s\")."
  type        = string
  default     = "10s"

  validation {
    # Pub/Sub retry policy backoffs: a duration in seconds ("10s", "0.5s"), 0 to 600 s.
    # minimum_backoff <= maximum_backoff is a precondition on the subscription (pubsub.tf).
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?s$", var.retry_minimum_backoff)) && try(tonumber(trimsuffix(var.retry_minimum_backoff, "s")) <= 600, false)
    error_message = "retry_minimum_backoff must be a duration in seconds between \"0s\" and \"600s\" (Pub/Sub limits), e.g. \"10s\"."
  }
}

variable "retry_maximum_backoff" {
  description = "Maximum backoff between redeliveries of a nacked message (duration, at most \"600s\")."
  type        = string
  default     = "600s"

  validation {
    # Pub/Sub retry policy backoffs: a duration in seconds ("10s", "0.5s"), 0 to 600 s.
    # minimum_backoff <= maximum_backoff is a precondition on the subscription (pubsub.tf).
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?s$", var.retry_maximum_backoff)) && try(tonumber(trimsuffix(var.retry_maximum_backoff, "s")) <= 600, false)
    error_message = "retry_maximum_backoff must be a duration in seconds between \"0s\" and \"600s\" (Pub/Sub limits), e.g. \"10s\"."
  }
}

# ---- load balancer -------------------------------------------------------------------------

variable "domain" {
  description = "Public hostname of the API (e.g. api.example.com). Point its A record at the lb_ip output; the managed certificate is issued once DNS resolves there."
  type        = string

  validation {
    # Google-managed certificates take fully qualified names and no wildcards.
    condition     = length(var.domain) <= 253 && can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.domain))
    error_message = "domain must be a lowercase fully qualified host name such as api.example.com (no wildcard, no trailing dot)."
  }
}

variable "rate_limit_per_ip_per_minute" {
  description = "Requests per minute one client IP may send through the load balancer before Cloud Armor answers 429. Bulk senders should use POST /events/batch."
  type        = number
  default     = 6000

  validation {
    condition     = var.rate_limit_per_ip_per_minute >= 1 && floor(var.rate_limit_per_ip_per_minute) == var.rate_limit_per_ip_per_minute
    error_message = "rate_limit_per_ip_per_minute must be a whole number >= 1 (the Cloud Armor threshold count)."
  }
}

# ---- tracing -------------------------------------------------------------------------------

variable "tracing_enabled" {
  description = "Export OpenTelemetry spans from every Cloud Run service and job to Cloud Trace, through Google's OTLP endpoint (Telemetry API). false: no OTEL_* variable is set, so the binaries export nothing, and no runtime account holds the traces-writer role."
  type        = bool
  default     = true
}

variable "trace_sampling_ratio" {
  description = "OTEL_TRACES_SAMPLER_ARG: share (0-1) of new traces recorded (sampler parentbased_traceidratio). A span with a parent follows the parent's decision: a request that arrives with a traceparent or X-Cloud-Trace-Context (on Cloud Run nearly every request: Cloud Run fills in traceparent, sampled at most 0.1 requests/s per instance) is recorded when the caller sampled it, and a Pub/Sub push when its publish was; the ratio decides for traces that start without a parent (job runs, requests without a trace header). 0.01 keeps one such trace in a hundred; Cloud Trace bills per span."
  type        = number
  default     = 0.01

  validation {
    condition     = var.trace_sampling_ratio >= 0 && var.trace_sampling_ratio <= 1
    error_message = "trace_sampling_ratio is a share: it must be between 0 and 1."
  }
}

# ---- monitoring ----------------------------------------------------------------------------

variable "alert_email" {
  description = "E-mail address alerts are sent to. Empty: the policies are created without a notification channel."
  type        = string
  default     = ""

  validation {
    condition     = var.alert_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be empty or an e-mail address."
  }
}

variable "alert_5xx_ratio" {
  description = "Share of 5xx responses (0-1) over 5 minutes above which a service alerts."
  type        = number
  default     = 0.02

  validation {
    condition     = var.alert_5xx_ratio > 0 && var.alert_5xx_ratio < 1
    error_message = "alert_5xx_ratio is a share: it must be greater than 0 and less than 1."
  }
}

variable "alert_latency_p95_ms" {
  description = "p95 request latency in milliseconds over 5 minutes above which a service alerts."
  type        = number
  default     = 1000

  validation {
    condition     = var.alert_latency_p95_ms > 0
    error_message = "alert_latency_p95_ms must be greater than 0."
  }
}

variable "alert_maintenance_stale_seconds" {
  description = "Alert when the maintain job has not completed successfully for this long. Must exceed the interval of maintenance_schedule (default hourly: 3 hours is three missed runs)."
  type        = number
  default     = 10800

  validation {
    # A metric-absence condition's duration: 120 s to 23.5 hours, in whole minutes.
    condition     = var.alert_maintenance_stale_seconds >= 120 && var.alert_maintenance_stale_seconds <= 84600 && var.alert_maintenance_stale_seconds % 60 == 0
    error_message = "alert_maintenance_stale_seconds must be a whole number of minutes between 120 and 84600 seconds (23.5 hours, the Cloud Monitoring metric-absence limit)."
  }
}

variable "alert_backlog_age_seconds" {
  description = "Age in seconds of the oldest unacked message on the worker's push subscription above which to alert."
  type        = number
  default     = 600

  validation {
    condition     = var.alert_backlog_age_seconds > 0
    error_message = "alert_backlog_age_seconds must be greater than 0."
  }
}

# ---- warehouse export (warehouse.tf, docs/warehouse.md) ------------------------------------

variable "warehouse_export_enabled" {
  description = "Copy every stored event to BigQuery with Datastream (CDC from the event_export publication). Off by default for two reasons: it sets cloudsql.logical_decoding, a flag whose first change restarts the Cloud SQL instance (plan a quiet moment), and it costs money (Datastream per GiB processed, the proxy VM, BigQuery storage). README.md, \"Warehouse export\", gives the order of operations for switching it on and off."
  type        = bool
  default     = false
}

variable "warehouse_keep_logical_decoding" {
  description = "Keeps cloudsql.logical_decoding on while warehouse_export_enabled is false: the first step of switching the export off, until the replication slot is dropped. PostgreSQL refuses to start with a logical slot and wal_level below logical, so never turn the flag off before SELECT pg_drop_replication_slot(...) (README.md, \"Warehouse export\")."
  type        = bool
  default     = false
}

variable "warehouse_keep_dataset" {
  description = "Keeps the BigQuery dataset, table and view (and their data) while warehouse_export_enabled is false. Without it, switching the export off plans to delete the table, which its deletion protection refuses."
  type        = bool
  default     = false
}

variable "warehouse_stream_state" {
  description = "Desired state of the Datastream stream: RUNNING, PAUSED, or NOT_STARTED (create it without starting; use this on the first apply, before the maintain job has created the replication slot)."
  type        = string
  default     = "RUNNING"

  validation {
    condition     = contains(["RUNNING", "PAUSED", "NOT_STARTED"], var.warehouse_stream_state)
    error_message = "warehouse_stream_state must be RUNNING, PAUSED or NOT_STARTED."
  }
}

variable "warehouse_dataset_id" {
  description = "BigQuery dataset the stream writes to (single target dataset) and the events view lives in."
  type        = string
  default     = "event_warehouse"

  validation {
    # BigQuery dataset ids: letters, digits and underscores, at most 1024 characters.
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.warehouse_dataset_id))
    error_message = "warehouse_dataset_id must be 1-1024 letters, digits or underscores."
  }
}

variable "warehouse_location" {
  description = "BigQuery location of the warehouse dataset. null: region (Google recommends the stream's region for the dataset)."
  type        = string
  default     = null
  nullable    = true
}

variable "warehouse_retention_days" {
  description = "Days an event's day partition is kept in BigQuery (partition expiration on occurred_at), independent of retention_days in Cloud SQL: dropping a Cloud SQL partition is no delete, so BigQuery keeps its copy until this expires. null keeps everything."
  type        = number
  default     = 730
  nullable    = true

  validation {
    condition     = var.warehouse_retention_days == null ? true : (var.warehouse_retention_days >= 1 && var.warehouse_retention_days <= 36500 && floor(var.warehouse_retention_days) == var.warehouse_retention_days)
    error_message = "warehouse_retention_days must be null (keep everything) or a whole number of days between 1 and 36500."
  }
}

variable "warehouse_replication_slot" {
  description = "Logical replication slot (pgoutput) the stream reads: EXPORT_REPLICATION_SLOT of the maintain job, which creates it."
  type        = string
  default     = "event_export"

  validation {
    # What the maintain job accepts (shared/settings): 1-63 lowercase letters, digits or '_'.
    condition     = can(regex("^[a-z0-9_]{1,63}$", var.warehouse_replication_slot))
    error_message = "warehouse_replication_slot must be 1-63 lowercase letters, digits or underscores."
  }
}

variable "warehouse_db_user" {
  description = "Built-in PostgreSQL user Datastream logs in as (EXPORT_REPLICATION_USER of the maintain job, which grants it event_export_reader and REPLICATION)."
  type        = string
  default     = "datastream"

  validation {
    # What the maintain job accepts (shared/settings). That it differs from db_user is a
    # precondition on the user (warehouse.tf): a validation may only refer to its own variable
    # before Terraform 1.9.
    condition     = can(regex("^[a-z0-9_]{1,63}$", var.warehouse_db_user))
    error_message = "warehouse_db_user must be 1-63 lowercase letters, digits or underscores."
  }
}

variable "warehouse_data_freshness" {
  description = "data_freshness of the stream's BigQuery destination (a duration such as \"900s\"). Datastream applies it as max_staleness to tables it creates; the events table here is created by Terraform and written in append-only mode, so it has no effect on it (docs/warehouse.md)."
  type        = string
  default     = "900s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.warehouse_data_freshness))
    error_message = "warehouse_data_freshness must be a number of seconds, e.g. \"900s\"."
  }
}

variable "warehouse_backfill_tasks" {
  description = "max_concurrent_backfill_tasks of the stream: database connections the backfill opens at most (each counts against db_max_connections, see the connection budget)."
  type        = number
  default     = 2

  validation {
    condition     = var.warehouse_backfill_tasks >= 1 && var.warehouse_backfill_tasks <= 50 && floor(var.warehouse_backfill_tasks) == var.warehouse_backfill_tasks
    error_message = "warehouse_backfill_tasks must be a whole number between 1 and 50."
  }
}

variable "warehouse_datastream_cidr" {
  description = "The /29 Datastream's private connection peers into the VPC with. It must overlap no subnet, the private services range (Cloud SQL) or any route."
  type        = string
  default     = "10.8.1.0/29"

  validation {
    condition     = can(cidrhost(var.warehouse_datastream_cidr, 0)) && endswith(var.warehouse_datastream_cidr, "/29")
    error_message = "warehouse_datastream_cidr must be an IPv4 /29, e.g. 10.8.1.0/29."
  }
}

variable "warehouse_proxy_subnet_cidr" {
  description = "Subnet of the NAT VM that forwards Datastream's connections to the Cloud SQL private IP."
  type        = string
  default     = "10.8.2.0/28"

  validation {
    condition     = can(cidrhost(var.warehouse_proxy_subnet_cidr, 0)) && try(tonumber(split("/", var.warehouse_proxy_subnet_cidr)[1]) <= 29, false)
    error_message = "warehouse_proxy_subnet_cidr must be an IPv4 CIDR block no smaller than a /29, e.g. 10.8.2.0/28."
  }
}

variable "warehouse_proxy_machine_type" {
  description = "Machine type of the NAT VM. Its egress bandwidth caps the stream's throughput (Compute Engine per-instance limits); e2-small carries far more than 10k events/s of about 400 bytes."
  type        = string
  default     = "e2-small"
}

variable "alert_warehouse_freshness_seconds" {
  description = "Alert when the stream's data freshness (Datastream's lag behind the source) stays above this many seconds for 10 minutes."
  type        = number
  default     = 900

  validation {
    condition     = var.alert_warehouse_freshness_seconds > 0
    error_message = "alert_warehouse_freshness_seconds must be greater than 0."
  }
}

variable "alert_warehouse_slot_xid_age" {
  description = "Alert when the oldest transaction a replication slot holds back is older than this many transactions (Cloud SQL's oldest_transaction_age for replication_slot): a slot that nobody reads, which also keeps its WAL."
  type        = number
  default     = 20000000

  validation {
    condition     = var.alert_warehouse_slot_xid_age > 0 && var.alert_warehouse_slot_xid_age < 2000000000
    error_message = "alert_warehouse_slot_xid_age must be between 1 and 2,000,000,000 transactions."
  }
}

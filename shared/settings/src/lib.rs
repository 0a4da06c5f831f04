#![doc = include_str!("../README.md")]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Sizes and time limits of a process's database pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most connections this process opens.
    pub max_size: u32,
    /// How long a request waits for a free connection before it is told to retry.
    pub acquire_timeout: Duration,
    /// Server-side limit on any one statement.
    pub statement_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self { max_size: 10, acquire_timeout: Duration::from_secs(2), statement_timeout: Duration::from_secs(5) }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Text,
    /// Cloud Logging's structured JSON.
    Json,
}

/// How `events` stores what it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// Write to PostgreSQL before answering (201/200).
    Inline,
    /// Publish to Pub/Sub before answering (202); the worker writes to PostgreSQL.
    PubSub,
}

/// Everything a function reads from its environment.
#[derive(Clone)]
pub struct Config {
    /// `PORT`: the TCP port to listen on, on all interfaces (Cloud Run sets it). Default 8080.
    pub port: u16,
    /// `DATABASE_URL`: the PostgreSQL URL. Required by every deployed function.
    pub database_url: Option<String>,
    /// `TENANT_KEYS`: the key document as JSON, `{"tenant": ["key", ...]}`.
    pub tenant_keys: Option<String>,
    /// `TENANT_KEYS_SECRET`: the Secret Manager version holding the key document,
    /// `projects/<p>/secrets/<s>/versions/<v>`. Exclusive with `TENANT_KEYS`.
    pub tenant_keys_secret: Option<String>,
    /// `TENANT_KEYS_REFRESH_SECS`: how often the secret is read again. Default 300.
    pub tenant_keys_refresh: Duration,
    /// `SECRET_MANAGER_ENDPOINT`: overrides the Secret Manager API endpoint.
    pub secret_manager_endpoint: Option<String>,
    /// `GOOGLE_CLOUD_PROJECT`: the project that log lines' trace ids belong to.
    pub google_cloud_project: Option<String>,
    /// `INGEST_FLUSHERS`: how many group-commit statements for single events may be in flight
    /// at once (at most the pool size). Default 1: the statement then carries everything that
    /// arrived while the previous one was written. With a second flusher idle, it takes each
    /// first arrival almost alone (measured: 9.6k events/s with 2 against 20.3k/s with 1, at
    /// 16 clients on 2 cores).
    pub ingest_flushers: usize,
    /// `INGEST_MODE`: `inline` (default) or `pubsub`.
    pub ingest_mode: IngestMode,
    /// `PUBSUB_TOPIC`: `projects/<p>/topics/<t>`, where `events` publishes in `pubsub` mode.
    pub pubsub_topic: Option<String>,
    /// `PUBSUB_EMULATOR_HOST`: `host:port` of the Pub/Sub emulator, used instead of Google's
    /// endpoint and without credentials.
    pub pubsub_emulator_host: Option<String>,
    /// `RATE_LIMIT_PER_SEC` and `RATE_LIMIT_BURST` (default: the rate, at least 1): requests a
    /// tenant may make per second on one instance. Off when `RATE_LIMIT_PER_SEC` is unset.
    pub rate_limit: Option<(f64, u32)>,
    /// `DB_POOL_SIZE` (default 10), `DB_ACQUIRE_TIMEOUT_MS` (2000), `DB_STATEMENT_TIMEOUT_MS`
    /// (5000): the connection pool.
    pub pool: PoolConfig,
    /// `MAX_FUTURE_SKEW_SECS`: how far ahead of the server clock an event may be. Default 3600.
    pub max_future_skew: Duration,
    /// `RETENTION_DAYS`: how many days of events are kept. Older events are refused at ingest,
    /// counts may not reach before it, and maintenance drops the partitions past it. Unset
    /// (the default): everything is kept and nothing is refused for its age.
    pub retention_days: Option<u32>,
    /// `PARTITION_AHEAD_DAYS`: how many days of partitions maintenance keeps ready beyond today.
    /// Default 14: two weeks without a maintenance run before an event lands in the default
    /// partition (where it is still stored and counted).
    pub partition_ahead_days: u32,
    /// `EXPORT_REPLICATION_SLOT`: the logical replication slot the warehouse export (Datastream)
    /// reads; maintenance creates it when the server runs with `wal_level = logical`. Unset: no
    /// slot is made.
    pub export_replication_slot: Option<String>,
    /// `EXPORT_REPLICATION_USER`: the database user the warehouse export connects as;
    /// maintenance lets it read `event_log` and replicate.
    pub export_replication_user: Option<String>,
    /// `MAINTENANCE_INTERVAL_SECS`: how often `local` runs maintenance itself. Default 3600.
    /// (In the cloud a Cloud Scheduler job runs `migrate maintain` instead.)
    pub maintenance_interval: Duration,
    /// `REQUEST_BODY_TIMEOUT_SECS`: how long a client may take to send a request body (408
    /// after that). Default 15.
    pub request_body_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECS`: how long in-flight requests may run after SIGTERM. Default 8
    /// (Cloud Run kills the container 10 s after SIGTERM).
    pub shutdown_grace: Duration,
    /// `LOG_FORMAT`: `text` or `json`. Default `json` on Cloud Run (`K_SERVICE` set), else `text`.
    pub log_format: LogFormat,
    /// OpenTelemetry tracing, configured by OpenTelemetry's standard variables; off unless an
    /// OTLP endpoint is set.
    pub tracing: Tracing,
}

/// Which traces are recorded, as `OTEL_TRACES_SAMPLER` (and `OTEL_TRACES_SAMPLER_ARG`) name it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampler {
    AlwaysOn,
    AlwaysOff,
    /// A share of traces, by trace id.
    TraceIdRatio(f64),
    /// As the caller's `traceparent` says when it sends one, else always.
    ParentBasedAlwaysOn,
    /// As the caller's `traceparent` says when it sends one, else never.
    ParentBasedAlwaysOff,
    /// As the caller's `traceparent` says when it sends one, else a share by trace id.
    ParentBasedTraceIdRatio(f64),
}

/// Exporting spans with OTLP over HTTP (protobuf), batched in the background.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`:
    /// where spans are sent. Unset: no spans are recorded or exported. An endpoint on
    /// `googleapis.com` (Cloud Trace's `https://telemetry.googleapis.com`) is called with
    /// Application Default Credentials.
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,…` added to every export request.
    pub headers: Vec<(String, String)>,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`. Default `parentbased_always_on`.
    pub sampler: TraceSampler,
    /// `OTEL_SERVICE_NAME`. Default: `K_SERVICE` on Cloud Run, else the binary's name.
    pub service_name: Option<String>,
    /// `OTEL_BSP_SCHEDULE_DELAY` (ms): how often a batch is sent. Default 5000.
    pub schedule_delay: Duration,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans held for export at most; beyond, new spans are dropped
    /// (memory stays bounded when the collector is down). Default 2048.
    pub max_queue_size: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans per export request. Default 512.
    pub max_export_batch_size: usize,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (ms): how long one export may take. Default 10000.
    pub export_timeout: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("database_url", &self.database_url.as_ref().map(|_| "<redacted>"))
            .field("tenant_keys", &self.tenant_keys.as_ref().map(|_| "<redacted>"))
            .field("tenant_keys_secret", &self.tenant_keys_secret)
            .field("tenant_keys_refresh", &self.tenant_keys_refresh)
            .field("secret_manager_endpoint", &self.secret_manager_endpoint)
            .field("google_cloud_project", &self.google_cloud_project)
            .field("rate_limit", &self.rate_limit)
            .field("ingest_flushers", &self.ingest_flushers)
            .field("ingest_mode", &self.ingest_mode)
            .field("pubsub_topic", &self.pubsub_topic)
            .field("pubsub_emulator_host", &self.pubsub_emulator_host)
            .field("pool", &self.pool)
            .field("max_future_skew", &self.max_future_skew)
            .field("retention_days", &self.retention_days)
            .field("partition_ahead_days", &self.partition_ahead_days)
            .field("export_replication_slot", &self.export_replication_slot)
            .field("export_replication_user", &self.export_replication_user)
            .field("maintenance_interval", &self.maintenance_interval)
            .field("request_body_timeout", &self.request_body_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("log_format", &self.log_format)
            .field("tracing", &self.tracing.endpoint.as_ref().map(|_| "<on>"))
            .finish()
    }
}

/// A variable that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{var} is not set: expected {expected}")]
    Missing { var: &'static str, expected: &'static str },
    /// A variable is set to something unusable.
    #[error("{var} is invalid: expected {expected}")]
    Invalid { var: &'static str, expected: String },
    /// Two variables that exclude each other are both set.
    #[error("{0} and {1} are both set: set only one")]
    Conflict(&'static str, &'static str),
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let log_format = match get("LOG_FORMAT").as_deref() {
            None if get("K_SERVICE").is_some() => LogFormat::Json,
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => {
                return Err(ConfigError::Invalid { var: "LOG_FORMAT", expected: "`text` or `json`".into() });
            }
        };
        let config = Self {
            port: parse(&get, "PORT", 8080, "a TCP port number, 1-65535")?,
            database_url: get("DATABASE_URL"),
            tenant_keys: get("TENANT_KEYS"),
            tenant_keys_secret: match get("TENANT_KEYS_SECRET") {
                Some(name) if !is_secret_version_name(&name) => {
                    return Err(ConfigError::Invalid {
                        var: "TENANT_KEYS_SECRET",
                        expected: "a secret version name, projects/<project>/secrets/<secret>/versions/<version>"
                            .into(),
                    });
                }
                name => name,
            },
            tenant_keys_refresh: Duration::from_secs(parse_bounded(
                &get,
                "TENANT_KEYS_REFRESH_SECS",
                300,
                1..=86_400,
                "a number of seconds",
            )?),
            secret_manager_endpoint: get("SECRET_MANAGER_ENDPOINT"),
            google_cloud_project: get("GOOGLE_CLOUD_PROJECT"),
            ingest_flushers: parse_bounded(&get, "INGEST_FLUSHERS", 1, 1..=1000, "a number of statements")?,
            ingest_mode: match get("INGEST_MODE").as_deref() {
                None | Some("inline") => IngestMode::Inline,
                Some("pubsub") => IngestMode::PubSub,
                Some(_) => {
                    return Err(ConfigError::Invalid { var: "INGEST_MODE", expected: "`inline` or `pubsub`".into() });
                }
            },
            pubsub_topic: match get("PUBSUB_TOPIC") {
                Some(topic) if !is_resource_name(&topic, &["projects", "topics"]) => {
                    return Err(ConfigError::Invalid {
                        var: "PUBSUB_TOPIC",
                        expected: "a topic name, projects/<project>/topics/<topic>".into(),
                    });
                }
                topic => topic,
            },
            pubsub_emulator_host: get("PUBSUB_EMULATOR_HOST"),
            rate_limit: match get("RATE_LIMIT_PER_SEC") {
                None => None,
                Some(raw) => {
                    let rate: f64 = raw.trim().parse().ok().filter(|r: &f64| r.is_finite() && *r > 0.0).ok_or(
                        ConfigError::Invalid {
                            var: "RATE_LIMIT_PER_SEC",
                            expected: "a positive number of requests a second".into(),
                        },
                    )?;
                    let default_burst = (rate.ceil() as u32).max(1);
                    Some((rate, parse_bounded(&get, "RATE_LIMIT_BURST", default_burst, 1..=1_000_000, "a burst size")?))
                }
            },
            pool: PoolConfig {
                max_size: parse_bounded(&get, "DB_POOL_SIZE", 10, 1..=1000, "a pool size")?,
                acquire_timeout: millis(&get, "DB_ACQUIRE_TIMEOUT_MS", 2000)?,
                statement_timeout: millis(&get, "DB_STATEMENT_TIMEOUT_MS", 5000)?,
            },
            max_future_skew: Duration::from_secs(parse(&get, "MAX_FUTURE_SKEW_SECS", 3600, "a number of seconds")?),
            retention_days: match get("RETENTION_DAYS") {
                None => None,
                Some(_) => Some(parse_bounded(&get, "RETENTION_DAYS", 1, 1..=36_500, "a number of days")?),
            },
            partition_ahead_days: parse_bounded(&get, "PARTITION_AHEAD_DAYS", 14, 1..=366, "a number of days")?,
            export_replication_slot: identifier(&get, "EXPORT_REPLICATION_SLOT")?,
            export_replication_user: identifier(&get, "EXPORT_REPLICATION_USER")?,
            maintenance_interval: Duration::from_secs(parse_bounded(
                &get,
                "MAINTENANCE_INTERVAL_SECS",
                3600,
                1..=86_400,
                "a number of seconds",
            )?),
            request_body_timeout: Duration::from_secs(parse_bounded(
                &get,
                "REQUEST_BODY_TIMEOUT_SECS",
                15,
                1..=300,
                "a number of seconds",
            )?),
            shutdown_grace: Duration::from_secs(parse_bounded(
                &get,
                "SHUTDOWN_GRACE_SECS",
                8,
                0..=3600,
                "a number of seconds",
            )?),
            log_format,
            tracing: tracing_from(&get)?,
        };
        if config.ingest_mode == IngestMode::PubSub && config.pubsub_topic.is_none() {
            return Err(ConfigError::Missing {
                var: "PUBSUB_TOPIC",
                expected: "the topic events are published to when INGEST_MODE=pubsub, projects/<project>/topics/<topic>",
            });
        }
        Ok(config)
    }

    /// The rules an event's time is held to at ingest.
    pub fn ingest_rules(&self) -> domain::IngestRules {
        domain::IngestRules { max_future_skew: self.max_future_skew, retention_days: self.retention_days }
    }

    /// `DATABASE_URL`, or the error a deployed function stops with.
    pub fn require_database_url(&self) -> Result<&str, ConfigError> {
        self.database_url.as_deref().ok_or(ConfigError::Missing {
            var: "DATABASE_URL",
            expected: "a PostgreSQL URL such as postgres://user:password@host:5432/events",
        })
    }
}

/// A PostgreSQL name we quote ourselves: 1 to 63 lowercase letters, digits and underscores.
fn identifier(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<Option<String>, ConfigError> {
    match get(var) {
        Some(name)
            if !(1..=63).contains(&name.len())
                || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Err(ConfigError::Invalid { var, expected: "1 to 63 lowercase letters, digits or underscores".into() })
        }
        name => Ok(name),
    }
}

fn tracing_from(get: &impl Fn(&str) -> Option<String>) -> Result<Tracing, ConfigError> {
    let endpoint = match (get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        (Some(traces), _) => Some((traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
        (None, Some(base)) => {
            Some((format!("{}/v1/traces", base.trim_end_matches('/')), "OTEL_EXPORTER_OTLP_ENDPOINT"))
        }
        (None, None) => None,
    };
    if let Some((url, var)) = &endpoint
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ConfigError::Invalid { var, expected: "an http:// or https:// URL".into() });
    }
    let headers = match get("OTEL_EXPORTER_OTLP_HEADERS") {
        None => Vec::new(),
        Some(raw) => raw
            .split(',')
            .map(|pair| {
                let (key, value) =
                    pair.split_once('=').filter(|(k, _)| !k.trim().is_empty()).ok_or(ConfigError::Invalid {
                        var: "OTEL_EXPORTER_OTLP_HEADERS",
                        expected: "key=value pairs separated by commas".into(),
                    })?;
                Ok((key.trim().to_owned(), value.trim().to_owned()))
            })
            .collect::<Result<_, ConfigError>>()?,
    };
    let ratio = || -> Result<f64, ConfigError> {
        match get("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(raw) => {
                raw.trim().parse().ok().filter(|r: &f64| (0.0..=1.0).contains(r)).ok_or(ConfigError::Invalid {
                    var: "OTEL_TRACES_SAMPLER_ARG",
                    expected: "a sampling ratio from 0 to 1".into(),
                })
            }
        }
    };
    let sampler = match get("OTEL_TRACES_SAMPLER").as_deref() {
        None | Some("parentbased_always_on") => TraceSampler::ParentBasedAlwaysOn,
        Some("always_on") => TraceSampler::AlwaysOn,
        Some("always_off") => TraceSampler::AlwaysOff,
        Some("traceidratio") => TraceSampler::TraceIdRatio(ratio()?),
        Some("parentbased_always_off") => TraceSampler::ParentBasedAlwaysOff,
        Some("parentbased_traceidratio") => TraceSampler::ParentBasedTraceIdRatio(ratio()?),
        Some(_) => {
            return Err(ConfigError::Invalid {
                var: "OTEL_TRACES_SAMPLER",
                expected: "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio".into(),
            });
        }
    };
    Ok(Tracing {
        endpoint: endpoint.map(|(url, _)| url),
        headers,
        sampler,
        service_name: get("OTEL_SERVICE_NAME").or_else(|| get("K_SERVICE")),
        schedule_delay: millis(get, "OTEL_BSP_SCHEDULE_DELAY", 5000)?,
        max_queue_size: parse_bounded(get, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1..=1_000_000, "a number of spans")?,
        max_export_batch_size: parse_bounded(
            get,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            512,
            1..=100_000,
            "a number of spans",
        )?,
        export_timeout: millis(get, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
    })
}

/// `projects/<p>/secrets/<s>/versions/<v>`, each part non-empty.
fn is_secret_version_name(name: &str) -> bool {
    is_resource_name(name, &["projects", "secrets", "versions"])
}

/// `<kinds[0]>/<id>/<kinds[1]>/<id>/...`, each id non-empty visible ASCII without `/`.
fn is_resource_name(name: &str, kinds: &[&str]) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == kinds.len() * 2
        && parts.chunks(2).zip(kinds).all(|(pair, kind)| pair[0] == *kind)
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic()))
}

fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    expected: &str,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|_| ConfigError::Invalid { var, expected: expected.to_owned() }),
    }
}

fn parse_bounded<T: FromStr + PartialOrd + fmt::Display>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<T, ConfigError> {
    let expected = format!("{what} from {} to {}", range.start(), range.end());
    let value = parse(get, var, default, &expected)?;
    if range.contains(&value) { Ok(value) } else { Err(ConfigError::Invalid { var, expected }) }
}

fn millis(get: &impl Fn(&str) -> Option<String>, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
    parse_bounded(get, var, default, 1..=600_000, "a number of milliseconds").map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_unset() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.port, 8080);
        assert_eq!(c.pool.max_size, 10);
        assert_eq!(c.max_future_skew, Duration::from_secs(3600));
        assert_eq!(c.shutdown_grace, Duration::from_secs(8));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(
            c.require_database_url().expect_err("invalid").to_string(),
            "DATABASE_URL is not set: expected a PostgreSQL URL such as postgres://user:password@host:5432/events"
        );
    }

    #[test]
    fn cloud_run_defaults_to_json_logs() {
        assert_eq!(config(&[("K_SERVICE", "events")]).expect("valid").log_format, LogFormat::Json);
        assert_eq!(
            config(&[("K_SERVICE", "events"), ("LOG_FORMAT", "text")]).expect("valid").log_format,
            LogFormat::Text
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_never_echo_it() {
        let err = config(&[("PORT", "eighty")]).expect_err("invalid").to_string();
        assert_eq!(err, "PORT is invalid: expected a TCP port number, 1-65535");
        let err = config(&[("DB_POOL_SIZE", "0")]).expect_err("invalid").to_string();
        assert_eq!(err, "DB_POOL_SIZE is invalid: expected a pool size from 1 to 1000");
        let err = config(&[("LOG_FORMAT", "xml")]).expect_err("invalid").to_string();
        assert!(err.starts_with("LOG_FORMAT is invalid"), "{err}");
        assert!(!err.contains("xml"));
    }

    #[test]
    fn secret_names_are_checked() {
        let ok = config(&[("TENANT_KEYS_SECRET", "projects/p/secrets/tenant-keys/versions/latest")]).expect("valid");
        assert_eq!(ok.tenant_keys_refresh, Duration::from_secs(300));
        for bad in
            ["tenant-keys", "projects/p/secrets/s", "projects//secrets/s/versions/1", "projects/p/keys/s/versions/1"]
        {
            let err = config(&[("TENANT_KEYS_SECRET", bad)]).expect_err(bad).to_string();
            assert!(err.starts_with("TENANT_KEYS_SECRET is invalid"), "{err}");
        }
    }

    #[test]
    fn rate_limit_is_off_unless_set() {
        assert_eq!(config(&[]).expect("valid").rate_limit, None);
        assert_eq!(config(&[("RATE_LIMIT_PER_SEC", "2.5")]).expect("valid").rate_limit, Some((2.5, 3)));
        let both = config(&[("RATE_LIMIT_PER_SEC", "10"), ("RATE_LIMIT_BURST", "50")]).expect("valid");
        assert_eq!(both.rate_limit, Some((10.0, 50)));
        for bad in ["0", "-1", "fast", "NaN"] {
            let err = config(&[("RATE_LIMIT_PER_SEC", bad)]).expect_err(bad).to_string();
            assert!(err.starts_with("RATE_LIMIT_PER_SEC is invalid"), "{err}");
        }
    }

    #[test]
    fn ingest_mode_and_topic() {
        assert_eq!(config(&[]).expect("valid").ingest_mode, IngestMode::Inline);
        let c = config(&[("INGEST_MODE", "pubsub"), ("PUBSUB_TOPIC", "projects/p/topics/events")]).expect("valid");
        assert_eq!((c.ingest_mode, c.pubsub_topic.as_deref()), (IngestMode::PubSub, Some("projects/p/topics/events")));
        assert!(config(&[("INGEST_MODE", "kafka")]).is_err());
        let err = config(&[("INGEST_MODE", "pubsub")]).expect_err("no topic").to_string();
        assert!(err.starts_with("PUBSUB_TOPIC is not set"), "{err}");
        assert!(config(&[("PUBSUB_TOPIC", "events")]).is_err());
    }

    #[test]
    fn retention_is_off_unless_set() {
        let c = config(&[]).expect("valid");
        assert_eq!((c.retention_days, c.partition_ahead_days), (None, 14));
        assert_eq!(config(&[("RETENTION_DAYS", "90")]).expect("valid").retention_days, Some(90));
        for bad in ["0", "-1", "forever", "36501"] {
            let err = config(&[("RETENTION_DAYS", bad)]).expect_err(bad).to_string();
            assert!(err.starts_with("RETENTION_DAYS is invalid"), "{err}");
        }
    }

    #[test]
    fn tracing_is_off_unless_an_endpoint_is_set() {
        let c = config(&[]).expect("valid");
        assert_eq!((c.tracing.endpoint, c.tracing.sampler), (None, TraceSampler::ParentBasedAlwaysOn));
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-a=1, x-b = 2"),
        ])
        .expect("valid");
        assert_eq!(c.tracing.endpoint.as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(c.tracing.sampler, TraceSampler::ParentBasedTraceIdRatio(0.01));
        assert_eq!(c.tracing.headers, vec![("x-a".into(), "1".into()), ("x-b".into(), "2".into())]);
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t/v1/traces"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
        ])
        .expect("valid");
        assert_eq!(c.tracing.endpoint.as_deref(), Some("https://t/v1/traces"));
        for (var, bad) in [
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "nokey"),
        ] {
            let err = config(&[(var, bad), ("OTEL_TRACES_SAMPLER_ARG", "2")]).expect_err(bad).to_string();
            assert!(err.starts_with(&format!("{var} is invalid")), "{err}");
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = config(&[("DATABASE_URL", "postgres://u:hunter2@h/db"), ("TENANT_KEYS", r#"{"a":["secret-key"]}"#)])
            .expect("valid");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("secret-key"), "{shown}");
    }
}

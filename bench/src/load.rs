//! The load generator: a lean compiled HTTP/1.1 client (hyper's connection API on a
//! single-threaded tokio runtime, so it takes as little of the two cores as it can), one
//! keep-alive connection per virtual client, each sending its next request as soon as the last
//! one was answered, for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, header};

use crate::client::{connect, send};
use crate::probe::{self, CpuShare, Watch};
use crate::stack::{API_KEY, TENANT};

/// A request that takes longer than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An empty histogram of microseconds, 1 µs to 10 min, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant, valid histogram bounds")
}

/// What one load point measured, for the service or for pgbench alike.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Events durably stored per second.
    pub events_per_s: f64,
    /// Requests (pgbench: transactions) completed per second.
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub avg_ms: f64,
    pub errors: u64,
    /// The first few error messages, to tell what went wrong.
    pub error_samples: Vec<String>,
    pub cpu: CpuShare,
    pub service_rss_max_kib: Option<u64>,
    /// Events acknowledged over the whole point, warm-up included (service points only): what
    /// must be stored once the point is over.
    pub acknowledged: u64,
    /// Rows found stored after the point (service points only), to compare with
    /// `acknowledged`.
    pub stored: Option<u64>,
    /// Bytes of WAL PostgreSQL wrote over the whole point, warm-up included (service points
    /// only): with `acknowledged`, the WAL per event that backups, replicas and the warehouse
    /// export's change stream carry.
    pub wal_bytes: Option<u64>,
}

impl Measured {
    /// Rows stored equal events acknowledged: `None` when not checked.
    pub fn stored_matches(&self) -> Option<bool> {
        self.stored.map(|stored| stored == self.acknowledged)
    }
}

/// The event name of every event the load generator sends.
pub const EVENT_NAME: &str = "bench_event";

/// What each request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `POST /events`, one event, a unique `Idempotency-Key`; expects 201.
    Single,
    /// The same against `events` in `pubsub` mode; expects 202.
    Accepted,
    /// `POST /events/batch` of `size` new events (unique `event_id`s); expects 200 with every
    /// result `created`.
    Batch { size: usize },
    /// `POST /pubsub/push` to the `worker`: a Pub/Sub push envelope of one new event, as
    /// `events` publishes it in `pubsub` mode; expects 204.
    Push,
}

/// One load point against the service.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub port: u16,
    pub service_pid: u32,
    pub postmaster: u32,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub workload: Workload,
    /// Makes this point's ids unique across the whole run.
    pub tag: String,
    /// The `occurred_at` of every event of the point (to the microsecond): the rows it stored
    /// are the rows at this time.
    pub timestamp: DateTime<Utc>,
    /// Keep every measured request's start, end and outcome (`run_timed`).
    pub timeline: bool,
}

/// One measured request: start and end in µs after the measured window opened, and whether it
/// got the expected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    pub start_us: u64,
    pub end_us: u64,
    pub ok: bool,
}

#[derive(Debug)]
struct ClientStats {
    histogram: Histogram<u64>,
    requests: u64,
    events: u64,
    acknowledged: u64,
    errors: u64,
    error_samples: Vec<String>,
    timeline: Vec<Timed>,
}

impl ClientStats {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < 3 {
            self.error_samples.push(message);
        }
    }
}

/// Runs the point: `warmup` of unmeasured load, then `duration` measured. A request counts
/// when it starts and is answered inside the measured window.
pub fn run(spec: &LoadSpec) -> anyhow::Result<Measured> {
    run_timed(spec, |_| {}).map(|(measured, _)| measured)
}

/// `run`, calling `at_start` with the instant the measured window opens (before any request is
/// sent), and returning every measured request when `spec.timeline` is set, in no order.
pub fn run_timed(spec: &LoadSpec, at_start: impl FnOnce(Instant)) -> anyhow::Result<(Measured, Vec<Timed>)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    let spec = Arc::new(spec.clone());
    let measure_from = Instant::now() + spec.warmup;
    let measure_to = measure_from + spec.duration;
    at_start(measure_from);
    let watch = Watch { service: Some(spec.service_pid), generator: std::process::id(), postmaster: spec.postmaster };
    let observer = probe::observe(watch, measure_from, measure_to);
    let timestamp = spec.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let stats = runtime.block_on(async {
        let tasks: Vec<_> = (0..spec.clients)
            .map(|id| tokio::spawn(client(id, spec.clone(), timestamp.clone(), measure_from, measure_to)))
            .collect();
        let mut all = Vec::with_capacity(tasks.len());
        for task in tasks {
            all.push(task.await);
        }
        all
    });
    let observation = observer.join().unwrap_or_default();

    let mut histogram = new_histogram();
    let (mut requests, mut events, mut acknowledged, mut errors) = (0, 0, 0, 0);
    let (mut samples, mut timeline) = (Vec::new(), Vec::new());
    for stat in stats {
        let stat = stat.context("a client task panicked")?;
        histogram.add(&stat.histogram).context("merging histograms")?;
        requests += stat.requests;
        events += stat.events;
        acknowledged += stat.acknowledged;
        errors += stat.errors;
        samples.extend(stat.error_samples);
        timeline.extend(stat.timeline);
    }
    samples.truncate(3);
    let seconds = spec.duration.as_secs_f64();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let measured = Measured {
        events_per_s: events as f64 / seconds,
        requests_per_s: requests as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        avg_ms: histogram.mean() / 1000.0,
        errors,
        error_samples: samples,
        cpu: observation.cpu,
        service_rss_max_kib: observation.service_rss_max_kib,
        acknowledged,
        stored: None,
        wal_bytes: None,
    };
    Ok((measured, timeline))
}

fn micros_between(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

async fn client(id: usize, spec: Arc<LoadSpec>, timestamp: String, from: Instant, to: Instant) -> ClientStats {
    let mut stats = ClientStats {
        histogram: new_histogram(),
        requests: 0,
        events: 0,
        acknowledged: 0,
        errors: 0,
        error_samples: Vec::new(),
        timeline: Vec::new(),
    };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut seq: u64 = 0;
    let expected_events = match spec.workload {
        Workload::Single | Workload::Accepted | Workload::Push => 1,
        Workload::Batch { size } => size as u64,
    };
    while Instant::now() < to {
        let Some(conn) = sender.as_mut() else {
            match connect(spec.port).await {
                Ok(conn) => sender = Some(conn),
                Err(err) => {
                    if Instant::now() >= from {
                        stats.error(format!("connect: {err:#}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            continue;
        };
        seq += 1;
        let request = build_request(&spec, id, seq, &timestamp);
        let started = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, send(conn, request)).await;
        let done = Instant::now();
        let measured = started >= from && done <= to;
        match outcome {
            Ok(Ok((status, body))) => {
                let ok = match spec.workload {
                    Workload::Single => status == 201,
                    Workload::Accepted => status == 202,
                    Workload::Push => status == 204,
                    Workload::Batch { .. } => status == 200 && count_created(&body) == expected_events,
                };
                // Batches are acknowledged event by event: what a partly failed one created is
                // stored too.
                stats.acknowledged += match spec.workload {
                    Workload::Batch { .. } if status == 200 => count_created(&body),
                    _ => u64::from(ok),
                };
                if !measured {
                    continue;
                }
                if spec.timeline {
                    let (start_us, end_us) = (micros_between(from, started), micros_between(from, done));
                    stats.timeline.push(Timed { start_us, end_us, ok });
                }
                if ok {
                    let micros = u64::try_from(done.duration_since(started).as_micros()).unwrap_or(u64::MAX);
                    stats.histogram.saturating_record(micros.max(1));
                    stats.requests += 1;
                    stats.events += expected_events;
                } else {
                    let text = String::from_utf8_lossy(&body);
                    stats.error(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()));
                }
            }
            Ok(Err(err)) => {
                sender = None;
                if measured {
                    stats.error(format!("{err:#}"));
                    if spec.timeline {
                        let (start_us, end_us) = (micros_between(from, started), micros_between(from, done));
                        stats.timeline.push(Timed { start_us, end_us, ok: false });
                    }
                }
            }
            Err(_) => {
                sender = None;
                if started >= from {
                    stats.error(format!("no answer within {REQUEST_TIMEOUT:?}"));
                    if spec.timeline {
                        let (start_us, end_us) = (micros_between(from, started), micros_between(from, done));
                        stats.timeline.push(Timed { start_us, end_us, ok: false });
                    }
                }
            }
        }
    }
    stats
}

/// `"created"` results in a batch response (event ids are the bench's own and never hold it).
fn count_created(body: &[u8]) -> u64 {
    body.windows(b"\"created\"".len()).filter(|w| *w == b"\"created\"").count() as u64
}

fn build_request(spec: &LoadSpec, id: usize, seq: u64, timestamp: &str) -> Request<Full<Bytes>> {
    let tag = &spec.tag;
    let builder = Request::builder()
        .header(header::HOST, format!("127.0.0.1:{}", spec.port))
        .header(header::CONTENT_TYPE, "application/json")
        .method(Method::POST);
    // Tenants authenticate with a key; Pub/Sub's pushes do not (the worker has no tenant keys).
    let builder = if spec.workload == Workload::Push { builder } else { builder.header("x-api-key", API_KEY) };
    let (builder, body) = match spec.workload {
        Workload::Single | Workload::Accepted => (
            builder.uri("/events").header("idempotency-key", format!("{tag}-{id}-{seq}")),
            format!(r#"{{"event_name":"{EVENT_NAME}","timestamp":"{timestamp}","properties":{{"n":{seq}}}}}"#),
        ),
        Workload::Push => (builder.uri("/pubsub/push"), push_body(&format!("{tag}-{id}-{seq}"), spec.timestamp, seq)),
        Workload::Batch { size } => {
            let mut body = String::with_capacity(32 + size * 128);
            body.push_str(r#"{"events":["#);
            for k in 0..size {
                if k > 0 {
                    body.push(',');
                }
                body.push_str(&format!(
                    r#"{{"event_id":"{tag}-{id}-{seq}-{k}","event_name":"{EVENT_NAME}","timestamp":"{timestamp}","properties":{{"n":{k}}}}}"#
                ));
            }
            body.push_str("]}");
            (builder.uri("/events/batch"), body)
        }
    };
    builder.body(Full::new(Bytes::from(body))).unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// The Pub/Sub subscription the push envelopes name (the worker only logs it).
const PUSH_SUBSCRIPTION: &str = "projects/bench/subscriptions/events-push";

/// A Pub/Sub push request carrying one new event of the bench tenant, `event_id` at `at`, with
/// properties `{"n": n}`: the message data is the `EventMessage` JSON `events` publishes,
/// fingerprint included, built by the same `domain` code.
pub fn push_body(event_id: &str, at: DateTime<Utc>, n: u64) -> String {
    let event = (|| {
        Some(domain::NewEvent::new(
            domain::TenantId::parse(TENANT).ok()?,
            domain::EventId::parse(event_id.as_bytes()).ok()?,
            domain::EventName::parse(EVENT_NAME).ok()?,
            at,
            Some(domain::Properties::parse(serde_json::json!({ "n": n })).ok()?),
        ))
    })();
    // An invalid id (never made here) gives an empty message, which the worker refuses: an error
    // in the report, not a panic in the generator.
    let data = event
        .and_then(|e| serde_json::to_vec(&domain::EventMessage::from(&e)).ok())
        .map(|json| base64::engine::general_purpose::STANDARD.encode(json))
        .unwrap_or_default();
    let published = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    serde_json::json!({
        "message": {
            "data": data,
            "attributes": { "tenant_id": TENANT },
            "messageId": event_id,
            "publishTime": published,
        },
        "subscription": PUSH_SUBSCRIPTION,
    })
    .to_string()
}

/// Latency of one `GET` query, sent one at a time on one connection.
#[derive(Debug, Clone)]
pub struct QueryTiming {
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The `count` of the last answer.
    pub count: Option<i64>,
    pub errors: u64,
    pub error_sample: Option<String>,
}

/// Sends `GET path` `requests` times in a row (after `warmup` unmeasured ones), or until
/// `time_cap` has passed with at least `min_requests` done.
pub fn time_queries(
    port: u16,
    path: &str,
    warmup: usize,
    requests: usize,
    min_requests: usize,
    time_cap: Duration,
) -> anyhow::Result<QueryTiming> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(async {
        let mut sender = connect(port).await?;
        let mut histogram = new_histogram();
        let mut timing = QueryTiming {
            requests: 0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
            count: None,
            errors: 0,
            error_sample: None,
        };
        let started = Instant::now();
        for i in 0..warmup + requests {
            if i >= warmup + min_requests && started.elapsed() > time_cap {
                break;
            }
            let request = Request::builder()
                .uri(path)
                .header(header::HOST, format!("127.0.0.1:{port}"))
                .header("x-api-key", API_KEY)
                .body(Full::new(Bytes::new()))
                .context("building a request")?;
            let sent = Instant::now();
            let (status, body) = match tokio::time::timeout(REQUEST_TIMEOUT, send(&mut sender, request)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(err)) => {
                    timing.errors += 1;
                    timing.error_sample.get_or_insert_with(|| format!("{err:#}"));
                    sender = connect(port).await?;
                    continue;
                }
                Err(_) => {
                    timing.errors += 1;
                    timing.error_sample.get_or_insert_with(|| "timed out".to_owned());
                    sender = connect(port).await?;
                    continue;
                }
            };
            let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            if status != 200 {
                timing.errors += 1;
                timing.error_sample.get_or_insert_with(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
                continue;
            }
            timing.count =
                serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v.get("count")?.as_i64());
            if i >= warmup {
                histogram.saturating_record(micros.max(1));
                timing.requests += 1;
            }
        }
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        timing.p50_ms = ms(0.5);
        timing.p99_ms = ms(0.99);
        timing.max_ms = histogram.max() as f64 / 1000.0;
        Ok(timing)
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn spec(workload: Workload) -> LoadSpec {
        LoadSpec {
            port: 1,
            service_pid: 1,
            postmaster: 1,
            clients: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            workload,
            tag: "t".into(),
            timestamp: chrono::DateTime::from_timestamp_micros(1_795_000_000_123_456).expect("valid"),
            timeline: false,
        }
    }

    #[test]
    fn single_request_is_valid_json_with_a_unique_key() {
        let request = build_request(&spec(Workload::Single), 3, 7, "2026-11-26T00:00:00.000000Z");
        assert_eq!(request.uri(), "/events");
        assert_eq!(request.headers()["idempotency-key"], "t-3-7");
        assert_eq!(request.headers()["x-api-key"], API_KEY);
    }

    #[test]
    fn batch_body_holds_size_events_with_distinct_ids() {
        let request = build_request(&spec(Workload::Batch { size: 5 }), 0, 1, "2026-11-26T00:00:00Z");
        let body = futures_body(request);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let events = json["events"].as_array().expect("events");
        assert_eq!(events.len(), 5);
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e["event_id"].as_str()).collect();
        assert_eq!(ids.len(), 5);
    }

    fn futures_body(request: Request<Full<Bytes>>) -> Bytes {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async { request.into_body().collect().await.expect("body").to_bytes() })
    }

    #[test]
    fn push_envelope_carries_a_verifiable_event_message() {
        let spec = spec(Workload::Push);
        let request = build_request(&spec, 2, 9, "unused");
        assert_eq!(request.uri(), "/pubsub/push");
        let body: serde_json::Value = serde_json::from_slice(&futures_body(request)).expect("json");
        assert_eq!(body["message"]["messageId"], "t-2-9");
        let data = base64::engine::general_purpose::STANDARD
            .decode(body["message"]["data"].as_str().expect("data"))
            .expect("base64");
        let message: domain::EventMessage = serde_json::from_slice(&data).expect("an EventMessage");
        assert_eq!((message.tenant_id.as_str(), message.event_id.as_str()), (TENANT, "t-2-9"));
        assert_eq!(message.occurred_at, spec.timestamp);
        assert_eq!(message.payload_hash.len(), 64);
        // What the worker checks: every rule, and the fingerprint against the contents.
        let event = message.into_new_event().expect("the worker accepts it");
        assert_eq!(event.properties(), Some(&serde_json::json!({"n": 9})));
    }

    #[test]
    fn counts_created_results() {
        let body = br#"{"results":[{"event_id":"a","index":0,"status":"created"},{"event_id":"b","index":1,"status":"duplicate"},{"event_id":"c","index":2,"status":"created"}]}"#;
        assert_eq!(count_created(body), 2);
    }
}

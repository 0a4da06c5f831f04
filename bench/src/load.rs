//! The load generator: a lean compiled HTTP/1.1 client (hyper's connection API on a
//! single-threaded tokio runtime, so it takes as little of the two cores as it can), one
//! keep-alive connection per virtual client, each sending its next request as soon as the last
//! one was answered, for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, header};

use crate::client::{connect, send};
use crate::probe::{self, CpuShare, Watch};
use crate::stack::API_KEY;

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
}

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
}

#[derive(Debug)]
struct ClientStats {
    histogram: Histogram<u64>,
    requests: u64,
    events: u64,
    errors: u64,
    error_samples: Vec<String>,
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
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    let spec = Arc::new(spec.clone());
    let measure_from = Instant::now() + spec.warmup;
    let measure_to = measure_from + spec.duration;
    let watch = Watch { service: Some(spec.service_pid), generator: std::process::id(), postmaster: spec.postmaster };
    let observer = probe::observe(watch, measure_from, measure_to);
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
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
    let (mut requests, mut events, mut errors, mut samples) = (0, 0, 0, Vec::new());
    for stat in stats {
        let stat = stat.context("a client task panicked")?;
        histogram.add(&stat.histogram).context("merging histograms")?;
        requests += stat.requests;
        events += stat.events;
        errors += stat.errors;
        samples.extend(stat.error_samples);
    }
    samples.truncate(3);
    let seconds = spec.duration.as_secs_f64();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(Measured {
        events_per_s: events as f64 / seconds,
        requests_per_s: requests as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        avg_ms: histogram.mean() / 1000.0,
        errors,
        error_samples: samples,
        cpu: observation.cpu,
        service_rss_max_kib: observation.service_rss_max_kib,
    })
}

async fn client(id: usize, spec: Arc<LoadSpec>, timestamp: String, from: Instant, to: Instant) -> ClientStats {
    let mut stats =
        ClientStats { histogram: new_histogram(), requests: 0, events: 0, errors: 0, error_samples: Vec::new() };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut seq: u64 = 0;
    let expected_events = match spec.workload {
        Workload::Single | Workload::Accepted => 1,
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
                    Workload::Batch { .. } => status == 200 && count_created(&body) == expected_events,
                };
                if !measured {
                    continue;
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
                }
            }
            Err(_) => {
                sender = None;
                if started >= from {
                    stats.error(format!("no answer within {REQUEST_TIMEOUT:?}"));
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
        .header("x-api-key", API_KEY)
        .method(Method::POST);
    let (builder, body) = match spec.workload {
        Workload::Single | Workload::Accepted => (
            builder.uri("/events").header("idempotency-key", format!("{tag}-{id}-{seq}")),
            format!(r#"{{"event_name":"bench_event","timestamp":"{timestamp}","properties":{{"n":{seq}}}}}"#),
        ),
        Workload::Batch { size } => {
            let mut body = String::with_capacity(32 + size * 128);
            body.push_str(r#"{"events":["#);
            for k in 0..size {
                if k > 0 {
                    body.push(',');
                }
                body.push_str(&format!(
                    r#"{{"event_id":"{tag}-{id}-{seq}-{k}","event_name":"bench_event","timestamp":"{timestamp}","properties":{{"n":{k}}}}}"#
                ));
            }
            body.push_str("]}");
            (builder.uri("/events/batch"), body)
        }
    };
    builder.body(Full::new(Bytes::from(body))).unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
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
    fn counts_created_results() {
        let body = br#"{"results":[{"event_id":"a","index":0,"status":"created"},{"event_id":"b","index":1,"status":"duplicate"},{"event_id":"c","index":2,"status":"created"}]}"#;
        assert_eq!(count_created(body), 2);
    }
}

//! Async ingestion under load: a second release `events`, in `pubsub` mode, publishes to the
//! Pub/Sub emulator, which pushes to the release `worker`; `metrics` counts. Measures what
//! clients get (202s per second and their latency) and, with probe events sent once a
//! `PROBE_EVERY` while the load runs, how long an accepted event takes to become countable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use hyper::Method;

use crate::client;
use crate::load::{self, LoadSpec, Measured, Workload};
use crate::stack::{API_KEY, Service, Stack, wait_for_health};

const TOPIC: &str = "projects/bench/topics/events";
const SUBSCRIPTION: &str = "projects/bench/subscriptions/events-push";
pub const PROBE_EVERY: Duration = Duration::from_millis(100);
/// A probe not countable by then counts as lost.
const PROBE_GIVE_UP: Duration = Duration::from_secs(60);

/// The emulator, the worker and the publishing `events`; dropped in that reverse order.
#[derive(Debug)]
pub struct AsyncStack {
    pub events: Service,
    pub worker: Service,
    _emulator: devdb::PubSubEmulator,
}

/// One run of the async point.
#[derive(Debug, Clone)]
pub struct AsyncRun {
    pub clients: usize,
    /// Clients' view: 202s per second, their latency, CPU (worker and emulator are "other").
    pub accepted: Measured,
    /// 202 to countable through `/metrics` of every probe that became countable, µs.
    pub countable: Histogram<u64>,
    /// Probes that were not countable within `PROBE_GIVE_UP`, or not accepted.
    pub probes_failed: usize,
    /// From the end of the load until the last accepted event was stored.
    pub drain: Duration,
    /// The worker's VmRSS once it has stored the backlog.
    pub worker_rss_kib: Option<u64>,
}

impl AsyncStack {
    pub fn start(stack: &Stack) -> anyhow::Result<Self> {
        eprintln!("bench: starting the Pub/Sub emulator, worker and events (INGEST_MODE=pubsub)");
        let emulator = devdb::PubSubEmulator::start().context("starting the Pub/Sub emulator")?;
        let host = emulator.host();
        let emulator_port: u16 = host.rsplit(':').next().and_then(|p| p.parse().ok()).context("the emulator's port")?;
        let start = |name: &str, label: &str, vars: &[(&str, &str)]| {
            Service::start(&stack.bin_dir, name, label, &stack.db_url, stack.pool_size, stack.scratch.path(), vars)
        };
        let worker = start("worker", "worker", &[])?;
        wait_for_health(&stack.http, worker.port, Duration::from_secs(20)).context("worker did not answer /health")?;
        let put = |path: &str, body: String| -> anyhow::Result<()> {
            match stack.http.request(emulator_port, Method::PUT, &format!("/v1/{path}"), &[], &body)? {
                (200 | 409, _) => Ok(()),
                (status, text) => bail!("PUT {path} on the emulator: {status} {text}"),
            }
        };
        put(TOPIC, "{}".to_owned())?;
        put(
            SUBSCRIPTION,
            serde_json::json!({
                "topic": TOPIC,
                "ackDeadlineSeconds": 30,
                "pushConfig": {"pushEndpoint": format!("http://127.0.0.1:{}/pubsub/push", worker.port)},
            })
            .to_string(),
        )?;
        let events = start(
            "events",
            "events-pubsub",
            &[("INGEST_MODE", "pubsub"), ("PUBSUB_TOPIC", TOPIC), ("PUBSUB_EMULATOR_HOST", &host)],
        )?;
        wait_for_health(&stack.http, events.port, Duration::from_secs(20))
            .context("events (pubsub) did not answer /health")?;
        Ok(Self { events, worker, _emulator: emulator })
    }
}

/// Loads `events` (pubsub) with `clients` for `warmup` + `duration`, probing all along; then
/// waits for the worker to store the backlog.
pub fn point(
    stack: &Stack,
    async_stack: &AsyncStack,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    tag: String,
) -> anyhow::Result<AsyncRun> {
    stack.reset_table()?;
    let spec = LoadSpec {
        port: async_stack.events.port,
        service_pid: async_stack.events.pid(),
        postmaster: stack.postmaster,
        clients,
        warmup,
        duration,
        workload: Workload::Accepted,
        tag: tag.clone(),
        timestamp: crate::now_micros(),
        timeline: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let probes = {
        let (stop, events, metrics) = (stop.clone(), async_stack.events.port, stack.metrics.port);
        let http = client::Blocking::new()?;
        std::thread::spawn(move || {
            std::thread::sleep(warmup);
            probe_until(&http, &stop, events, metrics, &tag)
        })
    };
    let accepted = load::run(&spec);
    stop.store(true, Ordering::SeqCst);
    let load_ended = Instant::now();
    let (countable, probes_failed) = probes.join().map_err(|_| anyhow::anyhow!("the probe thread panicked"))?;
    let mut accepted = accepted?;
    let drain = drained_since(stack, load_ended)?;
    // Every 202 must end up stored (the probes have names and times of their own).
    accepted.stored = Some(stack.stored_at(spec.timestamp)?);
    let worker_rss_kib = crate::probe::rss_kib(async_stack.worker.pid());
    Ok(AsyncRun { clients, accepted, countable, probes_failed, drain, worker_rss_kib })
}

/// Sends a probe event (a name of its own) every `PROBE_EVERY` until `stop`; returns the
/// 202-to-countable times and the number of failed probes.
fn probe_until(
    http: &client::Blocking,
    stop: &AtomicBool,
    events: u16,
    metrics: u16,
    tag: &str,
) -> (Histogram<u64>, usize) {
    let (mut times, mut failed) = (load::new_histogram(), 0);
    let now = chrono::Utc::now();
    let at = |d: chrono::TimeDelta| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (timestamp, from, to) =
        (at(chrono::TimeDelta::zero()), at(-chrono::TimeDelta::hours(1)), at(chrono::TimeDelta::hours(1)));
    for n in 1.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let name = format!("probe_{tag}_{n}");
        match probe(http, events, metrics, &name, &timestamp, &from, &to) {
            Some(countable) => {
                times.saturating_record(u64::try_from(countable.as_micros()).unwrap_or(u64::MAX).max(1));
            }
            None => failed += 1,
        }
        std::thread::sleep(PROBE_EVERY);
    }
    (times, failed)
}

/// Posts one event named `name` and polls `/metrics` every 2 ms until it is counted: the time
/// from its 202 to then, or `None` if it was not accepted or not counted within `PROBE_GIVE_UP`.
fn probe(
    http: &client::Blocking,
    events: u16,
    metrics: u16,
    name: &str,
    timestamp: &str,
    from: &str,
    to: &str,
) -> Option<Duration> {
    let body = format!(r#"{{"event_name":"{name}","timestamp":"{timestamp}"}}"#);
    let headers = [("X-API-Key", API_KEY), ("Idempotency-Key", name)];
    if !matches!(http.request(events, Method::POST, "/events", &headers, &body), Ok((202, _))) {
        return None;
    }
    let accepted = Instant::now();
    let query = format!("/metrics?event_name={name}&from={from}&to={to}");
    while accepted.elapsed() <= PROBE_GIVE_UP {
        if let Ok((200, text)) = http.request(metrics, Method::GET, &query, &[("X-API-Key", API_KEY)], "")
            && serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["count"].as_i64()) >= Some(1)
        {
            return Some(accepted.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// Polls the number of stored events until it has not moved for 3 s; returns how long after
/// `since` it last moved.
fn drained_since(stack: &Stack, since: Instant) -> anyhow::Result<Duration> {
    let count = || -> anyhow::Result<i64> { Ok(stack.sql("SELECT count(*) FROM event_log")?.parse()?) };
    let (mut last, mut last_change) = (count()?, Instant::now());
    while last_change.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        let now = count()?;
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
        if since.elapsed() > Duration::from_secs(300) {
            bail!("the worker was still storing events 5 minutes after the load ended");
        }
    }
    Ok(last_change.saturating_duration_since(since))
}

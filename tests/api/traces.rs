//! OpenTelemetry traces from the real binaries to a fake OTLP/HTTP collector (wiremock), as the
//! Secret Manager tests fake Google: one trace from the request through Pub/Sub to the insert,
//! no API key in any span, log lines carrying the exported trace, and a dead collector that
//! changes no answer.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{ACME_KEY, Process, TEST_KEYS, TestDatabase, free_port, pubsub_emulator_host, send};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn collector() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/traces")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    server
}

/// Every span the collector has received so far.
async fn spans(collector: &MockServer) -> Vec<Span> {
    let requests = collector.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .flat_map(|request| {
            let export = ExportTraceServiceRequest::decode(request.body.as_slice()).expect("OTLP protobuf");
            export.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans).collect::<Vec<_>>()
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The span named `name` in trace `trace`, waiting for it to be exported.
async fn span_named(collector: &MockServer, trace: &str, name: &str) -> Span {
    let started = Instant::now();
    loop {
        if let Some(span) = spans(collector).await.into_iter().find(|s| hex(&s.trace_id) == trace && s.name == name) {
            return span;
        }
        let seen: Vec<String> =
            spans(collector).await.iter().map(|s| format!("{} {}", hex(&s.trace_id), s.name)).collect();
        assert!(started.elapsed() < Duration::from_secs(20), "no span {name:?} in trace {trace}; seen: {seen:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tracing_vars(collector: &MockServer, service: &str) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.uri()),
        ("OTEL_SERVICE_NAME".into(), service.into()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ("LOG_FORMAT".into(), "json".into()),
        ("GOOGLE_CLOUD_PROJECT".into(), "test-project".into()),
    ]
}

async fn start(name: &str, vars: &[(String, String)]) -> Process {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Process::start(name, &vars).await.unwrap_or_else(|(code, output)| panic!("{name} exited {code:?}:\n{output}"))
}

#[tokio::test]
async fn one_trace_runs_from_the_request_through_pubsub_to_the_insert() {
    let collector = collector().await;
    let db = TestDatabase::create().await;
    let host = pubsub_emulator_host();
    let topic = format!("projects/test-project/topics/traced-{}", uuid::Uuid::now_v7().simple());

    let mut worker_vars = tracing_vars(&collector, "worker");
    worker_vars.push(("DATABASE_URL".into(), db.url.clone()));
    let worker = start("worker", &worker_vars).await;
    let push = format!("{}/pubsub/push", worker.base);
    local::pubsub::Topology::for_topic(&topic).ensure(&host, &push, 5).await.expect("topology");

    let mut events_vars = tracing_vars(&collector, "events");
    events_vars.extend([
        ("DATABASE_URL".into(), db.url.clone()),
        ("TENANT_KEYS".into(), TEST_KEYS.into()),
        ("INGEST_MODE".into(), "pubsub".into()),
        ("PUBSUB_TOPIC".into(), topic.clone()),
        ("PUBSUB_EMULATOR_HOST".into(), host.clone()),
    ]);
    let events = start("events", &events_vars).await;
    let client = reqwest::Client::new();
    let body = json!({"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {"plan": "pro"}});
    let request = client
        .post(format!("{}/events", events.base))
        .header("X-API-Key", ACME_KEY)
        .header("Idempotency-Key", "traced-1")
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&body);
    assert_eq!(send(request).await.0, 202);
    // A refused request too: its key must not reach a span either.
    let refused =
        client.post(format!("{}/events", events.base)).header("X-API-Key", "wrong-key-never-traced").json(&body);
    assert_eq!(send(refused).await.0, 401);

    // The chain: the caller → events' request span → publish → (Pub/Sub) → the worker's
    // processing → the group-commit wait → the flush → the insert statement.
    let server = span_named(&collector, TRACE, "POST /events").await;
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN, "the request continues the caller's span");
    let mut parent = server;
    for name in ["pubsub.publish", "pubsub.process", "group_commit", "group_commit.flush", "db.insert"] {
        let span = span_named(&collector, TRACE, name).await;
        assert_eq!(hex(&span.parent_span_id), hex(&parent.span_id), "{name}'s parent is {}", parent.name);
        parent = span;
    }

    // No key, accepted or refused, in any exported name, attribute or event.
    let exported = format!("{:?}", spans(&collector).await);
    for key in [ACME_KEY, "wrong-key-never-traced"] {
        assert!(!exported.contains(key), "{key} reached a span");
    }

    // Without a caller's trace, the log line carries the trace the exported span belongs to.
    let request = client
        .post(format!("{}/events", events.base))
        .header("X-API-Key", ACME_KEY)
        .header("Idempotency-Key", "traced-2")
        .json(&body);
    assert_eq!(send(request).await.0, 202);
    let started = Instant::now();
    let line = loop {
        let found = events.output().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|l| {
            l["httpRequest"]["status"] == 202
                && l["logging.googleapis.com/trace"].as_str().is_some_and(|t| !t.ends_with(TRACE))
        });
        if let Some(line) = found {
            break line;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no request line:\n{}", events.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let trace = line["logging.googleapis.com/trace"].as_str().and_then(|t| t.rsplit('/').next()).expect("trace");
    let logged = span_named(&collector, trace, "POST /events").await;
    assert_eq!(hex(&logged.span_id), line["logging.googleapis.com/spanId"].as_str().unwrap_or_default());
    drop(worker);
}

#[tokio::test]
async fn a_dead_collector_changes_no_answer() {
    let db = TestDatabase::create().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let vars = [
        ("DATABASE_URL", db.url.as_str()),
        ("TENANT_KEYS", TEST_KEYS),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", dead.as_str()),
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
    ];
    let events = Process::start("events", &vars).await.unwrap_or_else(|(code, output)| panic!("{code:?}:\n{output}"));
    let client = reqwest::Client::new();
    for i in 0..200 {
        let request = client
            .post(format!("{}/events", events.base))
            .header("X-API-Key", ACME_KEY)
            .header("Idempotency-Key", format!("dead-{i}"))
            .json(&json!({"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z"}));
        assert_eq!(send(request).await, (201, json!({"event_id": format!("dead-{i}"), "status": "created"})));
    }
    events.terminate();
}

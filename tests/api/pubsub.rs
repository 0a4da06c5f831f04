//! Async ingestion end to end on the real Pub/Sub emulator: `events` publishes and answers
//! 202, the emulator pushes to the worker route, the worker inserts idempotently, `metrics`
//! counts; poison messages reach the dead-letter topic; a worker outage loses nothing.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::harness::{ACME_KEY, TestApp, TestDatabase, event, free_port, pubsub_emulator_host, send};

const WINDOW: (&str, &str) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");

/// A topic of the test's own, so tests never see each other's messages.
fn topic() -> String {
    format!("projects/test-project/topics/events-{}", uuid::Uuid::now_v7().simple())
}

/// An app in `pubsub` mode on `db`, at `port`, whose topic pushes to its own worker route and
/// dead-letters after `attempts` failed pushes.
async fn async_app(port: u16, db_url: &str, topic: &str, db: Option<TestDatabase>, attempts: u32) -> TestApp {
    let host = pubsub_emulator_host();
    let app = TestApp::spawn_at(
        port,
        db_url,
        &[("INGEST_MODE", "pubsub"), ("PUBSUB_TOPIC", topic), ("PUBSUB_EMULATOR_HOST", &host)],
        db,
    )
    .await;
    let push = app.url("/pubsub/push");
    local::pubsub::Topology::for_topic(topic).ensure(&host, &push, attempts).await.expect("topology");
    app
}

async fn wait_for_count(app: &TestApp, expected: i64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let count = app.count(ACME_KEY, "signup", WINDOW.0, WINDOW.1).await;
        if count == expected {
            return started.elapsed();
        }
        assert!(count < expected, "counted {count}, more than the {expected} sent");
        assert!(started.elapsed() < within, "only {count} of {expected} counted after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn accepted_events_are_pushed_to_the_worker_and_counted_once() {
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    let app = async_app(0, &url, &topic(), Some(db), 5).await;

    let (status, body) = app.post_event(Some(ACME_KEY), Some("a-1"), &event("signup", "2026-01-01T10:00:00Z")).await;
    assert_eq!((status, body), (202, json!({"event_id": "a-1", "status": "accepted"})));
    let latency = wait_for_count(&app, 1, Duration::from_secs(20)).await;
    eprintln!("202 to countable: {latency:?}");

    // Replays are accepted again and counted once.
    for _ in 0..3 {
        assert_eq!(app.post_event(Some(ACME_KEY), Some("a-1"), &event("signup", "2026-01-01T10:00:00Z")).await.0, 202);
    }
    let items: Vec<Value> = (0..50)
        .map(|i| json!({"event_name": "signup", "timestamp": "2026-01-01T11:00:00Z", "event_id": format!("b-{i}")}))
        .collect();
    let (status, body) =
        send(app.client.post(app.url("/events/batch")).header("X-API-Key", ACME_KEY).json(&json!({"events": items})))
            .await;
    assert_eq!(status, 200);
    assert!(body["results"].as_array().expect("results").iter().all(|r| r["status"] == "accepted"), "{body}");
    wait_for_count(&app, 51, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count(ACME_KEY, "signup", WINDOW.0, WINDOW.1).await, 51, "replays were counted");
}

#[tokio::test]
async fn a_poison_message_lands_on_the_dead_letter_topic() {
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    let topic = topic();
    let app = async_app(0, &url, &topic, Some(db), 5).await;
    let host = pubsub_emulator_host();
    let topology = local::pubsub::Topology::for_topic(&topic);

    // Not an event: the worker refuses it on every delivery.
    let poison = base64::engine::general_purpose::STANDARD.encode("definitely not an event");
    let published = app
        .client
        .post(format!("http://{host}/v1/{topic}:publish"))
        .json(&json!({"messages": [{"data": poison, "attributes": {"tenant_id": "acme"}}]}))
        .send()
        .await
        .expect("publish");
    assert!(published.status().is_success());

    let started = Instant::now();
    let dead = loop {
        let pulled: Value = app
            .client
            .post(format!("http://{host}/v1/{}:pull", topology.dead_letter_subscription))
            .json(&json!({"maxMessages": 10}))
            .send()
            .await
            .expect("pull")
            .json()
            .await
            .expect("json");
        if let Some(message) = pulled["receivedMessages"].as_array().and_then(|m| m.first()) {
            break message["message"]["data"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no dead letter after a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead, json!(poison));
    assert_eq!(app.count(ACME_KEY, "signup", WINDOW.0, WINDOW.1).await, 0);
}

#[tokio::test]
async fn a_restarted_worker_picks_up_the_stream() {
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    let topic = topic();
    // The worker on a port of its own; events publish from another app on the same database.
    let worker_port = free_port();
    let worker = async_app(worker_port, &url, &topic, None, 5).await;
    let publisher = TestApp::spawn_with(
        &url,
        &[("INGEST_MODE", "pubsub"), ("PUBSUB_TOPIC", &topic), ("PUBSUB_EMULATOR_HOST", &pubsub_emulator_host())],
        Some(db),
    )
    .await;
    let send_range = |range: std::ops::Range<u32>| {
        let publisher = &publisher;
        async move {
            for i in range {
                let (status, _) = publisher
                    .post_event(Some(ACME_KEY), Some(&format!("s-{i}")), &event("signup", "2026-01-01T10:00:00Z"))
                    .await;
                assert_eq!(status, 202);
            }
        }
    };
    send_range(0..40).await;
    wait_for_count(&worker, 40, Duration::from_secs(30)).await;
    // A new worker process in its place (a new revision, a restarted instance).
    drop(worker);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let worker = async_app(worker_port, &url, &topic, None, 5).await;
    send_range(40..100).await;
    wait_for_count(&worker, 100, Duration::from_secs(30)).await;
}

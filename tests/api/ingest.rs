//! `POST /events`: storage, identity, idempotency and isolation.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::harness::{ACME_KEY, GLOBEX_KEY, TestApp, event};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("valid timestamp").with_timezone(&Utc)
}

#[tokio::test]
async fn stores_every_field_and_normalises_the_timestamp_to_utc() {
    let app = TestApp::spawn().await;
    let before = Utc::now();
    let body = json!({
        "event_name": "checkout completed",
        "timestamp": "2026-03-01T08:15:30.123456+05:30",
        "properties": {"plan": "pro", "amount": 49.5, "tags": ["a", "b"], "nested": {"ok": true}},
        "event_id": "order-1001",
    });
    let (status, reply) = app.post_event(Some(ACME_KEY), None, &body).await;
    assert_eq!((status, reply.clone()), (201, json!({"event_id": "order-1001", "status": "created"})));

    let stored = data::find_event(&app.pool, "acme", "order-1001").await.expect("query").expect("stored");
    assert_eq!(stored.tenant_id, "acme");
    assert_eq!(stored.event_name, "checkout completed");
    assert_eq!(stored.occurred_at, utc("2026-03-01T02:45:30.123456Z"));
    assert_eq!(stored.properties, Some(body["properties"].clone()));
    assert_eq!(stored.payload_hash.len(), 32);
    assert!(
        stored.received_at >= before - chrono::TimeDelta::seconds(5)
            && stored.received_at <= Utc::now() + chrono::TimeDelta::seconds(5)
    );
}

#[tokio::test]
async fn identity_comes_from_the_header_then_the_body_then_the_server() {
    let app = TestApp::spawn().await;
    let mut body = event("signup", "2026-01-01T10:00:00Z");
    body["event_id"] = json!("from-body");
    let (_, reply) = app.post_event(Some(ACME_KEY), Some("from-header"), &body).await;
    assert_eq!(reply["event_id"], "from-header");
    let (_, reply) = app.post_event(Some(ACME_KEY), None, &body).await;
    assert_eq!(reply["event_id"], "from-body");

    let (status, reply) = app.post_event(Some(ACME_KEY), None, &event("signup", "2026-01-01T10:00:00Z")).await;
    assert_eq!(status, 201);
    let id = uuid::Uuid::parse_str(reply["event_id"].as_str().expect("id")).expect("server ids are UUIDs");
    assert_eq!(id.get_version_num(), 7);
    assert!(data::find_event(&app.pool, "acme", &id.to_string()).await.expect("query").is_some());
}

#[tokio::test]
async fn a_replay_is_a_duplicate_and_counted_once() {
    let app = TestApp::spawn().await;
    let body = json!({"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {"a": 1, "b": 2}});
    let (status, reply) = app.post_event(Some(ACME_KEY), Some("retry-1"), &body).await;
    assert_eq!((status, reply["status"].as_str()), (201, Some("created")));
    for _ in 0..3 {
        let (status, reply) = app.post_event(Some(ACME_KEY), Some("retry-1"), &body).await;
        assert_eq!((status, reply), (200, json!({"event_id": "retry-1", "status": "duplicate"})));
    }
    // The same payload written differently (key order, offset) is the same payload.
    let same =
        json!({"properties": {"b": 2, "a": 1}, "timestamp": "2026-01-01T11:00:00+01:00", "event_name": "signup"});
    let (status, _) = app.post_event(Some(ACME_KEY), Some("retry-1"), &same).await;
    assert_eq!(status, 200);
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 1);
}

#[tokio::test]
async fn a_reused_key_with_another_payload_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (status, _) = app.post_event(Some(ACME_KEY), Some("k-1"), &event("signup", "2026-01-01T10:00:00Z")).await;
    assert_eq!(status, 201);
    for other in [
        event("signup", "2026-01-01T10:00:01Z"),
        event("login", "2026-01-01T10:00:00Z"),
        json!({"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {}}),
    ] {
        let (status, problem) = app.post_event(Some(ACME_KEY), Some("k-1"), &other).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["type"], "/problems/idempotency-key-reused");
    }
    let stored = data::find_event(&app.pool, "acme", "k-1").await.expect("query").expect("stored");
    assert_eq!((stored.event_name.as_str(), stored.occurred_at), ("signup", utc("2026-01-01T10:00:00Z")));
}

#[tokio::test]
async fn concurrent_identical_requests_create_exactly_one_event() {
    let app = TestApp::spawn().await;
    let body = event("signup", "2026-01-01T10:00:00Z");
    let requests = (0..32).map(|_| app.post_event(Some(ACME_KEY), Some("burst-1"), &body));
    let statuses: Vec<u16> = futures_util::future::join_all(requests).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 31, "{statuses:?}");
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 1);
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = TestApp::spawn().await;
    // The same identity in two tenants is two events, even with different payloads.
    let (status, _) = app.post_event(Some(ACME_KEY), Some("shared-id"), &event("signup", "2026-01-01T10:00:00Z")).await;
    assert_eq!(status, 201);
    let (status, _) =
        app.post_event(Some(GLOBEX_KEY), Some("shared-id"), &event("signup", "2026-01-01T11:00:00Z")).await;
    assert_eq!(status, 201);
    let (status, _) = app.post_event(Some(GLOBEX_KEY), None, &event("signup", "2026-01-01T12:00:00Z")).await;
    assert_eq!(status, 201);
    let (from, to) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    assert_eq!(app.count(ACME_KEY, "signup", from, to).await, 1);
    assert_eq!(app.count(GLOBEX_KEY, "signup", from, to).await, 2);
    let acme = data::find_event(&app.pool, "acme", "shared-id").await.expect("query").expect("stored");
    assert_eq!(acme.occurred_at, utc("2026-01-01T10:00:00Z"));
}

#[tokio::test]
async fn an_unreachable_database_is_a_503_with_retry_after() {
    let app = TestApp::spawn_unreachable().await;
    let response = app
        .client
        .post(app.url("/events"))
        .header("X-API-Key", ACME_KEY)
        .json(&event("signup", "2026-01-01T10:00:00Z"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let (status, _) = app
        .metrics(ACME_KEY, &[("event_name", "a"), ("from", "2026-01-01T00:00:00Z"), ("to", "2026-01-02T00:00:00Z")])
        .await;
    assert_eq!(status, 503);
}

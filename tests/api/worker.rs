//! `POST /pubsub/push`: what the worker acknowledges (2xx) and what it refuses so that Pub/Sub
//! retries it or moves it to the dead-letter topic.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::harness::{ACME_KEY, TestApp, new_event, send};

fn message(event_id: &str, event_name: &str, at: &str) -> domain::EventMessage {
    let at = DateTime::parse_from_rfc3339(at).expect("valid").with_timezone(&Utc);
    domain::EventMessage::from(&new_event("acme", event_id, event_name, at, Some(json!({"k": 1}))))
}

fn envelope(data: &[u8]) -> Value {
    json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "attributes": {"tenant_id": "acme"},
            "messageId": "123",
            "publishTime": "2026-01-01T10:00:00Z",
        },
        "subscription": "projects/p/subscriptions/events-push",
    })
}

async fn push(app: &TestApp, body: &Value) -> (u16, Value) {
    send(app.client.post(app.url("/pubsub/push")).json(body)).await
}

#[tokio::test]
async fn a_message_is_stored_once_however_often_it_is_delivered() {
    let app = TestApp::spawn().await;
    let body = envelope(&serde_json::to_vec(&message("m-1", "signup", "2026-01-01T10:00:00Z")).expect("json"));
    for _ in 0..3 {
        assert_eq!(push(&app, &body).await.0, 204);
    }
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 1);
    let stored = data::find_event(&app.pool, "acme", "m-1").await.expect("query").expect("stored");
    assert_eq!(stored.properties, Some(json!({"k": 1})));
}

#[tokio::test]
async fn messages_that_can_never_succeed_are_refused() {
    let app = TestApp::spawn().await;
    let mut tampered = message("m-2", "signup", "2026-01-01T10:00:00Z");
    tampered.event_name = "login".into();
    let mut bad_name = message("m-3", "signup", "2026-01-01T10:00:00Z");
    bad_name.event_name = String::new();
    let cases = vec![
        json!({}),
        json!({"message": "nope"}),
        json!({"message": {"data": "***not base64***"}}),
        envelope(b"not json"),
        envelope(br#"{"tenant_id": "acme"}"#),
        envelope(&serde_json::to_vec(&tampered).expect("json")),
        envelope(&serde_json::to_vec(&bad_name).expect("json")),
        // Ambiguous: a member twice, in the message or in the envelope.
        envelope(
            String::from_utf8(serde_json::to_vec(&message("m-6", "signup", "2026-01-01T10:00:00Z")).expect("json"))
                .expect("utf-8")
                .replacen(r#""event_name":"signup""#, r#""event_name":"signup","event_name":"login""#, 1)
                .as_bytes(),
        ),
        envelope(
            String::from_utf8(serde_json::to_vec(&message("m-7", "signup", "2026-01-01T10:00:00Z")).expect("json"))
                .expect("utf-8")
                .replacen(r#"{"k":1}"#, r#"{"k":1,"k":2}"#, 1)
                .as_bytes(),
        ),
    ];
    for body in cases {
        let (status, problem) = push(&app, &body).await;
        assert_eq!(status, 400, "{body} -> {problem}");
    }
    let twice = r#"{"message": {"data": "e30=", "messageId": "1"}, "message": {"data": "e30=", "messageId": "2"}}"#;
    let (status, _) =
        send(app.client.post(app.url("/pubsub/push")).header("content-type", "application/json").body(twice)).await;
    assert_eq!(status, 400);
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 0);
    // The same identity with another payload: refused, and the stored event is untouched.
    let first = envelope(&serde_json::to_vec(&message("m-4", "signup", "2026-01-01T10:00:00Z")).expect("json"));
    let other = envelope(&serde_json::to_vec(&message("m-4", "signup", "2026-01-01T11:00:00Z")).expect("json"));
    assert_eq!(push(&app, &first).await.0, 204);
    assert_eq!(push(&app, &other).await.0, 422);
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 1);
}

#[tokio::test]
async fn a_database_outage_asks_for_redelivery() {
    let app = TestApp::spawn_unreachable().await;
    let body = envelope(&serde_json::to_vec(&message("m-5", "signup", "2026-01-01T10:00:00Z")).expect("json"));
    assert_eq!(push(&app, &body).await.0, 503);
}

#[tokio::test]
async fn concurrent_pushes_share_statements_and_commits() {
    let db = crate::harness::TestDatabase::create().await;
    let url = db.url.clone();
    // One connection, so the statements listed below are all the writer ran.
    let app = TestApp::spawn_with(&url, &[("DB_POOL_SIZE", "1")], Some(db)).await;
    let bodies: Vec<Value> = (0..64)
        .map(|i| {
            envelope(&serde_json::to_vec(&message(&format!("g-{i}"), "signup", "2026-01-01T10:00:00Z")).expect("json"))
        })
        .collect();
    let statuses = futures_util::future::join_all(bodies.iter().map(|body| push(&app, body))).await;
    assert!(statuses.iter().all(|(status, _)| *status == 204), "{statuses:?}");
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 64);
    let statements = app
        .scalar(
            "SELECT coalesce(sum(generic_plans + custom_plans), 0)::bigint AS n FROM pg_prepared_statements \
             WHERE statement LIKE '%INSERT INTO event_identities%'",
        )
        .await;
    assert!((1..64).contains(&statements), "64 pushes took {statements} insert statements");
}

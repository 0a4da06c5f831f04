//! Every validation rule answers 400 (or 413/415) naming what is wrong, and stores nothing.

use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::harness::{ACME_KEY, TestApp, error_fields, send};

async fn assert_rejected(app: &TestApp, idempotency_key: Option<&str>, body: Value, fields: &[&str]) {
    let (status, problem) = app.post_event(Some(ACME_KEY), idempotency_key, &body).await;
    assert_eq!(status, 400, "{body} -> {problem}");
    assert_eq!(problem["type"], "/problems/validation");
    assert_eq!(error_fields(&problem), fields, "{body} -> {problem}");
}

#[tokio::test]
async fn every_event_field_rule_is_enforced() {
    let app = TestApp::spawn().await;
    let ts = "2026-01-01T10:00:00Z";
    let long_name = "n".repeat(201);
    let big = "x".repeat(32 * 1024);
    let cases: Vec<(Value, &[&str])> = vec![
        (json!([]), &["body"]),
        (json!("signup"), &["body"]),
        (json!({}), &["event_name", "timestamp"]),
        (json!({"timestamp": ts}), &["event_name"]),
        (json!({"event_name": "", "timestamp": ts}), &["event_name"]),
        (json!({"event_name": long_name, "timestamp": ts}), &["event_name"]),
        (json!({"event_name": "sign\tup", "timestamp": ts}), &["event_name"]),
        (json!({"event_name": 7, "timestamp": ts}), &["event_name"]),
        (json!({"event_name": "a"}), &["timestamp"]),
        (json!({"event_name": "a", "timestamp": "2026-01-01T10:00:00"}), &["timestamp"]),
        (json!({"event_name": "a", "timestamp": "2026-01-01"}), &["timestamp"]),
        (json!({"event_name": "a", "timestamp": 1767261600}), &["timestamp"]),
        (json!({"event_name": "a", "timestamp": "2999-01-01T00:00:00Z"}), &["timestamp"]),
        (json!({"event_name": "a", "timestamp": ts, "properties": [1]}), &["properties"]),
        (json!({"event_name": "a", "timestamp": ts, "properties": "x"}), &["properties"]),
        (json!({"event_name": "a", "timestamp": ts, "properties": {"k": big}}), &["properties"]),
        (json!({"event_name": "a", "timestamp": ts, "properties": {"k": "\u{0}"}}), &["properties"]),
        (json!({"event_name": "a", "timestamp": ts, "event_id": ""}), &["event_id"]),
        (json!({"event_name": "a", "timestamp": ts, "event_id": "a b"}), &["event_id"]),
        (json!({"event_name": "a", "timestamp": ts, "event_id": "x".repeat(256)}), &["event_id"]),
        (json!({"event_name": "a", "timestamp": ts, "event_id": 5}), &["event_id"]),
        (json!({"event_name": "a", "timestamp": ts, "colour": "red"}), &["colour"]),
        (json!({"event_name": "a", "timestamp": ts, "": "x"}), &["body"]),
    ];
    for (body, fields) in cases {
        assert_rejected(&app, None, body, fields).await;
    }
    // A timestamp just inside the allowed skew is fine.
    let soon = (chrono::Utc::now() + chrono::TimeDelta::minutes(50)).to_rfc3339();
    let (status, _) = app.post_event(Some(ACME_KEY), None, &json!({"event_name": "a", "timestamp": soon})).await;
    assert_eq!(status, 201);
    assert_eq!(app.count(ACME_KEY, "a", "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z").await, 1);
}

#[tokio::test]
async fn the_idempotency_key_header_is_checked() {
    let app = TestApp::spawn().await;
    let body = json!({"event_name": "a", "timestamp": "2026-01-01T10:00:00Z"});
    for key in ["has space", &"k".repeat(256)] {
        assert_rejected(&app, Some(key), body.clone(), &["Idempotency-Key"]).await;
    }
    let response = app
        .client
        .post(app.url("/events"))
        .header("X-API-Key", ACME_KEY)
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is a valid header"),
        )
        .json(&body)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn malformed_bodies_are_400s() {
    let app = TestApp::spawn().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"{\"event_name\": \"a\",}".to_vec(),
        b"\xff\xfe{}".to_vec(),
        b"{\"event_name\": \"\xff\", \"timestamp\": \"2026-01-01T10:00:00Z\"}".to_vec(),
        deep.into_bytes(),
        b"{\"a\": 1e999}".to_vec(),
    ];
    for body in bodies {
        let request = app
            .client
            .post(app.url("/events"))
            .header("X-API-Key", ACME_KEY)
            .header("content-type", "application/json")
            .body(body.clone());
        let (status, problem) = send(request).await;
        assert_eq!(status, 400, "{:?} -> {problem}", String::from_utf8_lossy(&body[..body.len().min(40)]));
        assert_eq!(error_fields(&problem), ["body"]);
    }
}

#[tokio::test]
async fn other_media_types_are_415() {
    let app = TestApp::spawn().await;
    let request = app
        .client
        .post(app.url("/events"))
        .header("X-API-Key", ACME_KEY)
        .header("content-type", "text/plain")
        .body(r#"{"event_name": "a", "timestamp": "2026-01-01T10:00:00Z"}"#);
    let (status, _) = send(request).await;
    assert_eq!(status, 415);
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_whether_declared_or_streamed() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(1024 * 1024);
    let body = json!({"event_name": "a", "timestamp": "2026-01-01T10:00:00Z", "properties": {"p": padding}});
    let (status, _) = app.post_event(Some(ACME_KEY), None, &body).await;
    assert_eq!(status, 413);

    // Chunked, with no Content-Length: cut off once past the limit.
    let addr = app.addr;
    let status_line = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        let head = format!(
            "POST /events HTTP/1.1\r\nHost: test\r\nX-API-Key: {ACME_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("head");
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        for _ in 0..20 {
            if stream.write_all(chunk.as_bytes()).is_err() {
                break; // the server may stop reading once it has answered
            }
        }
        let mut response = vec![0u8; 256];
        let n = stream.read(&mut response).unwrap_or(0);
        String::from_utf8_lossy(&response[..n]).lines().next().unwrap_or_default().to_owned()
    })
    .await
    .expect("raw client");
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}

#[tokio::test]
async fn every_metrics_parameter_rule_is_enforced() {
    let app = TestApp::spawn().await;
    let (from, to) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    type Query<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Query, &[&str])> = vec![
        (vec![], &["event_name", "from", "to"]),
        (vec![("event_name", "a"), ("to", to)], &["from"]),
        (vec![("event_name", "a"), ("from", from)], &["to"]),
        (vec![("event_name", ""), ("from", from), ("to", to)], &["event_name"]),
        (vec![("event_name", "a"), ("from", "2026-01-01"), ("to", to)], &["from"]),
        (vec![("event_name", "a"), ("from", from), ("to", "tomorrow")], &["to"]),
        (vec![("event_name", "a"), ("from", to), ("to", from)], &["to"]),
        (vec![("event_name", "a"), ("from", from), ("to", from)], &["to"]),
        (vec![("event_name", "a"), ("from", from), ("to", to), ("interval", "week")], &["interval"]),
        (
            vec![
                ("event_name", "a"),
                ("from", "2026-01-01T00:00:00Z"),
                ("to", "2026-02-01T00:00:00Z"),
                ("interval", "minute"),
            ],
            &["interval"],
        ),
        (vec![("event_name", "a"), ("from", from), ("to", to), ("tenant_id", "globex")], &["tenant_id"]),
        (vec![("event_name", "a"), ("from", from), ("to", to), ("", "1")], &["query"]),
        (vec![("event_name", "a"), ("from", from), ("to", to), ("", "1"), ("", "2")], &["query"]),
        (vec![("event_name", "a"), ("event_name", "b"), ("from", from), ("to", to)], &["event_name"]),
    ];
    for (query, fields) in cases {
        let (status, problem) = app.metrics(ACME_KEY, &query).await;
        assert_eq!(status, 400, "{query:?} -> {problem}");
        assert_eq!(error_fields(&problem), fields, "{query:?} -> {problem}");
    }
    // `+` must be percent-encoded in a query; unencoded it is a space, and the error says so.
    let (status, _) = send(
        app.client
            .get(app.url("/metrics?event_name=a&from=2026-01-01T00:00:00+01:00&to=2026-01-02T00:00:00Z"))
            .header("X-API-Key", ACME_KEY),
    )
    .await;
    assert_eq!(status, 400);
}

/// Writes `head` (and maybe part of a body) on a raw connection, then waits for the status line.
async fn raw_status_line(app: &TestApp, head: String, wait: std::time::Duration) -> String {
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(wait)).expect("timeout");
        let _ = stream.write_all(head.as_bytes());
        let mut response = vec![0u8; 512];
        let n = stream.read(&mut response).unwrap_or(0);
        String::from_utf8_lossy(&response[..n]).lines().next().unwrap_or_default().to_owned()
    })
    .await
    .expect("raw client")
}

#[tokio::test]
async fn a_body_that_never_finishes_is_a_408() {
    let db = crate::harness::TestDatabase::create().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(&url, &[("REQUEST_BODY_TIMEOUT_SECS", "1")], Some(db)).await;
    // Promises 100 bytes, sends 10, then stalls.
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: t\r\nX-API-Key: {ACME_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"event_na"
    );
    let started = std::time::Instant::now();
    let status = raw_status_line(&app, head, std::time::Duration::from_secs(10)).await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "answered at the timeout: {:?}", started.elapsed());
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let app = TestApp::spawn_unreachable().await;
    let head = format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Padding: {}\r\n\r\n", "a".repeat(1024 * 1024));
    let status = raw_status_line(&app, head, std::time::Duration::from_secs(10)).await;
    assert!(status.is_empty() || status.starts_with("HTTP/1.1 431"), "refused or closed: {status:?}");
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let status = raw_status_line(
        &app,
        format!("GET /health HTTP/1.1\r\nHost: t\r\n{many}\r\n"),
        std::time::Duration::from_secs(10),
    )
    .await;
    assert!(status.is_empty() || status.starts_with("HTTP/1.1 431"), "refused or closed: {status:?}");
    // The server is still fine.
    assert_eq!(send(app.client.get(app.url("/health"))).await.0, 200);
}

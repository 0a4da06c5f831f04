//! Ambiguous requests are refused, never guessed: a header that must be single given twice, a
//! JSON member given twice, an HTTP/1.1 request without exactly one `Host`. Errors the HTTP
//! layer produces itself carry a problem+json body like every other error. And a retry that
//! writes the same number another way (`1`, `1.0`, `1e0`) is the same payload.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{ACME_KEY, ACME_ROTATED_KEY, TestApp, error_fields, send};

const DAY: (&str, &str) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");

fn body() -> Value {
    json!({"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z"})
}

async fn stored(app: &TestApp) -> i64 {
    app.count(ACME_KEY, "signup", DAY.0, DAY.1).await
}

/// `POST /events` with the given headers, as the client wrote them (repeats included).
async fn post_with_headers(app: &TestApp, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut request = app.client.post(app.url("/events")).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(body.to_vec())).await
}

#[tokio::test]
async fn more_than_one_api_key_is_refused_whatever_the_order() {
    let app = TestApp::spawn().await;
    let body = serde_json::to_vec(&body()).expect("json");
    let cases: [&[(&str, &str)]; 5] = [
        &[("X-API-Key", ACME_KEY), ("X-API-Key", "bogus-key-000")],
        &[("X-API-Key", "bogus-key-000"), ("X-API-Key", ACME_KEY)],
        &[("X-API-Key", ACME_KEY), ("X-API-Key", ACME_KEY)],
        &[("X-API-Key", ACME_KEY), ("X-API-Key", ACME_ROTATED_KEY)],
        // What a proxy makes of two headers: one comma-separated list.
        &[("X-API-Key", "acme-key-0001, acme-key-0002")],
    ];
    for headers in cases {
        let (status, problem) = post_with_headers(&app, headers, &body).await;
        assert_eq!(status, 401, "{headers:?} -> {problem}");
    }
    let (status, _) = send(
        app.client
            .get(app.url("/metrics"))
            .query(&[("event_name", "signup"), ("from", DAY.0), ("to", DAY.1)])
            .header("X-API-Key", ACME_KEY)
            .header("X-API-Key", ACME_KEY),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test]
async fn more_than_one_idempotency_key_is_a_400_naming_the_header() {
    let app = TestApp::spawn().await;
    let body = serde_json::to_vec(&body()).expect("json");
    for pair in [["k-1", "k-2"], ["k-1", "k-1"]] {
        let headers = [("X-API-Key", ACME_KEY), ("Idempotency-Key", pair[0]), ("Idempotency-Key", pair[1])];
        let (status, problem) = post_with_headers(&app, &headers, &body).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(error_fields(&problem), ["Idempotency-Key"]);
    }
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test]
async fn duplicate_json_members_are_400s_naming_the_member() {
    let app = TestApp::spawn().await;
    let key = [("X-API-Key", ACME_KEY)];
    let cases: [(&str, &[&str]); 5] = [
        (r#"{"event_name": "a", "event_name": "signup", "timestamp": "2026-01-01T10:00:00Z"}"#, &["event_name"]),
        (
            r#"{"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "timestamp": "2026-01-01T11:00:00Z"}"#,
            &["timestamp"],
        ),
        (
            r#"{"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {"plan": "pro", "plan": "free"}}"#,
            &["properties.plan"],
        ),
        (
            r#"{"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {"a": [{"b": 1, "b": 1}]}}"#,
            &["properties.a[0].b"],
        ),
        // Both ambiguities are named, in the order they appear.
        (
            r#"{"event_name": "a", "event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {"x": 1, "x": 1}}"#,
            &["event_name", "properties.x"],
        ),
    ];
    for (text, fields) in cases {
        let (status, problem) = post_with_headers(&app, &key, text.as_bytes()).await;
        assert_eq!(status, 400, "{text} -> {problem}");
        assert_eq!(error_fields(&problem), fields, "{text} -> {problem}");
    }
    assert_eq!(stored(&app).await, 0);
}

#[tokio::test]
async fn a_batch_refuses_the_ambiguous_item_alone_and_an_ambiguous_envelope_whole() {
    let app = TestApp::spawn().await;
    let batch = r#"{"events": [
        {"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "event_id": "ok-1"},
        {"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "event_id": "dup-1", "event_id": "dup-2"},
        {"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "event_id": "ok-2", "properties": {"k": 1, "k": 2}}
    ]}"#;
    let request = app.client.post(app.url("/events/batch")).header("X-API-Key", ACME_KEY);
    let (status, reply) = send(request.header("content-type", "application/json").body(batch)).await;
    assert_eq!(status, 200, "{reply}");
    let results = reply["results"].as_array().expect("results");
    assert_eq!(results[0]["status"], "created");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(error_fields(&results[1]["error"]), ["event_id"]);
    assert_eq!(results[2]["status"], "rejected");
    assert_eq!(error_fields(&results[2]["error"]), ["properties.k"]);
    assert_eq!(stored(&app).await, 1);

    let envelope = r#"{"events": [{"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z"}],
                      "events": [{"event_name": "signup", "timestamp": "2026-01-01T11:00:00Z"}]}"#;
    let request = app.client.post(app.url("/events/batch")).header("X-API-Key", ACME_KEY);
    let (status, problem) = send(request.header("content-type", "application/json").body(envelope)).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(error_fields(&problem), ["events"]);
    assert_eq!(stored(&app).await, 1);
}

#[tokio::test]
async fn the_same_number_written_another_way_is_the_same_payload() {
    let app = TestApp::spawn().await;
    let with = |properties: &str| {
        format!(r#"{{"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {properties}}}"#)
    };
    let first = with(r#"{"x": 1, "y": [0.5, -2], "z": {"n": 100}}"#);
    let headers = [("X-API-Key", ACME_KEY), ("Idempotency-Key", "numbers-1")];
    let (status, reply) = post_with_headers(&app, &headers, first.as_bytes()).await;
    assert_eq!(status, 201, "{reply}");
    for same in [
        r#"{"x": 1.0, "y": [0.5, -2.0], "z": {"n": 100}}"#,
        r#"{"x": 1e0, "y": [5e-1, -2], "z": {"n": 1E2}}"#,
        r#"{"x": 10e-1, "y": [0.50, -2e0], "z": {"n": 100.000}}"#,
        r#"{"z": {"n": 1.0e2}, "y": [0.5, -2], "x": 1}"#,
    ] {
        let (status, reply) = post_with_headers(&app, &headers, with(same).as_bytes()).await;
        assert_eq!((status, reply["status"].as_str()), (200, Some("duplicate")), "{same} -> {reply}");
    }
    for different in
        [r#"{"x": 1.5, "y": [0.5, -2], "z": {"n": 100}}"#, r#"{"x": "1", "y": [0.5, -2], "z": {"n": 100}}"#]
    {
        let (status, reply) = post_with_headers(&app, &headers, with(different).as_bytes()).await;
        assert_eq!(status, 422, "{different} -> {reply}");
    }
    assert_eq!(stored(&app).await, 1);
}

/// The fingerprint the previous release stored: SHA-256 over the name, the time in
/// microseconds and the properties as serde_json printed them, each length-prefixed.
pub fn legacy_fingerprint(event_name: &str, micros: i64, properties: Option<&str>) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update((event_name.len() as u64).to_be_bytes());
    hasher.update(event_name.as_bytes());
    hasher.update(micros.to_be_bytes());
    match properties {
        None => hasher.update([0u8]),
        Some(json) => {
            hasher.update([1u8]);
            hasher.update((json.len() as u64).to_be_bytes());
            hasher.update(json.as_bytes());
        }
    }
    hasher.finalize().to_vec()
}

#[tokio::test]
async fn events_stored_with_the_previous_fingerprint_still_replay_as_duplicates() {
    let app = TestApp::spawn().await;
    // 2026-01-01T10:00:00Z in microseconds.
    let micros = 1_767_261_600_000_000;
    let properties = r#"{"plan":"pro","seats":3.0}"#;
    let hash = legacy_fingerprint("signup", micros, Some(properties));
    app.store_with_fingerprint("acme", "legacy-1", "signup", "2026-01-01T10:00:00Z", Some(properties), &hash).await;

    let replay =
        r#"{"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {"plan": "pro", "seats": 3.0}}"#;
    let headers = [("X-API-Key", ACME_KEY), ("Idempotency-Key", "legacy-1")];
    let (status, reply) = post_with_headers(&app, &headers, replay.as_bytes()).await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("duplicate")), "{reply}");
    let other = r#"{"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "properties": {"plan": "free"}}"#;
    let (status, _) = post_with_headers(&app, &headers, other.as_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(stored(&app).await, 1);
}

/// Sends raw bytes on a new connection and returns everything the server answers before it
/// closes the connection (or goes quiet for `wait`).
async fn raw_exchange(app: &TestApp, request: Vec<u8>, wait: Duration) -> String {
    let addr = app.addr;
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(wait)).expect("timeout");
        let _ = stream.write_all(&request);
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
    .expect("raw client")
}

/// The status code and the problem body of a raw HTTP/1.1 response.
fn problem_of(response: &str) -> (u16, Value) {
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/problem+json"),
        "not a problem response: {response:?}"
    );
    let problem: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response:?}"));
    assert_eq!(problem["status"], status, "{response}");
    (status, problem)
}

#[tokio::test]
async fn http_1_1_needs_exactly_one_host() {
    let app = TestApp::spawn_unreachable().await;
    let wait = Duration::from_secs(5);
    for head in ["GET /health HTTP/1.1\r\n\r\n", "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"] {
        let response = raw_exchange(&app, head.as_bytes().to_vec(), wait).await;
        let (status, problem) = problem_of(&response);
        assert_eq!(status, 400, "{head:?} -> {response}");
        assert_eq!(error_fields(&problem), ["Host"]);
    }
    let response =
        raw_exchange(&app, b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec(), wait).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // HTTP/1.0 has no Host requirement.
    let response = raw_exchange(&app, b"GET /health HTTP/1.0\r\n\r\n".to_vec(), wait).await;
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
}

#[tokio::test]
async fn errors_of_the_http_layer_are_problems_too() {
    let app = TestApp::spawn_unreachable().await;
    let wait = Duration::from_secs(5);
    // Too many headers; one too large is answered the same way, but the server may reset the
    // connection before that answer is read (it stops reading), so `validation` tests it.
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (format!("GET /health HTTP/1.1\r\nHost: t\r\n{many_headers}\r\n").into_bytes(), 431),
        (b"GET /he alth HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"\x01\x02\x03 / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}{}{}".to_vec(), 400),
    ];
    for (request, expected) in cases {
        let response = raw_exchange(&app, request.clone(), wait).await;
        let (status, problem) = problem_of(&response);
        assert_eq!(status, expected, "{:?} -> {response}", String::from_utf8_lossy(&request[..request.len().min(60)]));
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
    }
    // A pipelined good request before the bad one keeps its own answer.
    let pipelined = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /he alth HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
    let response = raw_exchange(&app, pipelined, wait).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let second = &response[response.find("HTTP/1.1 400").expect("the second answer")..];
    assert_eq!(problem_of(second).0, 400);
    // The server is still fine.
    assert_eq!(send(app.client.get(app.url("/health"))).await.0, 200);
}

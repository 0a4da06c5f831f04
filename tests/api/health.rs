//! Liveness and readiness.

use crate::harness::{TestApp, send};

#[tokio::test]
async fn health_answers_without_a_key_or_a_database() {
    let app = TestApp::spawn_unreachable().await;
    let (status, body) = send(app.client.get(app.url("/health"))).await;
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
}

#[tokio::test]
async fn ready_when_the_database_answers() {
    let app = TestApp::spawn().await;
    let (status, body) = send(app.client.get(app.url("/ready"))).await;
    assert_eq!((status, body), (200, serde_json::json!({"status": "ready"})));
}

#[tokio::test]
async fn not_ready_when_the_database_is_unreachable() {
    let app = TestApp::spawn_unreachable().await;
    let response = app.client.get(app.url("/ready")).send().await.expect("response");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = response.text().await.expect("body");
    assert!(body.contains("temporarily unavailable"), "{body}");
    for leak in ["127.0.0.1", "refused", "connection", "postgres"] {
        assert!(!body.to_lowercase().contains(leak), "driver detail {leak:?} leaked: {body}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let app = TestApp::spawn_unreachable().await;
    let (status, body) = send(app.client.get(app.url("/nope"))).await;
    assert_eq!((status, body["title"].as_str()), (404, Some("Not Found")));
    for (method, path, allow) in [
        ("GET", "/events", "POST"),
        ("PUT", "/events/batch", "POST"),
        ("DELETE", "/metrics", "GET, HEAD"),
        ("POST", "/health", "GET, HEAD"),
        ("TRACE", "/ready", "GET, HEAD"),
    ] {
        let request = app.client.request(method.parse().expect("method"), app.url(path));
        let response = request.send().await.expect("response");
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
    }
    let head = app.client.head(app.url("/health")).send().await.expect("response");
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.expect("body").is_empty(), "HEAD has no body");
}

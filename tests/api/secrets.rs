//! Tenant keys from Secret Manager: the real binary, its real Google client and credential
//! chain (Application Default Credentials through the metadata server), against wiremock
//! standing in for both Secret Manager and the metadata server.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::Process;

const SECRET: &str = "projects/test-project/secrets/tenant-keys/versions/latest";
const ACCESS_PATH: &str = "/v1/projects/test-project/secrets/tenant-keys/versions/latest:access";

/// A metadata server that hands out a token, and a Secret Manager that wants it.
async fn google() -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server).await;
    server
}

async fn mount_token(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/computeMetadata/v1/instance/service-accounts/default/token"))
        .and(header("metadata-flavor", "Google"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "test-access-token", "expires_in": 3600, "token_type": "Bearer"
        })))
        .mount(server)
        .await;
}

async fn serve_secret(server: &MockServer, document: &str) {
    serve_secret_response(
        server,
        ResponseTemplate::new(200).set_body_json(json!({
            "name": "projects/test-project/secrets/tenant-keys/versions/1",
            "payload": {"data": base64::engine::general_purpose::STANDARD.encode(document)},
        })),
    )
    .await;
}

async fn serve_secret_response(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(ACCESS_PATH))
        .and(header("authorization", "Bearer test-access-token"))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Replaces whatever the secret answered with `response` (the token mock stays).
async fn change_secret(server: &MockServer, response: ResponseTemplate) {
    server.reset().await;
    mount_token(server).await;
    serve_secret_response(server, response).await;
}

async fn start_metrics(server: &MockServer) -> Result<Process, (Option<i32>, String)> {
    let endpoint = server.uri();
    let metadata_host = endpoint.trim_start_matches("http://").to_owned();
    Process::start(
        "metrics",
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/unreachable"),
            ("TENANT_KEYS_SECRET", SECRET),
            ("TENANT_KEYS_REFRESH_SECS", "1"),
            ("SECRET_MANAGER_ENDPOINT", &endpoint),
            ("GCE_METADATA_HOST", &metadata_host),
            ("LOG_FORMAT", "json"),
            ("GOOGLE_CLOUD_PROJECT", "test-project"),
        ],
    )
    .await
}

/// 400 (the query is incomplete) proves the key was accepted; 401 that it was not.
async fn key_status(process: &Process, key: &str) -> u16 {
    let response = reqwest::Client::new()
        .get(format!("{}/metrics", process.base))
        .header("X-API-Key", key)
        .send()
        .await
        .expect("response");
    response.status().as_u16()
}

async fn eventually(process: &Process, key: &str, expected: u16) {
    let started = Instant::now();
    while key_status(process, key).await != expected {
        assert!(started.elapsed() < Duration::from_secs(10), "{key} never answered {expected}:\n{}", process.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keys_load_at_start_and_rotate_without_a_restart() {
    let server = google().await;
    serve_secret(&server, r#"{"acme": ["first-key-123"]}"#).await;
    let process = start_metrics(&server).await.expect("starts with the secret's keys");
    assert_eq!(key_status(&process, "first-key-123").await, 400);
    assert_eq!(key_status(&process, "second-key-123").await, 401);

    // Rotation: a new version adds a key and retires the old one.
    let rotated = r#"{"acme": ["second-key-123"], "globex": ["globex-key-123"]}"#;
    change_secret(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({
            "name": "projects/test-project/secrets/tenant-keys/versions/2",
            "payload": {"data": base64::engine::general_purpose::STANDARD.encode(rotated)},
        })),
    )
    .await;
    eventually(&process, "second-key-123", 400).await;
    assert_eq!(key_status(&process, "globex-key-123").await, 400);
    assert_eq!(key_status(&process, "first-key-123").await, 401);
}

#[tokio::test]
async fn a_failed_or_malformed_refresh_keeps_the_last_good_keys() {
    let server = google().await;
    serve_secret(&server, r#"{"acme": ["steady-key-123"]}"#).await;
    let process = start_metrics(&server).await.expect("starts");
    for broken in [
        ResponseTemplate::new(503)
            .set_body_json(json!({"error": {"code": 503, "message": "unavailable", "status": "UNAVAILABLE"}})),
        ResponseTemplate::new(200)
            .set_body_json(json!({"payload": {"data": base64::engine::general_purpose::STANDARD.encode("{not json")}})),
    ] {
        change_secret(&server, broken).await;
        // Several refresh periods pass; the keys stay.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(key_status(&process, "steady-key-123").await, 400, "{}", process.output());
        }
    }
    let output = process.output();
    let warnings: Vec<serde_json::Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["severity"] == "WARNING" && l["message"] == "tenant keys refresh failed; keeping the current keys"
        })
        .collect();
    assert!(warnings.len() >= 2, "refresh failures are logged as warnings:\n{output}");
    assert!(!output.contains("steady-key-123"), "a key reached the log:\n{output}");
}

#[tokio::test]
async fn start_up_stops_on_permission_denied_or_a_bad_document() {
    let server = google().await;
    serve_secret_response(
        &server,
        ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": 403, "status": "PERMISSION_DENIED",
            "message": "Permission 'secretmanager.versions.access' denied for resource"
        }})),
    )
    .await;
    let (code, output) = start_metrics(&server).await.err().expect("refuses to start");
    assert_eq!(code, Some(2), "{output}");
    let last = output.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: TENANT_KEYS_SECRET could not be read:"), "{output}");
    assert!(last.contains("denied"), "{output}");

    let server = google().await;
    serve_secret(&server, r#"{"acme": ["shared-secret-1"], "globex": ["shared-secret-1"]}"#).await;
    let (code, output) = start_metrics(&server).await.err().expect("refuses to start");
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("error: TENANT_KEYS_SECRET is invalid"), "{output}");
    assert!(!output.contains("shared-secret-1"), "{output}");
}

#[tokio::test]
async fn both_key_variables_at_once_is_an_error() {
    let server = google().await;
    let endpoint = server.uri();
    let (code, output) = Process::start(
        "events",
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
            ("TENANT_KEYS", r#"{"a": ["key-key-key"]}"#),
            ("TENANT_KEYS_SECRET", SECRET),
            ("SECRET_MANAGER_ENDPOINT", &endpoint),
        ],
    )
    .await
    .err()
    .expect("refuses to start");
    assert_eq!(
        (code, output.trim()),
        (Some(2), "error: TENANT_KEYS and TENANT_KEYS_SECRET are both set: set only one")
    );
}

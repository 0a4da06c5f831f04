//! Authentication: every endpoint but health and readiness needs a key of a known tenant.

use crate::harness::{ACME_KEY, ACME_ROTATED_KEY, GLOBEX_KEY, TestApp, event, send};

const WINDOW: [(&str, &str); 3] =
    [("event_name", "signup"), ("from", "2026-01-01T00:00:00Z"), ("to", "2026-01-02T00:00:00Z")];

#[tokio::test]
async fn missing_or_unknown_keys_are_refused_before_anything_is_stored() {
    let app = TestApp::spawn().await;
    let body = event("signup", "2026-01-01T10:00:00Z");
    for key in [None, Some("not-a-key-at-all"), Some(""), Some("acme-key-000"), Some("ACME-KEY-0001")] {
        let (status, problem) = app.post_event(key, None, &body).await;
        assert_eq!(status, 401, "key {key:?}: {problem}");
        assert_eq!(problem["title"], "Unauthorized");
    }
    let response = app.client.post(app.url("/events")).json(&body).send().await.expect("response");
    assert_eq!(response.headers()["www-authenticate"], r#"ApiKey header="X-API-Key""#);
    let (status, _) = send(app.client.get(app.url("/metrics")).query(&WINDOW)).await;
    assert_eq!(status, 401);
    let (status, _) =
        send(app.client.get(app.url("/metrics")).query(&WINDOW).header("X-API-Key", "nope-nope-nope")).await;
    assert_eq!(status, 401);
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 0);
}

#[tokio::test]
async fn unauthenticated_requests_learn_nothing_about_the_body() {
    let app = TestApp::spawn().await;
    // A bad body with a bad key is a 401, not a 400: the body is not read.
    let response = app.client.post(app.url("/events")).body("{not json").send().await.expect("response");
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn every_key_of_every_tenant_works() {
    let app = TestApp::spawn().await;
    for key in [ACME_KEY, ACME_ROTATED_KEY, GLOBEX_KEY] {
        let (status, body) = app.post_event(Some(key), None, &event("signup", "2026-01-01T10:00:00Z")).await;
        assert_eq!(status, 201, "{key}: {body}");
    }
    let (from, to) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    // Both acme keys name the same tenant.
    assert_eq!(app.count(ACME_KEY, "signup", from, to).await, 2);
    assert_eq!(app.count(ACME_ROTATED_KEY, "signup", from, to).await, 2);
    assert_eq!(app.count(GLOBEX_KEY, "signup", from, to).await, 1);
}

#[tokio::test]
async fn each_tenant_is_rate_limited_on_its_own() {
    let db = crate::harness::TestDatabase::create().await;
    let url = db.url.clone();
    let app = TestApp::spawn_with(&url, &[("RATE_LIMIT_PER_SEC", "1"), ("RATE_LIMIT_BURST", "3")], Some(db)).await;
    let query = [("event_name", "signup"), ("from", "2026-01-01T00:00:00Z"), ("to", "2026-01-02T00:00:00Z")];
    for _ in 0..3 {
        assert_eq!(app.metrics(ACME_KEY, &query).await.0, 200);
    }
    let response =
        app.client.get(app.url("/metrics")).query(&query).header("X-API-Key", ACME_KEY).send().await.expect("response");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["ratelimit-limit"], "3");
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    assert_eq!(response.headers()["ratelimit-reset"], "1");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    // The rotated key is the same tenant, so it shares the bucket; another tenant does not.
    assert_eq!(app.metrics(ACME_ROTATED_KEY, &query).await.0, 429);
    assert_eq!(app.metrics(GLOBEX_KEY, &query).await.0, 200);
    // Health is never limited, and the bucket refills.
    assert_eq!(send(app.client.get(app.url("/health"))).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.metrics(ACME_KEY, &query).await.0, 200);
}

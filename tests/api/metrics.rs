//! `GET /metrics`: window edges and buckets.

use serde_json::json;

use crate::harness::{ACME_KEY, TestApp, event};

async fn store(app: &TestApp, name: &str, timestamps: &[&str]) {
    for ts in timestamps {
        let (status, body) = app.post_event(Some(ACME_KEY), None, &event(name, ts)).await;
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test]
async fn the_window_includes_from_and_excludes_to_to_the_microsecond() {
    let app = TestApp::spawn().await;
    store(&app, "tick", &["2026-01-01T10:00:00.123456Z", "2026-01-01T10:00:00.123457Z"]).await;
    let count = |from: &'static str, to: &'static str| {
        let app = &app;
        async move { app.count(ACME_KEY, "tick", from, to).await }
    };
    assert_eq!(count("2026-01-01T10:00:00.123456Z", "2026-01-01T10:00:00.123457Z").await, 1);
    assert_eq!(count("2026-01-01T10:00:00.123456Z", "2026-01-01T10:00:00.123458Z").await, 2);
    assert_eq!(count("2026-01-01T10:00:00.123457Z", "2026-01-01T11:00:00Z").await, 1);
    assert_eq!(count("2026-01-01T09:00:00Z", "2026-01-01T10:00:00.123456Z").await, 0);
    // A bound between two microseconds selects exactly what the exact bound would.
    assert_eq!(count("2026-01-01T09:00:00Z", "2026-01-01T10:00:00.1234561Z").await, 1);
    assert_eq!(count("2026-01-01T10:00:00.1234561Z", "2026-01-01T11:00:00Z").await, 1);
    // Offsets in the query are honoured: 11:00+01:00 is 10:00Z.
    assert_eq!(count("2026-01-01T11:00:00+01:00", "2026-01-01T12:00:00+01:00").await, 2);
    // Other names are not counted.
    assert_eq!(app.count(ACME_KEY, "tock", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 0);
}

#[tokio::test]
async fn the_response_echoes_the_window_in_utc() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .metrics(
            ACME_KEY,
            &[("event_name", "tick"), ("from", "2026-01-01T01:00:00+01:00"), ("to", "2026-01-01T00:30:00.5Z")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"event_name": "tick", "from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:30:00.500Z", "count": 0})
    );
}

#[tokio::test]
async fn buckets_are_zero_filled_aligned_and_clipped_to_the_window() {
    let app = TestApp::spawn().await;
    store(
        &app,
        "tick",
        &[
            "2026-01-01T00:10:00Z", // before the window, in its first bucket
            "2026-01-01T00:45:00Z",
            "2026-01-01T00:59:59.999999Z",
            "2026-01-01T02:00:00Z",
            "2026-01-01T03:15:00Z",
            "2026-01-01T03:30:00Z", // at `to`: excluded
        ],
    )
    .await;
    let (status, body) = app
        .metrics(
            ACME_KEY,
            &[
                ("event_name", "tick"),
                ("from", "2026-01-01T00:30:00Z"),
                ("to", "2026-01-01T03:30:00Z"),
                ("interval", "hour"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["buckets"],
        json!([
            {"start": "2026-01-01T00:00:00Z", "count": 2},
            {"start": "2026-01-01T01:00:00Z", "count": 0},
            {"start": "2026-01-01T02:00:00Z", "count": 1},
            {"start": "2026-01-01T03:00:00Z", "count": 1},
        ])
    );
    assert_eq!(body["count"], 4);
    assert_eq!(app.count(ACME_KEY, "tick", "2026-01-01T00:30:00Z", "2026-01-01T03:30:00Z").await, 4);
}

#[tokio::test]
async fn minute_and_day_buckets() {
    let app = TestApp::spawn().await;
    store(&app, "tick", &["2026-01-01T23:59:30Z", "2026-01-02T00:00:00Z", "2026-01-02T00:01:59Z"]).await;
    let query = |interval| {
        [
            ("event_name", "tick"),
            ("from", "2026-01-01T23:59:00Z"),
            ("to", "2026-01-02T00:02:00Z"),
            ("interval", interval),
        ]
    };
    let (_, minutes) = app.metrics(ACME_KEY, &query("minute")).await;
    let counts: Vec<i64> =
        minutes["buckets"].as_array().expect("buckets").iter().map(|b| b["count"].as_i64().expect("n")).collect();
    assert_eq!(counts, [1, 1, 1]);
    let (_, days) = app.metrics(ACME_KEY, &query("day")).await;
    assert_eq!(
        days["buckets"],
        json!([{"start": "2026-01-01T00:00:00Z", "count": 1}, {"start": "2026-01-02T00:00:00Z", "count": 2}])
    );
}

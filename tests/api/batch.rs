//! `POST /events/batch`: per-item results, in order; a bad item never sinks the good ones.

use serde_json::{Value, json};

use crate::harness::{ACME_KEY, GLOBEX_KEY, TestApp, error_fields, event, send};

async fn post_batch(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    send(app.client.post(app.url("/events/batch")).header("X-API-Key", key).json(body)).await
}

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test]
async fn each_item_gets_its_own_result_in_order() {
    let app = TestApp::spawn().await;
    let (status, _) = app.post_event(Some(ACME_KEY), Some("earlier"), &event("signup", "2026-01-01T09:00:00Z")).await;
    assert_eq!(status, 201);
    let batch = json!({"events": [
        {"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "event_id": "b-1"},
        {"event_name": "", "timestamp": "2026-01-01T10:00:00Z", "event_id": "b-bad"},
        {"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "event_id": "b-1"},
        {"event_name": "signup", "timestamp": "2026-01-01T10:05:00Z", "event_id": "b-1"},
        {"event_name": "signup", "timestamp": "2026-01-01T09:00:00Z", "event_id": "earlier"},
        {"event_name": "signup", "timestamp": "2026-01-01T11:00:00Z"},
        "not an object",
        {"event_name": "signup", "timestamp": "2026-01-01T11:30:00Z"},
    ]});
    let (status, body) = post_batch(&app, ACME_KEY, &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        statuses(&body),
        ["created", "rejected", "duplicate", "rejected", "duplicate", "created", "rejected", "created"]
    );
    let results = body["results"].as_array().expect("results");
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["index"], i);
    }
    assert_eq!(results[0]["event_id"], "b-1");
    assert_eq!(results[1]["event_id"], Value::Null);
    assert_eq!(error_fields(&results[1]["error"]), ["event_name"]);
    assert_eq!(results[3]["error"]["type"], "/problems/idempotency-key-reused");
    assert_eq!(error_fields(&results[6]["error"]), ["body"]);
    let generated: Vec<&str> = [5, 7].iter().map(|&i| results[i]["event_id"].as_str().expect("id")).collect();
    assert_ne!(generated[0], generated[1]);
    for id in generated {
        assert_eq!(uuid::Uuid::parse_str(id).expect("uuid").get_version_num(), 7);
    }
    // earlier + b-1 + two generated: the rejected and duplicate items stored nothing.
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 4);
    let stored = data::find_event(&app.pool, "acme", "b-1").await.expect("query").expect("stored");
    assert_eq!(stored.occurred_at.to_rfc3339(), "2026-01-01T10:00:00+00:00");
}

#[tokio::test]
async fn a_batch_belongs_to_the_caller_s_tenant() {
    let app = TestApp::spawn().await;
    let batch = json!({"events": [{"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z", "event_id": "x"}]});
    assert_eq!(statuses(&post_batch(&app, ACME_KEY, &batch).await.1), ["created"]);
    assert_eq!(statuses(&post_batch(&app, GLOBEX_KEY, &batch).await.1), ["created"]);
    let (status, _) = send(app.client.post(app.url("/events/batch")).json(&batch)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_bad_envelope_is_a_400() {
    let app = TestApp::spawn().await;
    let item = json!({"event_name": "a", "timestamp": "2026-01-01T10:00:00Z"});
    let too_many: Vec<Value> = (0..1001).map(|_| item.clone()).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!([item]), "body"),
        (json!({}), "events"),
        (json!({"events": item}), "events"),
        (json!({"events": []}), "events"),
        (json!({"events": too_many}), "events"),
        (json!({"events": [item], "extra": 1}), "extra"),
    ];
    for (body, field) in cases {
        let (status, problem) = post_batch(&app, ACME_KEY, &body).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(error_fields(&problem), [field], "{problem}");
    }
    // Every broken envelope rule is named, each once.
    let (status, problem) = post_batch(&app, ACME_KEY, &json!({"extra": 1, "": 2, "x": 3})).await;
    assert_eq!(
        (status, error_fields(&problem)),
        (400, vec!["body".into(), "extra".into(), "x".into(), "events".into()])
    );
    let request = app
        .client
        .post(app.url("/events/batch"))
        .header("X-API-Key", ACME_KEY)
        .header("Idempotency-Key", "whole-batch")
        .json(&json!({"events": [item]}));
    let (status, problem) = send(request).await;
    assert_eq!((status, error_fields(&problem)), (400, vec!["Idempotency-Key".to_owned()]));
    let huge = json!({"events": [{"event_name": "a", "timestamp": "2026-01-01T10:00:00Z", "properties": {"p": "x".repeat(5 << 20)}}]});
    assert_eq!(post_batch(&app, ACME_KEY, &huge).await.0, 413);
    assert_eq!(app.count(ACME_KEY, "a", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 0);
}

#[tokio::test]
async fn a_full_batch_of_1000_is_stored() {
    let app = TestApp::spawn().await;
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({"event_name": "bulk", "timestamp": format!("2026-01-01T10:{:02}:{:02}Z", i / 60 % 60, i % 60), "event_id": format!("bulk-{i}")}))
        .collect();
    let (status, body) = post_batch(&app, ACME_KEY, &json!({"events": items})).await;
    assert_eq!(status, 200);
    assert!(statuses(&body).iter().all(|s| s == "created"));
    assert_eq!(app.count(ACME_KEY, "bulk", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 1000);
}

#[tokio::test]
async fn concurrent_overlapping_batches_store_each_event_once() {
    let app = TestApp::spawn().await;
    // Four batches over ids 0..250, each overlapping the next by half, in opposite orders:
    // concurrent inserts of the same keys in different orders must not deadlock.
    let batches: Vec<Value> = (0..4)
        .map(|b| {
            let ids: Vec<i32> =
                if b % 2 == 0 { (b * 50..b * 50 + 100).collect() } else { (b * 50..b * 50 + 100).rev().collect() };
            let items: Vec<Value> = ids
                .into_iter()
                .map(|i| json!({"event_name": "overlap", "timestamp": "2026-01-01T10:00:00Z", "event_id": format!("o-{i}")}))
                .collect();
            json!({"events": items})
        })
        .collect();
    let replies = futures_util::future::join_all(batches.iter().map(|b| post_batch(&app, ACME_KEY, b))).await;
    let mut created = 0;
    for (status, body) in &replies {
        assert_eq!(*status, 200, "{body}");
        let s = statuses(body);
        assert!(s.iter().all(|s| s == "created" || s == "duplicate"), "{s:?}");
        created += s.iter().filter(|s| *s == "created").count();
    }
    assert_eq!(created, 250, "ids 0..250 are each created exactly once");
    assert_eq!(app.count(ACME_KEY, "overlap", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, 250);
}

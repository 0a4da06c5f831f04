//! What reaches the logs: one line per request with its tenant and trace, in Cloud Logging's
//! shape, and never an API key, at any level, whatever the outcome.

use std::io::Write;
use std::sync::{Arc, Mutex};

use platform::telemetry::CloudLogging;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

use crate::harness::{ACME_KEY, TestApp, event, send};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

#[tokio::test]
async fn no_key_reaches_any_log_line_and_each_request_logs_once() {
    let json_lines = Captured::default();
    let text_lines = Captured::default();
    let (json_writer, text_writer) = (json_lines.clone(), text_lines.clone());
    // Everything, from every crate, at every level, in both formats.
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("trace"))
        .with(CloudLogging::new(Some("test-project".into()), move || json_writer.clone()))
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || text_writer.clone()));
    crate::harness::init_test_logging();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::spawn().await;
    let wrong_key = "wrong-key-that-must-not-be-logged";
    let (status, _) = app.post_event(Some(wrong_key), None, &event("signup", "2026-01-01T10:00:00Z")).await;
    assert_eq!(status, 401);
    let request = app
        .client
        .post(app.url("/events"))
        .header("X-API-Key", ACME_KEY)
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .json(&event("signup", "2026-01-01T10:00:00Z"));
    assert_eq!(send(request).await.0, 201);
    let (status, _) = app.post_event(Some(ACME_KEY), None, &json!({"event_name": ""})).await;
    assert_eq!(status, 400);
    app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await;

    let (json_text, plain_text) = (json_lines.text(), text_lines.text());
    for key in [wrong_key, ACME_KEY, "acme-key-0002", "globex-key-0001"] {
        assert!(!json_text.contains(key), "{key} in the JSON logs");
        assert!(!plain_text.contains(key), "{key} in the text logs");
    }

    let requests: Vec<Value> = json_text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every line is JSON"))
        .filter(|l| l.get("httpRequest").is_some())
        .collect();
    assert_eq!(requests.len(), 4, "one line per request: {requests:#?}");
    let traced = requests.iter().find(|l| l["httpRequest"]["status"] == 201).expect("the 201");
    assert_eq!(traced["severity"], "INFO");
    assert_eq!(traced["tenant_id"], "acme");
    assert_eq!(traced["httpRequest"]["requestMethod"], "POST");
    assert_eq!(traced["httpRequest"]["requestUrl"], "/events");
    assert!(traced["httpRequest"]["latency"].as_str().is_some_and(|l| l.ends_with('s')));
    assert_eq!(traced["logging.googleapis.com/trace"], "projects/test-project/traces/4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(traced["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
    let refused = requests.iter().find(|l| l["httpRequest"]["status"] == 401).expect("the 401");
    assert!(refused.get("tenant_id").is_none_or(Value::is_null), "no tenant on a refused request: {refused}");
}

//! Logging: `tracing` events with fields. In a terminal, human-readable lines. On Cloud Run
//! (`K_SERVICE` set) or with `LOG_FORMAT=json`, one JSON object per line in the shape Cloud
//! Logging reads: `severity`, `message`, the fields of the event and of the spans around it,
//! `httpRequest` built from `http_request.*` fields, and `logging.googleapis.com/trace` and
//! `spanId` from a request's trace header, so a request's lines group under its trace.
//!
//! The JSON layer is ours rather than tracing-stackdriver's: that crate can only emit trace
//! correlation through an OpenTelemetry pipeline (its `opentelemetry` feature pins an old
//! release) and it camel-cases every field name, where ours stay `snake_case`.

use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use warp::http::HeaderMap;

use crate::Config;
use crate::config::LogFormat;

/// Installs the global subscriber; call once, first thing in `main`. The level comes from
/// `RUST_LOG` (default `info`).
pub fn init(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(crate::traces::layer(&config.tracing));
    match config.log_format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(std::io::stdout().is_terminal()))
            .init(),
        LogFormat::Json => {
            registry.with(CloudLogging::new(config.google_cloud_project.clone(), std::io::stdout)).init()
        }
    }
}

/// A request's place in a distributed trace, from `traceparent` or `X-Cloud-Trace-Context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    /// Reads W3C `traceparent` (preferred) or Google's `X-Cloud-Trace-Context`. Malformed
    /// headers are ignored: they come from clients and must not reach the logs as they are.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        header("traceparent")
            .and_then(Self::from_traceparent)
            .or_else(|| header("x-cloud-trace-context").and_then(Self::from_cloud_trace))
    }

    /// `version-traceid-spanid-flags`, such as `00-4bf9…4736-00f0…02b7-01`.
    fn from_traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = is_hex(version, 2)
            && version != "ff"
            && is_hex(trace_id, 32)
            && is_hex(span_id, 16)
            && is_hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0');
        let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
        valid.then(|| Self {
            trace_id: trace_id.to_ascii_lowercase(),
            span_id: Some(span_id.to_ascii_lowercase()),
            sampled,
        })
    }

    /// `TRACE_ID/SPAN_ID;o=OPTIONS`, the span id in decimal.
    fn from_cloud_trace(value: &str) -> Option<Self> {
        let (ids, options) = value.trim().split_once(';').map_or((value.trim(), ""), |(i, o)| (i, o));
        let (trace_id, span_id) = ids.split_once('/').map_or((ids, None), |(t, s)| (t, Some(s)));
        // All zeros is no trace id (W3C says so of traceparent's; found by fuzzing here).
        if !is_hex(trace_id, 32) || trace_id.bytes().all(|b| b == b'0') {
            return None;
        }
        let span_id = match span_id {
            Some(decimal) => Some(format!("{:016x}", decimal.parse::<u64>().ok()?)),
            None => None,
        };
        Some(Self { trace_id: trace_id.to_ascii_lowercase(), span_id, sampled: options.trim() == "o=1" })
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The Cloud Logging JSON layer, writing one line per event to `W`.
#[derive(Debug)]
pub struct CloudLogging<W> {
    project: Option<String>,
    make_writer: W,
}

impl<W> CloudLogging<W> {
    /// Lines go to `make_writer`; trace ids are qualified with `project` when it is known.
    pub fn new(project: Option<String>, make_writer: W) -> Self {
        Self { project, make_writer }
    }
}

/// The fields recorded on a span so far.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    /// Keeps a field, except the `otel.*` ones that name and classify spans for OpenTelemetry.
    fn put(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with("otel.") {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl<S, W> tracing_subscriber::Layer<S> for CloudLogging<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut JsonVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        // Outer spans first, so inner spans and then the event itself win on a name clash.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));
        let mut line = serde_json::to_vec(&self.entry(event.metadata(), fields)).unwrap_or_default();
        line.push(b'\n');
        let _ = self.make_writer.make_writer().write_all(&line);
    }
}

impl<W> CloudLogging<W> {
    fn entry(&self, meta: &tracing::Metadata<'_>, mut fields: Map<String, Value>) -> Map<String, Value> {
        let mut entry = Map::new();
        let severity = match *meta.level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        entry.insert("severity".into(), severity.into());
        entry.insert("time".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
        entry.insert("message".into(), fields.remove("message").unwrap_or_default());
        entry.insert("target".into(), meta.target().into());
        // Without a project the ids stay plain fields (`trace_id`, `span_id`).
        if let Some(project) = &self.project
            && let Some(Value::String(trace_id)) = fields.remove("trace_id")
        {
            entry.insert("logging.googleapis.com/trace".into(), format!("projects/{project}/traces/{trace_id}").into());
            if let Some(span_id) = fields.remove("span_id") {
                entry.insert("logging.googleapis.com/spanId".into(), span_id);
            }
            if let Some(sampled) = fields.remove("trace_sampled") {
                entry.insert("logging.googleapis.com/trace_sampled".into(), sampled);
            }
        }
        let mut http_request = Map::new();
        for (key, value) in fields {
            match key.strip_prefix("http_request.") {
                Some(name) => {
                    http_request.insert(lower_camel_case(name), value);
                }
                None => {
                    entry.insert(key, value);
                }
            }
        }
        if !http_request.is_empty() {
            entry.insert("httpRequest".into(), Value::Object(http_request));
        }
        entry
    }
}

/// `request_method` to `requestMethod`, the spelling of Cloud Logging's `HttpRequest`.
fn lower_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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

    fn lines_of(captured: &Captured) -> Vec<Value> {
        let bytes = captured.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
    }

    #[test]
    fn events_carry_severity_span_fields_trace_and_http_request() {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = CloudLogging::new(Some("my-project".into()), move || writer.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!(
                "request",
                tenant_id = tracing::field::Empty,
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                span_id = "00f067aa0ba902b7",
                trace_sampled = true
            );
            let _entered = span.enter();
            span.record("tenant_id", "acme");
            tracing::warn!(
                http_request.request_method = "POST",
                http_request.status = 201,
                latency_ms = 1.5,
                "request completed"
            );
        });
        let lines = lines_of(&captured);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["severity"], "WARNING");
        assert_eq!(line["message"], "request completed");
        assert_eq!(line["tenant_id"], "acme");
        assert_eq!(line["latency_ms"], 1.5);
        assert_eq!(line["logging.googleapis.com/trace"], "projects/my-project/traces/4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
        assert_eq!(line["logging.googleapis.com/trace_sampled"], true);
        assert_eq!(line["httpRequest"], serde_json::json!({"requestMethod": "POST", "status": 201}));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (warp::http::HeaderName::from_static(k), v.parse().expect("header"))).collect()
    }

    #[test]
    fn trace_context_from_either_header() {
        let w3c = headers(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]);
        assert_eq!(
            TraceContext::from_headers(&w3c),
            Some(TraceContext {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                span_id: Some("00f067aa0ba902b7".into()),
                sampled: true
            })
        );
        let google = headers(&[("x-cloud-trace-context", "105445AA7843BC8BF206B12000100000/1;o=1")]);
        assert_eq!(
            TraceContext::from_headers(&google),
            Some(TraceContext {
                trace_id: "105445aa7843bc8bf206b12000100000".into(),
                span_id: Some("0000000000000001".into()),
                sampled: true
            })
        );
        let unsampled = headers(&[("x-cloud-trace-context", "105445aa7843bc8bf206b12000100000")]);
        assert_eq!(TraceContext::from_headers(&unsampled).map(|t| (t.span_id, t.sampled)), Some((None, false)));
    }

    #[test]
    fn malformed_trace_headers_are_ignored() {
        for (name, value) in [
            ("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e473\"-00f067aa0ba902b7-01"),
            ("x-cloud-trace-context", "not-a-trace/1;o=1"),
            ("x-cloud-trace-context", "105445aa7843bc8bf206b12000100000/abc"),
            ("x-cloud-trace-context", "00000000000000000000000000000000/1;o=1"),
        ] {
            assert_eq!(TraceContext::from_headers(&headers(&[(name, value)])), None, "{value}");
        }
    }
}

//! OpenTelemetry traces: `tracing` spans exported with OTLP over HTTP (protobuf), configured by
//! OpenTelemetry's own variables (`settings::Tracing`), off unless an endpoint is set.
//!
//! - The request span continues the caller's trace (`traceparent`, else
//!   `X-Cloud-Trace-Context`) and its sampled flag; without one, the sampler decides (by ratio,
//!   say). Log lines carry the same trace and span ids, so Cloud Logging groups them with it.
//! - The Pub/Sub publisher puts the W3C `traceparent` of its span into each message's
//!   attributes; the worker continues it, so one trace runs events → Pub/Sub → worker → insert.
//! - Export runs on the SDK's own thread, in batches, from a bounded queue: when the collector
//!   is slow or down, spans are dropped, and no request waits for it. On Google's endpoint
//!   (`*.googleapis.com`, Cloud Trace) each batch carries an access token from Application
//!   Default Credentials.
//! - Only this service's own spans are exported (not those of the libraries it uses), and not
//!   its log lines: those carry the trace and span ids already, so Cloud Logging shows them with
//!   the trace, and copying each into its span as a span event made a request export about
//!   900 bytes instead of 645. A span records no request body or header, so no key can reach a span.

use std::sync::OnceLock;

use bytes::Bytes;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use settings::{TraceSampler, Tracing};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, Targets, filter_fn};
use tracing_subscriber::registry::LookupSpan;

use crate::telemetry::TraceContext;

/// The provider, kept to flush what is queued when the process stops.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The crates whose spans are exported: the service's own.
const OWN_CRATES: [&str; 7] = ["platform", "data", "events", "metrics", "health", "worker", "local"];

/// The layer that turns spans into OpenTelemetry spans, when tracing is configured. Call from
/// within the tokio runtime (the exporter sends through it).
pub fn layer<S>(config: &Tracing) -> Option<impl Layer<S> + use<S>>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let endpoint = config.endpoint.as_deref()?;
    let client = ExportClient::new(endpoint, config.export_timeout)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(endpoint)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(config.export_timeout)
        .with_headers(config.headers.iter().cloned().collect())
        .build()
        .inspect_err(|e| eprintln!("warning: tracing is off: cannot build the OTLP exporter: {e}"))
        .ok()?;
    let batches = BatchConfigBuilder::default()
        .with_max_queue_size(config.max_queue_size)
        .with_max_export_batch_size(config.max_export_batch_size.min(config.max_queue_size))
        .with_scheduled_delay(config.schedule_delay)
        .build();
    let service = config.service_name.clone().unwrap_or_else(binary_name);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batches).build())
        .with_sampler(sampler(config.sampler))
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("event-analytics");
    let _ = PROVIDER.set(provider);
    let own = OWN_CRATES.iter().fold(Targets::new(), |targets, name| targets.with_target(*name, tracing::Level::TRACE));
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(own.and(filter_fn(|metadata| metadata.is_span()))),
    )
}

/// How long a stopping process waits for its last spans to be sent (Cloud Run allows 10 s
/// after SIGTERM, most of it for draining requests).
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends what is still queued, for at most a second. Call once, as the process stops.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
    }
}

fn sampler(configured: TraceSampler) -> Sampler {
    match configured {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
        TraceSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        TraceSampler::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TraceSampler::ParentBasedTraceIdRatio(ratio) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

fn binary_name() -> String {
    std::env::args()
        .next()
        .and_then(|path| std::path::Path::new(&path).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "event-analytics".into())
}

/// Makes `span` continue the caller's trace, if it sent one, and records the trace and span
/// ids the log lines carry: the span's own when spans are exported, else the caller's.
pub fn continue_trace(span: &tracing::Span, caller: Option<&TraceContext>) {
    if let Some(remote) = caller.and_then(remote_context) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let own = span.context().span().span_context().clone();
    if own.is_valid() {
        span.record("trace_id", own.trace_id().to_string());
        span.record("span_id", own.span_id().to_string());
        span.record("trace_sampled", own.is_sampled());
    } else if let Some(caller) = caller {
        span.record("trace_id", caller.trace_id.as_str());
        span.record("span_id", caller.span_id.as_deref());
        span.record("trace_sampled", caller.sampled);
    }
}

fn remote_context(caller: &TraceContext) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(&caller.trace_id).ok()?;
    let span_id = SpanId::from_hex(caller.span_id.as_deref()?).ok()?;
    let flags = if caller.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    Some(SpanContext::new(trace_id, span_id, flags, true, TraceState::default()))
}

/// The W3C `traceparent` of `span`, to carry its trace across Pub/Sub; `None` when spans are
/// not exported.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context().span().span_context().clone();
    context
        .is_valid()
        .then(|| format!("00-{}-{}-{:02x}", context.trace_id(), context.span_id(), context.trace_flags().to_u8()))
}

/// Makes `span` continue the trace of a `traceparent` carried in a Pub/Sub message.
pub fn continue_from_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    let caller = traceparent.and_then(|value| {
        let mut headers = warp::http::HeaderMap::new();
        headers.insert("traceparent", value.parse().ok()?);
        TraceContext::from_headers(&headers)
    });
    continue_trace(span, caller.as_ref());
}

/// Sends export requests through the process's tokio runtime (the SDK exports from a thread of
/// its own, outside it), with an access token on Google's endpoints.
#[derive(Debug)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    credentials: Option<google_cloud_auth::credentials::AccessTokenCredentials>,
}

impl ExportClient {
    fn new(endpoint: &str, timeout: std::time::Duration) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let http = reqwest::Client::builder().timeout(timeout).build().ok()?;
        let host = endpoint.split("://").nth(1).and_then(|rest| rest.split(['/', ':']).next()).unwrap_or_default();
        let credentials = if host.ends_with(".googleapis.com") {
            match google_cloud_auth::credentials::Builder::default()
                .with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
                .build_access_token_credentials()
            {
                Ok(credentials) => Some(credentials),
                Err(e) => {
                    eprintln!("warning: tracing is off: no Google credentials for {host}: {e}");
                    return None;
                }
            }
        } else {
            None
        };
        Some(Self { http, runtime, credentials })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: warp::http::Request<Bytes>,
    ) -> Result<warp::http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (http, credentials) = (self.http.clone(), self.credentials.clone());
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut outgoing = http.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
            if let Some(credentials) = credentials {
                outgoing = outgoing.bearer_auth(credentials.access_token().await?.token);
            }
            let response = outgoing.send().await?;
            let mut reply = warp::http::Response::builder().status(response.status());
            if let Some(headers) = reply.headers_mut() {
                *headers = response.headers().clone();
            }
            Ok::<_, opentelemetry_http::HttpError>(reply.body(response.bytes().await?)?)
        });
        sent.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_context_from_either_header() {
        let caller = TraceContext {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: Some("00f067aa0ba902b7".into()),
            sampled: true,
        };
        let remote = remote_context(&caller).expect("valid");
        assert_eq!(remote.trace_id().to_string(), caller.trace_id);
        assert!(remote.is_sampled() && remote.is_remote());
        assert!(remote_context(&TraceContext { span_id: None, ..caller }).is_none());
    }

    #[test]
    fn samplers_follow_the_variables() {
        assert!(matches!(sampler(TraceSampler::ParentBasedTraceIdRatio(0.5)), Sampler::ParentBased(_)));
        assert!(matches!(sampler(TraceSampler::TraceIdRatio(0.5)), Sampler::TraceIdRatioBased(r) if r == 0.5));
    }
}

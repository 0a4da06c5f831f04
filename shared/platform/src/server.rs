//! The HTTP loop every function runs: warp routes behind hyper's HTTP/1.1 server, one log line
//! per request (method, path, status, latency, tenant), and graceful shutdown: on the signal
//! the listener closes, in-flight requests finish within the grace period, then it returns.

use std::future::Future;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service as _;
use tracing::Instrument;
use tracing::field::Empty;
use warp::http::{Method, StatusCode};
use warp::{Filter, Rejection, Reply};

use crate::parse_errors::ProblemIo;
use crate::telemetry::TraceContext;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `routes` on `listener` until `shutdown` resolves, then drains for at most `grace`.
pub async fn serve<F, R>(listener: TcpListener, routes: F, shutdown: impl Future<Output = ()>, grace: Duration)
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let service = warp::service(liveness().or(routes).recover(crate::error::recover));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::error!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let handler = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut service = service.clone();
            // The request's span: what its log line carries (tenant, outcome, group-commit
            // size, pool wait, recorded by the handlers) and, when traces are exported, the
            // server span of its trace.
            let span = tracing::info_span!(
                "request",
                otel.name = %format_args!("{} {}", request.method(), request.uri().path()),
                otel.kind = "server",
                otel.status_code = Empty,
                method = %request.method(),
                path = %request.uri().path(),
                http.response.status_code = Empty,
                tenant_id = Empty,
                outcome = Empty,
                events_created = Empty,
                events_duplicate = Empty,
                events_rejected = Empty,
                problem = Empty,
                group_commit_size = Empty,
                pool_wait_ms = Empty,
                trace_id = Empty,
                span_id = Empty,
                trace_sampled = Empty,
            );
            crate::traces::continue_trace(&span, TraceContext::from_headers(request.headers()).as_ref());
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let started = Instant::now();
            let ambiguous = crate::ambiguity::check(request.version(), request.headers());
            async move {
                let response = match ambiguous {
                    Some(error) => error.to_response(),
                    None => service.call(request).await?,
                };
                let span = tracing::Span::current();
                span.record("http.response.status_code", response.status().as_u16());
                if response.status().is_server_error() {
                    span.record("otel.status_code", "error");
                }
                log_request(&method, &path, response.status(), started.elapsed());
                Ok::<_, std::convert::Infallible>(response)
            }
            .instrument(span)
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(ProblemIo::new(stream)), handler);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// `GET /health`: 200 while the process runs. Every function answers it, for Cloud Run's probes.
fn liveness() -> impl Filter<Extract = (warp::reply::Json,), Error = Rejection> + Clone {
    warp::path!("health").and(crate::method::get()).map(|| warp::reply::json(&serde_json::json!({"status": "ok"})))
}

/// The one log line per request, in the `httpRequest` shape Cloud Logging understands; the
/// tenant and the trace come from the request's span.
fn log_request(method: &Method, path: &str, status: StatusCode, latency: Duration) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let latency_text = format!("{:.6}s", latency.as_secs_f64());
    macro_rules! log_at {
        ($level:ident, $message:literal) => {
            tracing::$level!(
                http_request.request_method = %method,
                http_request.request_url = path,
                http_request.status = status.as_u16(),
                http_request.latency = latency_text,
                latency_ms,
                $message
            )
        };
    }
    if status.is_server_error() {
        log_at!(error, "request failed");
    } else {
        log_at!(info, "request completed");
    }
}

/// Resolves on SIGTERM (Cloud Run's stop signal) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}

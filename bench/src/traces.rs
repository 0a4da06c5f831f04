//! The tracing point: single-event ingest with traces exported against the same with tracing
//! off, back to back. Traced `events` processes export over OTLP/HTTP to a collector inside the
//! bench (hyper, answering every export 200 and counting what it received), so the service
//! pays for recording, batching, encoding and sending spans, and the collector costs next to
//! nothing.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::load::Measured;
use crate::stack::Service;

/// Sampling ratios measured (`OTEL_TRACES_SAMPLER=traceidratio`): Terraform's default on Cloud
/// Run, and every request.
pub const RATIOS: [f64; 2] = [0.01, 1.0];

/// What the collector received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Export requests (`POST /v1/traces`).
    pub requests: u64,
    /// Their body bytes (protobuf).
    pub bytes: u64,
}

impl std::ops::Sub for Received {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self { requests: self.requests - earlier.requests, bytes: self.bytes - earlier.bytes }
    }
}

/// An OTLP/HTTP collector that keeps nothing: 200 to every request, counting them. Runs on a
/// thread of its own until the process ends.
#[derive(Debug, Clone)]
pub struct Collector {
    pub port: u16,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Collector {
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding the collector")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let collector = Self { port, requests: Arc::default(), bytes: Arc::default() };
        let counters = collector.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
        std::thread::Builder::new().name("otlp-collector".into()).spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                while let Ok((stream, _)) = listener.accept().await {
                    let counters = counters.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                            let counters = counters.clone();
                            async move {
                                let body = request.into_body().collect().await?.to_bytes();
                                counters.requests.fetch_add(1, Ordering::Relaxed);
                                counters.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                                // An empty ExportTraceServiceResponse: everything accepted.
                                Response::builder()
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::new()))
                                    .map_err(anyhow::Error::from)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })?;
        Ok(collector)
    }

    pub fn received(&self) -> Received {
        Received { requests: self.requests.load(Ordering::Relaxed), bytes: self.bytes.load(Ordering::Relaxed) }
    }

    /// The variables that make a service export every `ratio` of its traces here, sooner than
    /// the default 5 s schedule so that a point's spans are sent within it.
    pub fn vars(&self, ratio: f64) -> Vec<(&'static str, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("OTEL_TRACES_SAMPLER", "traceidratio".to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG", ratio.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "1000".to_owned()),
        ]
    }
}

/// One run of the tracing point at one concurrency: tracing off, then each ratio.
#[derive(Debug, Clone)]
pub struct TracingRun {
    pub clients: usize,
    pub off: Option<Measured>,
    /// (ratio, the point, what the collector received during it)
    pub traced: Vec<(f64, Option<Measured>, Received)>,
}

impl TracingRun {
    /// The point at `ratio` and what the collector received during it.
    pub fn at(&self, ratio: f64) -> Option<(Option<&Measured>, Received)> {
        self.traced.iter().find(|(x, _, _)| *x == ratio).map(|(_, m, got)| (m.as_ref(), *got))
    }
}

/// The traced `events` processes, one per ratio, with the collector they export to.
#[derive(Debug)]
pub struct TracedStack {
    pub collector: Collector,
    pub services: Vec<(f64, Service)>,
}

impl TracedStack {
    /// The collector and a traced `events` per ratio, each answering `/health`.
    pub fn start(stack: &crate::stack::Stack) -> anyhow::Result<Self> {
        let collector = Collector::start()?;
        let mut services = Vec::new();
        for ratio in RATIOS {
            let vars = collector.vars(ratio);
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let label = format!("events-traced-{ratio}");
            let service = Service::start(
                &stack.bin_dir,
                "events",
                &label,
                &stack.db_url,
                stack.pool_size,
                stack.scratch.path(),
                &vars,
            )?;
            crate::stack::wait_for_health(&stack.http, service.port, std::time::Duration::from_secs(20))
                .with_context(|| format!("{label} did not answer /health; see {}", service.log.display()))?;
            services.push((ratio, service));
        }
        Ok(Self { collector, services })
    }
}

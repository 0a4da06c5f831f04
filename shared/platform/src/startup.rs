//! The one start-up path every binary takes: read the configuration, start logging, load the
//! tenant keys its role needs, then (after the binary has built its pool and routes) serve on
//! `0.0.0.0:$PORT` until SIGTERM. A failure before serving is one line on stderr naming what
//! is wrong, and exit code 2.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::{Filter, Rejection, Reply};

use crate::error::Chain;
use crate::key_source::KeySourceError;
use crate::rate_limit::RateLimiter;
use crate::{Config, ConfigError, TenantKeys, telemetry};

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("TENANT_KEYS_SECRET could not be read")]
    TenantKeys(#[from] KeySourceError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Something the process needs before it serves: the database URL, migrations, a
    /// throwaway database, Pub/Sub credentials.
    #[error("{what}")]
    Dependency {
        what: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl StartupError {
    /// `DATABASE_URL` cannot be used, because of `source` (which never quotes the URL).
    pub fn database_url(source: impl std::fmt::Display) -> Self {
        ConfigError::Invalid { var: "DATABASE_URL", expected: format!("a usable PostgreSQL URL, but {source}") }.into()
    }

    /// `what` failed because of `source`.
    pub fn dependency(what: impl Into<String>, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Dependency { what: what.into(), source: source.into() }
    }
}

/// Which tenant keys a process needs.
#[derive(Debug, Clone, Copy)]
pub enum KeyPolicy {
    /// A function tenants call: `TENANT_KEYS` or `TENANT_KEYS_SECRET`, or it refuses to start.
    Required,
    /// `local`: as `Required`, falling back to this demo document when neither is set.
    DemoFallback(&'static str),
    /// A process no tenant calls (the Pub/Sub worker, migrate): every key is refused.
    NoTenants,
}

/// What HTTP handlers share: the configuration, the tenant keys, the rate limiter and the
/// clock. Cheap to clone. The database pool and other dependencies are handed to each
/// function's routes separately, by the binary that builds them.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub keys: TenantKeys,
    /// Per-tenant rate limits, when `RATE_LIMIT_PER_SEC` is set.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    pub clock: Clock,
}

impl AppState {
    /// The state for `config`, with its rate limiter if it sets one, on the system clock.
    pub fn new(config: Config, keys: TenantKeys) -> Self {
        let rate_limiter = config.rate_limit.map(|(rate, burst)| Arc::new(RateLimiter::new(rate, burst)));
        Self { config: Arc::new(config), keys, rate_limiter, clock: Clock::system() }
    }
}

/// Where the rules read the time from (future skew, retention): the system clock, or in tests
/// one set ahead, so that days can pass without waiting for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    ahead: chrono::TimeDelta,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clock, `by` ahead (behind, if negative).
    pub fn ahead(by: chrono::TimeDelta) -> Self {
        Self { ahead: by }
    }

    /// Now, by this clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.ahead
    }
}

/// A process that has read its configuration and started logging.
#[derive(Debug)]
pub struct Process {
    pub config: Config,
}

impl Process {
    /// Reads the environment and starts logging. Call once, first.
    pub fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        telemetry::init(&config);
        Ok(Self { config })
    }

    /// `DATABASE_URL`, which every deployed function needs.
    pub fn database_url(&self) -> Result<&str, StartupError> {
        Ok(self.config.require_database_url()?)
    }

    /// Loads the tenant keys `policy` asks for (with `TENANT_KEYS_SECRET`, also starts their
    /// background refresh) and makes the handlers' state.
    pub async fn app_state(&self, policy: KeyPolicy) -> Result<AppState, StartupError> {
        let keys = match policy {
            KeyPolicy::Required => crate::key_source::load_tenant_keys(&self.config, None).await?,
            KeyPolicy::DemoFallback(demo) => crate::key_source::load_tenant_keys(&self.config, Some(demo)).await?,
            KeyPolicy::NoTenants => TenantKeys::none(),
        };
        Ok(AppState::new(self.config.clone(), keys))
    }

    /// Binds `0.0.0.0:$PORT`.
    pub async fn listen(&self) -> Result<TcpListener, StartupError> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.config.port));
        TcpListener::bind(addr).await.map_err(|source| StartupError::Listen { addr, source })
    }

    /// Serves `routes` on `listener` until SIGTERM (or Ctrl-C), then drains in-flight requests
    /// for at most `SHUTDOWN_GRACE_SECS`.
    pub async fn serve<F, R>(&self, listener: TcpListener, routes: F)
    where
        F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
        R: Reply,
    {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "listening");
        }
        crate::serve(listener, routes, crate::shutdown_signal(), self.config.shutdown_grace).await;
        tracing::info!("stopped");
    }
}

/// Runs a binary's `main`: its error, if any, as one line on stderr, and the exit code.
pub async fn run(main: impl Future<Output = Result<(), StartupError>>) -> ExitCode {
    let outcome = main.await;
    // The exporter sends through this runtime: flush while it still runs.
    let _ = tokio::task::spawn_blocking(crate::traces::shutdown).await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One plain line on stderr (Cloud Run logs it as an error): logging may not be up
            // yet (a bad LOG_FORMAT), and a person reading a terminal wants just the reason.
            eprintln!("error: {}", Chain(&err));
            ExitCode::from(2)
        }
    }
}

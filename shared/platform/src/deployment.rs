//! The start-up sequence every deployed function shares: read the config, start logging,
//! refuse to start without a database URL or keys, build the pool, serve until SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use data::Pool;
use tokio::net::TcpListener;
use warp::{Filter, Rejection, Reply};

use crate::rate_limit::RateLimiter;
use crate::{Config, ConfigError, TenantKeys, telemetry};

/// What handlers share: the pool, the keys and the config. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Pool,
    pub keys: TenantKeys,
    /// Per-tenant rate limits, when `RATE_LIMIT_PER_SEC` is set.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    pub config: Arc<Config>,
}

impl AppState {
    /// The state for `config`, with its rate limiter if it sets one.
    pub fn new(pool: Pool, keys: TenantKeys, config: Config) -> Self {
        let rate_limiter = config.rate_limit.map(|(rate, burst)| Arc::new(RateLimiter::new(rate, burst)));
        Self { pool, keys, rate_limiter, config: Arc::new(config) }
    }
}

/// A deployed function's process, ready to serve.
#[derive(Debug)]
pub struct Deployment {
    pub state: AppState,
}

impl Deployment {
    /// Reads the environment, starts logging, loads the tenant keys and builds the pool.
    /// Errors name the variable.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let (config, pool) = config_and_pool()?;
        let keys = crate::key_source::load_tenant_keys(&config, None).await?;
        Ok(Self { state: AppState::new(pool, keys, config) })
    }

    /// Like `from_env`, for a function no tenant calls (the Pub/Sub worker): no keys are loaded
    /// and every key is refused.
    pub fn from_env_without_tenant_keys() -> Result<Self, ConfigError> {
        let (config, pool) = config_and_pool()?;
        Ok(Self { state: AppState::new(pool, TenantKeys::none(), config) })
    }

    /// Serves `routes` on `0.0.0.0:$PORT` until SIGTERM, then drains and closes the pool.
    pub async fn serve<F, R>(self, routes: F) -> ExitCode
    where
        F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
        R: Reply,
    {
        let config = &self.state.config;
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(%addr, error = %err, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%addr, "listening");
        crate::serve(listener, routes, crate::shutdown_signal(), config.shutdown_grace).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    }
}

/// The start every deployed function shares: config, logging, then the (lazy) pool.
fn config_and_pool() -> Result<(Config, Pool), ConfigError> {
    let config = Config::from_env()?;
    telemetry::init(&config);
    let pool = data::connect_pool(config.require_database_url()?, &config.pool).map_err(|e| ConfigError::Invalid {
        var: "DATABASE_URL",
        expected: format!("a usable PostgreSQL URL, but {e}"),
    })?;
    Ok((config, pool))
}

/// Prints a start-up error as one line and returns the failure exit code.
pub fn exit_with(err: &ConfigError) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(2)
}

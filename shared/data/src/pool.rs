//! The connection pool: built once per process, lazily connected, every connection set up
//! with a statement timeout so a slow database answers "unavailable" instead of piling up work.

use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;

pub use settings::PoolConfig;

use crate::DataError;
use crate::connect::{ConnectOptions, UrlError};

/// The process-wide pool of PostgreSQL connections.
pub type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

/// Builds the pool without connecting: the process starts (and answers `/health`) while the
/// database is still down, and connections are opened on first use. Fails only when the URL
/// cannot be used at all (see `connect`).
pub fn connect_pool(database_url: &str, config: &PoolConfig) -> Result<Pool, UrlError> {
    let options = ConnectOptions::parse(database_url)?;
    let statement_timeout_ms = config.statement_timeout.as_millis();
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    // Not `Verified`, which sends `SELECT 1` on every checkout: a round trip per request. A
    // connection that died is found on its next statement instead; that request gets a 503
    // (retryable) and the pool drops the connection.
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(move |_url| {
        let options = options.clone();
        async move {
            let mut conn = options.establish().await?;
            diesel::sql_query(format!("SET statement_timeout = {statement_timeout_ms}"))
                .execute(&mut conn)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, manager_config);
    Ok(bb8::Pool::builder()
        .max_size(config.max_size)
        .min_idle(None)
        .connection_timeout(config.acquire_timeout)
        .build_unchecked(manager))
}

/// `SELECT 1` on a pooled connection: the readiness check.
pub async fn ping(pool: &Pool) -> Result<(), DataError> {
    let mut conn = pool.get().await?;
    crate::prepared::prepared(diesel::sql_query("SELECT 1")).execute(&mut conn).await?;
    Ok(())
}

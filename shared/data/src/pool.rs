//! The connection pool: built once per process, lazily connected, every connection set up
//! with a statement timeout so a slow database answers "unavailable" instead of piling up work.

use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt;

pub use settings::PoolConfig;

use crate::DataError;
use crate::connect::{ConnectOptions, UrlError};

/// The process-wide pool of PostgreSQL connections.
pub type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

/// How PostgreSQL plans the prepared statements of a pool's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// PostgreSQL's default (`plan_cache_mode = auto`): a plan for the values of each execution
    /// wherever it estimates that one to be cheaper. Right for the window counts, whose
    /// partitions are pruned while planning.
    Auto,
    /// One generic plan per prepared statement, reused (`plan_cache_mode = force_generic_plan`):
    /// for the ingest processes (`events`, `worker`), whose statement is the idempotent insert.
    /// Its plan does not depend on the values (the rows are routed to their partition as they
    /// are written), but with `auto` PostgreSQL judges each one-event array cheaper to plan
    /// anew than its generic plan (costed for unnest's 100 rows), and planned the insert on
    /// every execution: a quarter of PostgreSQL's CPU per single event (perf, 1 client).
    /// Measured with the release `events`, wrk, 10 s points: 1.5k → 2.1k events/s at 1 client,
    /// 10.4k → 13.9k/s at 16.
    Generic,
}

/// Builds the pool without connecting: the process starts (and answers `/health`) while the
/// database is still down, and connections are opened on first use. Fails only when the URL
/// cannot be used at all (see `connect`). Statements are planned the default way (`Plans::Auto`).
pub fn connect_pool(database_url: &str, config: &PoolConfig) -> Result<Pool, UrlError> {
    connect_pool_planning(database_url, config, Plans::Auto)
}

/// `connect_pool`, with `plans` saying how each connection plans its prepared statements.
pub fn connect_pool_planning(database_url: &str, config: &PoolConfig, plans: Plans) -> Result<Pool, UrlError> {
    let options = ConnectOptions::parse(database_url)?;
    let plan_cache_mode = match plans {
        Plans::Auto => "auto",
        Plans::Generic => "force_generic_plan",
    };
    // One round trip for every setting (the simple query protocol takes several statements).
    let setup = format!(
        "SET statement_timeout = {}; SET plan_cache_mode = {plan_cache_mode}",
        config.statement_timeout.as_millis()
    );
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    // Not `Verified`, which sends `SELECT 1` on every checkout: a round trip per request. A
    // connection that died is found on its next statement instead; that request gets a 503
    // (retryable) and the pool drops the connection.
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(move |_url| {
        let options = options.clone();
        let setup = setup.clone();
        async move {
            let mut conn = options.establish().await?;
            conn.batch_execute(&setup).await.map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
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

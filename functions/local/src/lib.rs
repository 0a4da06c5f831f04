//! `local`: every function's routes on one port, for development and the black-box tests.
//! Not deployed; in the cloud each function is its own service behind the load balancer's URL
//! map, and these routes mirror that map.

pub mod pubsub;

use data::{BatchingWriter, Pool};
use platform::{ApiError, AppState, StartupError};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// Key document used when `TENANT_KEYS` is unset: two demo tenants, keys as in README.md.
pub const DEMO_TENANT_KEYS: &str = r#"{"acme": ["tenant-key-123"], "globex": ["tenant-key-456"]}"#;

/// All routes of `events`, `metrics`, `health` and `worker`, on one pool and one group-commit
/// writer (started by the caller).
pub fn routes(
    state: &AppState,
    pool: Pool,
    writer: BatchingWriter,
) -> Result<impl Filter<Extract = (Result<Response, ApiError>,), Error = Rejection> + Clone + use<>, StartupError> {
    let sink = events::Sink::start(&state.config, &pool, &writer)?;
    Ok(events::routes(state, sink)
        .or(metrics::routes(state, pool.clone()))
        .unify()
        .or(health::routes(pool))
        .unify()
        .or(worker::routes(state, writer))
        .unify())
}

//! `local`: every function's routes on one port, for development and the black-box tests.
//! Not deployed; in the cloud each function is its own service behind the load balancer's URL
//! map, and these routes mirror that map.

pub mod pubsub;

use data::Pool;
use platform::{ApiError, AppState};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// Key document used when `TENANT_KEYS` is unset: two demo tenants, keys as in README.md.
pub const DEMO_TENANT_KEYS: &str = r#"{"acme": ["tenant-key-123"], "globex": ["tenant-key-456"]}"#;

/// All routes of `events`, `metrics`, `health` and `worker`, on one pool.
pub fn routes(
    state: &AppState,
    pool: Pool,
    sink: events::Sink,
) -> impl Filter<Extract = (Result<Response, ApiError>,), Error = Rejection> + Clone + use<> {
    events::routes(state, sink)
        .or(metrics::routes(state, pool.clone()))
        .unify()
        .or(health::routes(pool.clone()))
        .unify()
        .or(worker::routes(state, pool))
        .unify()
}

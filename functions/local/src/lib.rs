//! `local`: every function's routes on one port, for development and the black-box tests.
//! Not deployed; in the cloud each function is its own service behind the load balancer's URL
//! map, and these routes mirror that map.

pub mod pubsub;

use platform::{AppState, ConfigError};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// Key document used when `TENANT_KEYS` is unset: two demo tenants, keys as in README.md.
pub const DEMO_TENANT_KEYS: &str = r#"{"acme": ["tenant-key-123"], "globex": ["tenant-key-456"]}"#;

/// All routes of `events`, `metrics`, `health` and `worker`.
pub fn routes(
    state: &AppState,
) -> Result<impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<>, ConfigError> {
    Ok(events::routes(state)?
        .or(metrics::routes(state))
        .unify()
        .or(health::routes(state))
        .unify()
        .or(worker::routes(state))
        .unify())
}

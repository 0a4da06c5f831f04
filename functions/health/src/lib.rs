//! `GET /ready`: 200 when the database answers `SELECT 1` within 2 s, else 503 without the
//! driver's error. (`GET /health`, liveness, is answered by every function's server.)

use std::time::Duration;

use platform::{ApiError, AppState};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// How long readiness waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes of this function.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let pool = state.pool.clone();
    warp::path!("ready").and(platform::method::get()).then(move || {
        let pool = pool.clone();
        async move {
            match tokio::time::timeout(READY_TIMEOUT, data::ping(&pool)).await {
                Ok(Ok(())) => warp::reply::json(&serde_json::json!({"status": "ready"})).into_response(),
                Ok(Err(err)) => ApiError::from(err).to_response(),
                Err(_) => ApiError::Unavailable("database did not answer within 2 s".into()).to_response(),
            }
        }
    })
}

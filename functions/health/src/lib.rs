//! `GET /ready`: 200 when the database answers `SELECT 1` within 2 s, else 503 without the
//! driver's error. (`GET /health`, liveness, is answered by every function's server.)

use std::time::Duration;

use data::Pool;
use platform::{ApiError, with};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// How long readiness waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The database did not answer the readiness check in time.
#[derive(Debug, thiserror::Error)]
#[error("the database did not answer within {} s", READY_TIMEOUT.as_secs())]
struct NoAnswer;

/// The routes of this function.
pub fn routes(pool: Pool) -> impl Filter<Extract = (Result<Response, ApiError>,), Error = Rejection> + Clone {
    warp::path!("ready").and(platform::method::get()).and(with(pool)).then(ready)
}

async fn ready(pool: Pool) -> Result<Response, ApiError> {
    tokio::time::timeout(READY_TIMEOUT, data::ping(&pool))
        .await
        .map_err(|_| ApiError::Unavailable(Box::new(NoAnswer)))??;
    Ok(warp::reply::json(&serde_json::json!({"status": "ready"})).into_response())
}

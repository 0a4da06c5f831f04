//! `POST /events`: validate, authenticate, store once.
//!
//! An event's identity is the `Idempotency-Key` header, else the body's `event_id`, else a
//! server-made UUIDv7. Storing is one idempotent insert: a replay of the same identity and
//! payload is a 200 `duplicate`, the same identity with another payload a 422, and nothing is
//! ever written twice.

mod input;

use data::{InsertOutcome, NewEvent};
use platform::json_body::json_body;
use platform::{ApiError, AppState, TenantId, authenticate};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

pub use input::{EventInput, parse_event};

/// Largest accepted `POST /events` body.
pub const MAX_EVENT_BODY_BYTES: usize = 1024 * 1024;

/// The routes of this function.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let state = state.clone();
    warp::path!("events")
        .and(warp::post())
        .and(authenticate(state.keys.clone()))
        .and(optional_header("idempotency-key"))
        .and(json_body(MAX_EVENT_BODY_BYTES))
        .then(move |tenant, key, body| {
            let state = state.clone();
            async move { ingest(&state, tenant, key, body).await.unwrap_or_else(|e| e.to_response()) }
        })
}

fn optional_header(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = std::convert::Infallible> + Clone {
    warp::header::value(name).map(Some).or(warp::any().map(|| None)).unify()
}

async fn ingest(
    state: &AppState,
    tenant: TenantId,
    idempotency_key: Option<HeaderValue>,
    body: serde_json::Value,
) -> Result<Response, ApiError> {
    let header_id = idempotency_key
        .map(|value| input::check_event_id(value.as_bytes()).map_err(|msg| ApiError::invalid("Idempotency-Key", msg)))
        .transpose()?;
    let now = chrono::Utc::now();
    let input = parse_event(body, now, state.config.max_future_skew).map_err(ApiError::Validation)?;
    let event_id = header_id.or(input.event_id).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let event = NewEvent::new(tenant.to_string(), event_id, input.event_name, input.timestamp, input.properties);
    let (status, label) = match data::insert_idempotent(&state.pool, &event).await? {
        InsertOutcome::Created => (StatusCode::CREATED, "created"),
        InsertOutcome::Duplicate => (StatusCode::OK, "duplicate"),
        InsertOutcome::KeyReused => return Err(ApiError::KeyReused { event_id: event.event_id }),
    };
    let body = warp::reply::json(&serde_json::json!({"event_id": event.event_id, "status": label}));
    Ok(warp::reply::with_status(body, status).into_response())
}

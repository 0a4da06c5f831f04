//! `POST /pubsub/push`: the Pub/Sub push endpoint that persists events in async mode.
//!
//! Pub/Sub treats 2xx as an acknowledgement and anything else as a failed delivery to retry,
//! up to the subscription's `max_delivery_attempts`, then moves the message to the dead-letter
//! topic. So: created and duplicate are 204 (a redelivered message is a duplicate and is
//! acknowledged); a message that can never succeed (malformed, altered, or reusing an identity
//! with another payload) is a 4xx and logged, so it ends in the dead-letter topic; a database
//! outage is a 503, so Pub/Sub redelivers once it is back.

use base64::Engine;
use data::{EventMessage, InsertOutcome};
use domain::json::Document;
use platform::fields::{check_event_id, check_event_name, check_properties};
use platform::json_body::json_body;
use platform::{ApiError, AppState};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Largest push request: a 1 MiB event, base64-encoded, in its envelope.
pub const MAX_PUSH_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The routes of this function.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let pool = state.pool.clone();
    warp::path!("pubsub" / "push")
        .and(platform::method::post())
        .and(json_body(MAX_PUSH_BODY_BYTES, state.config.request_body_timeout))
        .then(move |body: Document| {
            let pool = pool.clone();
            async move { persist(&pool, body).await.unwrap_or_else(|e| e.to_response()) }
        })
}

/// Pub/Sub's push request.
#[derive(Debug, Deserialize)]
struct PushRequest {
    message: PushMessage,
    #[serde(default)]
    subscription: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushMessage {
    #[serde(default)]
    data: String,
    #[serde(default)]
    message_id: String,
}

async fn persist(pool: &data::Pool, body: Document) -> Result<Response, ApiError> {
    if let Some(path) = body.duplicates.first() {
        return Err(refuse(&path.to_string(), "is given more than once"));
    }
    let push: PushRequest =
        serde_json::from_value(body.value).map_err(|e| refuse("body", format!("not a push request: {e}")))?;
    let message_id = push.message.message_id;
    let event = decode(&push.message.data).map_err(|(field, reason)| {
        tracing::error!(%message_id, subscription = %push.subscription, %reason, "refused a malformed message");
        refuse(field, reason)
    })?;
    let outcome = data::insert_idempotent(pool, std::slice::from_ref(&event)).await?;
    match outcome.first() {
        Some(InsertOutcome::Created | InsertOutcome::Duplicate) => {
            tracing::debug!(%message_id, tenant_id = %event.tenant_id, event_id = %event.event_id, "persisted");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Some(InsertOutcome::KeyReused) => {
            tracing::error!(%message_id, tenant_id = %event.tenant_id, event_id = %event.event_id, "refused an identity reused with another payload");
            Err(ApiError::KeyReused { event_id: event.event_id })
        }
        None => Err(ApiError::Internal("the insert reported no outcome".into())),
    }
}

fn refuse(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::invalid(field, reason)
}

/// The event in a message's `data`, checked by the same rules as a request.
fn decode(data: &str) -> Result<data::NewEvent, (&'static str, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| ("message.data", "is not base64".to_owned()))?;
    let document = Document::parse(&bytes).map_err(|e| ("message.data", format!("is not JSON: {e}")))?;
    if let Some(path) = document.duplicates.first() {
        return Err(("message.data", format!("gives {path} more than once")));
    }
    let message: EventMessage =
        serde_json::from_value(document.value).map_err(|e| ("message.data", format!("is not an event: {e}")))?;
    check_event_name(&message.event_name).map_err(|m| ("event_name", m))?;
    check_event_id(message.event_id.as_bytes()).map_err(|m| ("event_id", m))?;
    if message.tenant_id.is_empty() {
        return Err(("tenant_id", "is required".into()));
    }
    if let Some(properties) = &message.properties {
        if !properties.is_object() {
            return Err(("properties", "must be a JSON object".into()));
        }
        check_properties(properties).map_err(|m| ("properties", m))?;
    }
    message.into_new_event().map_err(|m| ("payload_hash", m))
}

//! `POST /pubsub/push`: the Pub/Sub push endpoint that persists events in async mode.
//!
//! Pub/Sub treats 2xx as an acknowledgement and anything else as a failed delivery to retry,
//! up to the subscription's `max_delivery_attempts`, then moves the message to the dead-letter
//! topic. So: created and duplicate are 204 (a redelivered message is a duplicate and is
//! acknowledged); a message that can never succeed (malformed, ambiguous, altered, past retention, or
//! reusing an identity with another payload) is a 4xx and logged, so it ends in the dead-letter topic;
//! a database outage is a 503, so Pub/Sub redelivers once it is back. A message is checked by
//! `domain::EventMessage::decode`, the same rules a request is checked by, and stored through
//! the same group commit as inline single events: concurrent pushes share a statement and a
//! commit, and each is acknowledged only once its own commit is done.

use base64::Engine;
use data::{BatchingWriter, InsertOutcome};
use domain::json::Document;
use domain::{EventMessage, FieldError, IngestRules};
use platform::json_body::json_body;
use platform::{ApiError, AppState, Clock, with};
use serde::Deserialize;
use tracing::Instrument;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Largest push request: a 1 MiB event, base64-encoded, in its envelope.
pub const MAX_PUSH_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The routes of this function.
pub fn routes(
    state: &AppState,
    writer: BatchingWriter,
) -> impl Filter<Extract = (Result<Response, ApiError>,), Error = Rejection> + Clone + use<> {
    warp::path!("pubsub" / "push")
        .and(platform::method::post())
        .and(json_body(MAX_PUSH_BODY_BYTES, state.config.request_body_timeout))
        .and(with((writer, state.config.ingest_rules(), state.clock)))
        .then(persist)
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
    /// Set by the publisher: `tenant_id`, `event_id`, and `traceparent` when traces are on.
    #[serde(default)]
    attributes: std::collections::HashMap<String, String>,
}

async fn persist(
    body: Document,
    (writer, rules, clock): (BatchingWriter, IngestRules, Clock),
) -> Result<Response, ApiError> {
    if let Some(path) = body.duplicates.first() {
        return Err(ApiError::Validation(vec![FieldError::duplicate(path)]));
    }
    let push: PushRequest = serde_json::from_value(body.value)
        .map_err(|e| ApiError::invalid("body", format!("not a push request: {e}")))?;
    let message_id = push.message.message_id;
    let event = base64::engine::general_purpose::STANDARD
        .decode(&push.message.data)
        .map_err(|_| domain::MessageError { field: "message.data", reason: "is not base64".into() })
        .and_then(|data| EventMessage::decode(&data, clock.now(), &rules))
        .map_err(|refused| {
            tracing::error!(%message_id, subscription = %push.subscription, error = %refused, "refused a malformed message");
            ApiError::invalid(refused.field, refused.reason)
        })?;
    let (tenant_id, event_id) = (event.tenant_id().to_string(), event.event_id().to_string());
    let request = tracing::Span::current();
    request.record("tenant_id", tenant_id.as_str());
    // Storing continues the publisher's trace, carried in the message's attributes.
    let process = tracing::info_span!(
        "pubsub.process",
        otel.kind = "consumer",
        messaging.system = "gcp_pubsub",
        messaging.message.id = %message_id,
        group_commit_size = tracing::field::Empty,
        pool_wait_ms = tracing::field::Empty,
    );
    platform::traces::continue_from_traceparent(
        &process,
        push.message.attributes.get("traceparent").map(String::as_str),
    );
    let (label, counts) = match writer.insert(event).instrument(process).await? {
        InsertOutcome::Created => ("created", (1, 0, 0)),
        InsertOutcome::Duplicate => ("duplicate", (0, 1, 0)),
        InsertOutcome::KeyReused => ("key_reused", (0, 0, 1)),
    };
    request
        .record("outcome", label)
        .record("events_created", counts.0)
        .record("events_duplicate", counts.1)
        .record("events_rejected", counts.2);
    if label == "key_reused" {
        tracing::error!(%message_id, tenant_id, event_id, "refused an identity reused with another payload");
        return Err(ApiError::KeyReused { event_id });
    }
    tracing::debug!(%message_id, tenant_id, event_id, "persisted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! `POST /events` and `POST /events/batch`: validate, authenticate, store once.
//!
//! An event's identity is the `Idempotency-Key` header, else the body's `event_id`, else a
//! server-made UUIDv7. Inline (the default), storing is one idempotent insert: a replay of the
//! same identity and payload is a 200 `duplicate`, the same identity with another payload a
//! 422, and nothing is ever written twice. With `INGEST_MODE=pubsub` an accepted event is
//! published and answered 202 `accepted` once Pub/Sub holds it; the worker then inserts it with
//! the same rules. The rules themselves are `domain`'s.

mod publisher;

use data::{BatchingWriter, InsertOutcome, Pool};
use domain::json::{Document, Step};
use domain::{EventBody, EventId, FieldError, IngestRules, NewEvent, TenantId};
use platform::config::IngestMode;
use platform::json_body::json_body;
use platform::{ApiError, AppState, Clock, Config, StartupError, authenticate, with};
use serde_json::json;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

pub use publisher::{PublishError, Publisher};

/// Largest accepted `POST /events` body.
pub const MAX_EVENT_BODY_BYTES: usize = 1024 * 1024;

/// Largest accepted `POST /events/batch` body.
pub const MAX_BATCH_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// Where accepted events go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// To PostgreSQL: single events through the group-commit writer, batches directly.
    Inline { writer: BatchingWriter, pool: Pool },
    /// To Pub/Sub.
    PubSub(Publisher),
}

impl Sink {
    /// The sink `INGEST_MODE` names: inline, single events go through `writer` (the group
    /// commit, started by the caller) and batches straight to `pool`; in `pubsub` mode, the
    /// publisher, which fails without credentials.
    pub fn start(config: &Config, pool: &Pool, writer: &BatchingWriter) -> Result<Self, StartupError> {
        Ok(match config.ingest_mode {
            IngestMode::Inline => Self::Inline { writer: writer.clone(), pool: pool.clone() },
            IngestMode::PubSub => Self::PubSub(Publisher::from_config(config)?),
        })
    }
}

/// What the handlers need besides the request.
#[derive(Debug, Clone)]
struct Ingest {
    sink: Sink,
    rules: IngestRules,
    clock: Clock,
}

/// The routes of this function, storing through `sink`.
pub fn routes(
    state: &AppState,
    sink: Sink,
) -> impl Filter<Extract = (Result<Response, ApiError>,), Error = Rejection> + Clone + use<> {
    let ingest = Ingest { sink, rules: state.config.ingest_rules(), clock: state.clock };
    let body_timeout = state.config.request_body_timeout;
    let single = warp::path!("events")
        .and(platform::method::post())
        .and(authenticate(state))
        .and(platform::filters::header("idempotency-key"))
        .and(json_body(MAX_EVENT_BODY_BYTES, body_timeout))
        .and(with(ingest.clone()))
        .then(ingest_one);
    let batch = warp::path!("events" / "batch")
        .and(platform::method::post())
        .and(authenticate(state))
        .and(platform::filters::header("idempotency-key"))
        .and(json_body(MAX_BATCH_BODY_BYTES, body_timeout))
        .and(with(ingest))
        .then(ingest_batch);
    single.or(batch).unify()
}

async fn ingest_one(
    tenant: TenantId,
    idempotency_key: Option<HeaderValue>,
    body: Document,
    ingest: Ingest,
) -> Result<Response, ApiError> {
    if !body.duplicates.is_empty() {
        return Err(ApiError::Validation(body.duplicates.iter().map(FieldError::duplicate).collect()));
    }
    let header_id = idempotency_key
        .map(|value| EventId::parse(value.as_bytes()).map_err(|msg| ApiError::invalid("Idempotency-Key", msg)))
        .transpose()?;
    let body = EventBody::parse(body.value, ingest.clock.now(), &ingest.rules).map_err(ApiError::Validation)?;
    let event_id = header_id.or_else(|| body.event_id.clone()).unwrap_or_else(EventId::generate);
    let event = NewEvent::from_body(tenant, event_id.clone(), body);
    let (status, label) = match &ingest.sink {
        Sink::PubSub(publisher) => {
            publisher.publish(std::slice::from_ref(&event)).await?;
            (StatusCode::ACCEPTED, "accepted")
        }
        Sink::Inline { writer, .. } => match writer.insert(event).await? {
            InsertOutcome::Created => (StatusCode::CREATED, "created"),
            InsertOutcome::Duplicate => (StatusCode::OK, "duplicate"),
            InsertOutcome::KeyReused => {
                record_outcomes("key_reused", 0, 0, 1);
                return Err(ApiError::KeyReused { event_id: event_id.to_string() });
            }
        },
    };
    record_outcomes(label, u64::from(label != "duplicate"), u64::from(label == "duplicate"), 0);
    let body = warp::reply::json(&json!({"event_id": event_id.as_str(), "status": label}));
    Ok(warp::reply::with_status(body, status).into_response())
}

async fn ingest_batch(
    tenant: TenantId,
    idempotency_key: Option<HeaderValue>,
    body: Document,
    ingest: Ingest,
) -> Result<Response, ApiError> {
    if idempotency_key.is_some() {
        let message = "is not used by /events/batch: give each event its own event_id";
        return Err(ApiError::invalid("Idempotency-Key", message));
    }
    let items = batch_items(body)?;
    let now = ingest.clock.now();
    let mut events = Vec::with_capacity(items.len());
    // Per item: the index of its event in `events`, or why it was rejected.
    let mut results: Vec<Result<usize, Vec<FieldError>>> = Vec::with_capacity(items.len());
    for item in items {
        match item.and_then(|item| EventBody::parse(item, now, &ingest.rules)) {
            Ok(body) => {
                let event_id = body.event_id.clone().unwrap_or_else(EventId::generate);
                results.push(Ok(events.len()));
                events.push(NewEvent::from_body(tenant.clone(), event_id, body));
            }
            Err(errors) => results.push(Err(errors)),
        }
    }
    // Per event: the status of its result; `None` for a reused key.
    let outcomes: Vec<Option<&str>> = match &ingest.sink {
        _ if events.is_empty() => Vec::new(),
        Sink::PubSub(publisher) => {
            publisher.publish(&events).await?;
            vec![Some("accepted"); events.len()]
        }
        Sink::Inline { pool, .. } => data::insert_idempotent(pool, &events)
            .await?
            .into_iter()
            .map(|outcome| match outcome {
                InsertOutcome::Created => Some("created"),
                InsertOutcome::Duplicate => Some("duplicate"),
                InsertOutcome::KeyReused => None,
            })
            .collect(),
    };
    let count = |status: &str| outcomes.iter().filter(|o| **o == Some(status)).count() as u64;
    let created = count("created") + count("accepted");
    let duplicate = count("duplicate");
    record_outcomes("batch", created, duplicate, results.len() as u64 - created - duplicate);
    let rendered: Vec<serde_json::Value> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| match result {
            Ok(at) => {
                let event_id = events[at].event_id().as_str();
                match outcomes.get(at).copied().flatten() {
                    Some(status) => json!({"index": index, "event_id": event_id, "status": status}),
                    None => json!({"index": index, "event_id": event_id, "status": "rejected", "error": {
                        "type": "/problems/idempotency-key-reused",
                        "detail": "already stored with a different payload",
                    }}),
                }
            }
            Err(errors) => json!({"index": index, "event_id": null, "status": "rejected", "error": {
                "type": "/problems/validation",
                "detail": "the event is invalid",
                "errors": errors,
            }}),
        })
        .collect();
    Ok(warp::reply::json(&json!({ "results": rendered })).into_response())
}

/// Records on the request's span (so on its log line) what became of its events: the outcome
/// of a single event (`created`, `duplicate`, `accepted`, `key_reused`; `batch` for a batch)
/// and how many were stored (or accepted), were duplicates, were refused.
fn record_outcomes(outcome: &str, created: u64, duplicate: u64, rejected: u64) {
    tracing::Span::current()
        .record("outcome", outcome)
        .record("events_created", created)
        .record("events_duplicate", duplicate)
        .record("events_rejected", rejected);
}

/// The envelope: `{"events": [...]}` with 1 to 1000 items. Anything else is a 400 for the
/// whole request; from here on, a bad item only rejects itself. An item that gives a member
/// twice is already rejected here, naming the member from the item's own root.
pub fn batch_items(body: Document) -> Result<Vec<Result<serde_json::Value, Vec<FieldError>>>, ApiError> {
    let mut item_duplicates: Vec<Vec<FieldError>> = Vec::new();
    let mut errors: Vec<FieldError> = Vec::new();
    for path in &body.duplicates {
        match path.0.as_slice() {
            [Step::Member(events), Step::Index(i), ..] if events == "events" => {
                let within = path.strip_prefix(&path.0[..2]).unwrap_or_default();
                if item_duplicates.len() <= *i {
                    item_duplicates.resize_with(i + 1, Vec::new);
                }
                item_duplicates[*i].push(FieldError::duplicate(&within));
            }
            _ => errors.push(FieldError::duplicate(path)),
        }
    }
    let serde_json::Value::Object(mut envelope) = body.value else {
        return Err(ApiError::invalid("body", "must be a JSON object with an `events` array"));
    };
    // Every broken rule of the envelope, each once.
    for unknown in envelope.keys().filter(|k| k.as_str() != "events").map(|k| FieldError::unknown(k, "body")) {
        if !errors.iter().any(|e| e.field == unknown.field) {
            errors.push(unknown);
        }
    }
    let items = match envelope.remove("events") {
        Some(serde_json::Value::Array(items)) if (1..=MAX_BATCH_EVENTS).contains(&items.len()) => Some(items),
        Some(serde_json::Value::Array(_)) => {
            errors.push(FieldError::new("events", format!("must hold 1 to {MAX_BATCH_EVENTS} events")));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("events", "must be an array of events"));
            None
        }
        None => {
            errors.push(FieldError::new("events", "is required"));
            None
        }
    };
    match items {
        Some(items) if errors.is_empty() => {
            item_duplicates.resize_with(items.len(), Vec::new);
            Ok(items
                .into_iter()
                .zip(item_duplicates)
                .map(|(item, duplicates)| if duplicates.is_empty() { Ok(item) } else { Err(duplicates) })
                .collect())
        }
        _ => Err(ApiError::Validation(errors)),
    }
}

//! Publishing accepted events to Pub/Sub (`INGEST_MODE=pubsub`), with Pub/Sub's REST
//! `topics.publish` over the HTTP client and credentials the Google Secret Manager client
//! already links, rather than the gRPC `google-cloud-pubsub` crate, which would add about
//! 13 MB of tonic to a binary budgeted at 8 MB. One request publishes a whole batch; an event
//! is acknowledged (202) only once Pub/Sub has returned an id for every message.

use std::time::Duration;

use base64::Engine;
use domain::{EventMessage, NewEvent};
use google_cloud_auth::credentials::AccessTokenCredentials;
use platform::{Config, ConfigError, StartupError};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

/// How long one publish may take before the request is answered 503.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a publish failed. Every kind but the first is worth retrying (503).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot serialise the message")]
    Serialise(#[source] serde_json::Error),
    #[error("no access token for Pub/Sub")]
    Token(#[source] google_cloud_auth::errors::CredentialsError),
    #[error("the publish request failed")]
    Send(#[source] reqwest::Error),
    #[error("Pub/Sub answered {0}")]
    Status(reqwest::StatusCode),
    #[error("unreadable publish reply")]
    Reply(#[source] reqwest::Error),
    #[error("Pub/Sub acknowledged {acked} of {sent} messages")]
    Partial { acked: usize, sent: usize },
}

impl domain::Retryable for PublishError {
    fn is_retryable(&self) -> bool {
        !matches!(self, Self::Serialise(_))
    }
}

/// A client for one topic.
#[derive(Debug, Clone)]
pub struct Publisher {
    http: reqwest::Client,
    url: String,
    /// None for the emulator, which takes no credentials.
    credentials: Option<AccessTokenCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishResponse {
    #[serde(default)]
    message_ids: Vec<String>,
}

impl Publisher {
    /// A publisher for `PUBSUB_TOPIC`: at `PUBSUB_EMULATOR_HOST` without credentials if set,
    /// else at Google's endpoint with Application Default Credentials.
    pub fn from_config(config: &Config) -> Result<Self, StartupError> {
        let topic = config
            .pubsub_topic
            .as_deref()
            .ok_or(ConfigError::Missing { var: "PUBSUB_TOPIC", expected: "projects/<project>/topics/<topic>" })?;
        let (base, credentials) = match &config.pubsub_emulator_host {
            Some(host) => (format!("http://{host}"), None),
            None => {
                let credentials = google_cloud_auth::credentials::Builder::default()
                    .with_scopes(["https://www.googleapis.com/auth/pubsub"])
                    .build_access_token_credentials()
                    .map_err(|e| StartupError::dependency("no Google credentials to publish to PUBSUB_TOPIC", e))?;
                ("https://pubsub.googleapis.com".to_owned(), Some(credentials))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(PUBLISH_TIMEOUT)
            .build()
            .map_err(|e| StartupError::dependency("no HTTP client to publish to PUBSUB_TOPIC", e))?;
        Ok(Self { http, url: format!("{base}/v1/{topic}:publish"), credentials })
    }

    /// Publishes one message per event; Ok only when Pub/Sub stored every one of them. Each
    /// message carries the W3C `traceparent` of this publish's span, so the worker's spans
    /// join the same trace.
    pub async fn publish(&self, events: &[NewEvent]) -> Result<(), PublishError> {
        let span = tracing::info_span!(
            "pubsub.publish",
            otel.kind = "producer",
            messaging.system = "gcp_pubsub",
            messaging.batch.message_count = events.len(),
        );
        let traceparent = platform::traces::traceparent(&span);
        self.send(events, traceparent.as_deref()).instrument(span).await
    }

    async fn send(&self, events: &[NewEvent], traceparent: Option<&str>) -> Result<(), PublishError> {
        let messages = events
            .iter()
            .map(|event| {
                let data = serde_json::to_vec(&EventMessage::from(event)).map_err(PublishError::Serialise)?;
                let mut attributes =
                    json!({"tenant_id": event.tenant_id().as_str(), "event_id": event.event_id().as_str()});
                if let Some(traceparent) = traceparent {
                    attributes["traceparent"] = json!(traceparent);
                }
                Ok(json!({"data": base64::engine::general_purpose::STANDARD.encode(data), "attributes": attributes}))
            })
            .collect::<Result<Vec<serde_json::Value>, PublishError>>()?;
        let mut request = self.http.post(&self.url).json(&json!({ "messages": messages }));
        if let Some(credentials) = &self.credentials {
            let token = credentials.access_token().await.map_err(PublishError::Token)?;
            request = request.bearer_auth(token.token);
        }
        let response = request.send().await.map_err(PublishError::Send)?;
        let status = response.status();
        if !status.is_success() {
            return Err(PublishError::Status(status));
        }
        let published: PublishResponse = response.json().await.map_err(PublishError::Reply)?;
        if published.message_ids.len() != events.len() {
            return Err(PublishError::Partial { acked: published.message_ids.len(), sent: events.len() });
        }
        Ok(())
    }
}

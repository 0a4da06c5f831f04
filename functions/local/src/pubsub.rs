//! The Pub/Sub emulator's topology for async mode, mirroring `infra/pubsub.tf`: the events
//! topic, a push subscription delivering to the worker route, and a dead-letter topic (with a
//! pull subscription to inspect it) taking what fails five deliveries.

use serde_json::json;

/// Why the emulator's topology could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("PUT {path} failed")]
    Send {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("PUT {path} answered {status}: {body}")]
    Status { path: String, status: reqwest::StatusCode, body: String },
}

/// Names derived from the events topic.
#[derive(Debug, Clone)]
pub struct Topology {
    pub topic: String,
    pub dead_letter_topic: String,
    pub push_subscription: String,
    pub dead_letter_subscription: String,
}

impl Topology {
    /// For `topic` (`projects/<p>/topics/<t>`).
    pub fn for_topic(topic: &str) -> Self {
        let project = topic.split('/').take(2).collect::<Vec<_>>().join("/");
        let name = topic.rsplit('/').next().unwrap_or("events");
        Self {
            topic: topic.to_owned(),
            dead_letter_topic: format!("{topic}-dead-letter"),
            push_subscription: format!("{project}/subscriptions/{name}-push"),
            dead_letter_subscription: format!("{project}/subscriptions/{name}-dead-letter"),
        }
    }

    /// Creates whatever is missing on the emulator at `host`, pushing to `push_endpoint`;
    /// a message goes to the dead-letter topic after `max_delivery_attempts` failed pushes.
    pub async fn ensure(
        &self,
        host: &str,
        push_endpoint: &str,
        max_delivery_attempts: u32,
    ) -> Result<(), TopologyError> {
        let http = reqwest::Client::new();
        let put = |path: &str, body: serde_json::Value| {
            let request = http.put(format!("http://{host}/v1/{path}")).json(&body);
            let path = path.to_owned();
            async move {
                let response =
                    request.send().await.map_err(|source| TopologyError::Send { path: path.clone(), source })?;
                // 409: it exists already, from an earlier run.
                match response.status() {
                    status if status.is_success() || status == reqwest::StatusCode::CONFLICT => Ok(()),
                    status => {
                        Err(TopologyError::Status { path, status, body: response.text().await.unwrap_or_default() })
                    }
                }
            }
        };
        put(&self.topic, json!({})).await?;
        put(&self.dead_letter_topic, json!({})).await?;
        put(
            &self.push_subscription,
            json!({
                "topic": self.topic,
                "ackDeadlineSeconds": 10,
                "pushConfig": {"pushEndpoint": push_endpoint},
                "deadLetterPolicy": {"deadLetterTopic": self.dead_letter_topic, "maxDeliveryAttempts": max_delivery_attempts},
                "retryPolicy": {"minimumBackoff": "1s", "maximumBackoff": "10s"},
            }),
        )
        .await?;
        put(&self.dead_letter_subscription, json!({"topic": self.dead_letter_topic})).await
    }
}

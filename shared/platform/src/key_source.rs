//! Where the tenant key document comes from: `TENANT_KEYS` (the JSON itself, for local runs)
//! or `TENANT_KEYS_SECRET` (a Secret Manager version, in the cloud). A secret is read with the
//! official client and Application Default Credentials (on Cloud Run, the metadata server),
//! then read again every `TENANT_KEYS_REFRESH_SECS` so a new tenant or a rotated key works
//! without a redeploy. A failed refresh keeps the last good set; a failed first read stops
//! start-up. Neither the document nor any key is ever logged.

use std::time::Duration;

use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_secretmanager_v1::client::SecretManagerService;

use crate::startup::StartupError;
use crate::tenant_keys::KeyDocumentError;
use crate::{Config, ConfigError, TenantKeys};

/// Why the key document could not be read from Secret Manager. Never carries the document.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    #[error("cannot create the Secret Manager client")]
    Client(#[source] google_cloud_gax::client_builder::Error),
    #[error("bad backoff policy")]
    Backoff(#[source] google_cloud_gax::exponential_backoff::Error),
    #[error("no answer from Secret Manager within {} s", READ_TIMEOUT.as_secs())]
    Timeout,
    #[error("reading the secret failed")]
    Read(#[source] google_cloud_secretmanager_v1::Error),
    #[error("the secret's payload is not UTF-8 text")]
    NotText,
    #[error("the secret holds an invalid key document")]
    Document(#[source] KeyDocumentError),
}

/// How long one read of the secret may take, retries included. Pointed at an unreachable
/// endpoint the client would otherwise wait far longer.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A Secret Manager version that holds the key document.
#[derive(Clone)]
pub struct SecretKeySource {
    client: SecretManagerService,
    name: String,
}

impl std::fmt::Debug for SecretKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeySource").field("name", &self.name).finish_non_exhaustive()
    }
}

impl SecretKeySource {
    /// A client for `name` (`projects/<p>/secrets/<s>/versions/<v>`), at `endpoint` if given.
    pub async fn connect(name: &str, endpoint: Option<&str>) -> Result<Self, KeySourceError> {
        // A few quick retries within one read; a refresh that still fails waits for the next tick.
        let retry = Aip194Strict.with_attempt_limit(3).with_time_limit(READ_TIMEOUT);
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(Duration::from_millis(200))
            .with_maximum_delay(Duration::from_secs(2))
            .build()
            .map_err(KeySourceError::Backoff)?;
        let mut builder = SecretManagerService::builder()
            .with_attempt_timeout(READ_TIMEOUT)
            .with_retry_policy(retry)
            .with_backoff_policy(backoff);
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let client = builder.build().await.map_err(KeySourceError::Client)?;
        Ok(Self { client, name: name.to_owned() })
    }

    /// The secret's payload, as text.
    pub async fn read(&self) -> Result<String, KeySourceError> {
        let request = self.client.access_secret_version().set_name(&self.name).send();
        let response = tokio::time::timeout(READ_TIMEOUT, request)
            .await
            .map_err(|_| KeySourceError::Timeout)?
            .map_err(KeySourceError::Read)?;
        let data = response.payload.map(|p| p.data).unwrap_or_default();
        String::from_utf8(data.to_vec()).map_err(|_| KeySourceError::NotText)
    }

    /// The key set the secret holds now.
    pub async fn read_keys(&self) -> Result<TenantKeys, KeySourceError> {
        TenantKeys::from_json(&self.read().await?).map_err(KeySourceError::Document)
    }

    /// Reads the secret and replaces `keys` with it every `every`, forever. Failures are
    /// logged and leave the current keys in force.
    pub async fn refresh_forever(self, keys: TenantKeys, every: Duration) {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            ticker.tick().await;
            let outcome = match self.read().await {
                Ok(document) => keys.replace_from_json(&document).map_err(KeySourceError::Document),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => tracing::debug!(tenants = keys.tenants().len(), "tenant keys refreshed"),
                Err(err) => tracing::warn!(
                    secret = %self.name,
                    error = %crate::error::Chain(&err),
                    "tenant keys refresh failed; keeping the current keys"
                ),
            }
        }
    }
}

/// Loads the key set the config names. With `TENANT_KEYS_SECRET`, also starts the background
/// refresh. `fallback` is used when neither variable is set (`local`'s demo tenants); deployed
/// functions pass `None` and refuse to start.
pub async fn load_tenant_keys(config: &Config, fallback: Option<&str>) -> Result<TenantKeys, StartupError> {
    match (&config.tenant_keys, &config.tenant_keys_secret) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict("TENANT_KEYS", "TENANT_KEYS_SECRET").into()),
        (Some(document), None) => Ok(parse(document, "TENANT_KEYS")?),
        (None, Some(name)) => {
            let source = SecretKeySource::connect(name, config.secret_manager_endpoint.as_deref()).await?;
            let keys = match source.read_keys().await {
                Err(KeySourceError::Document(e)) => return Err(invalid_document("TENANT_KEYS_SECRET", &e).into()),
                read => read?,
            };
            tracing::info!(secret = %name, tenants = keys.tenants().len(), refresh_secs = config.tenant_keys_refresh.as_secs(), "tenant keys loaded from Secret Manager");
            tokio::spawn(source.refresh_forever(keys.clone(), config.tenant_keys_refresh));
            Ok(keys)
        }
        (None, None) => match fallback {
            Some(document) => Ok(parse(document, "TENANT_KEYS")?),
            None => Err(ConfigError::Missing {
                var: "TENANT_KEYS",
                expected: r#"the key document, such as {"acme": ["key-1"]}, or TENANT_KEYS_SECRET naming a Secret Manager version that holds it"#,
            }
            .into()),
        },
    }
}

fn parse(document: &str, var: &'static str) -> Result<TenantKeys, ConfigError> {
    TenantKeys::from_json(document).map_err(|e| invalid_document(var, &e))
}

fn invalid_document(var: &'static str, err: &KeyDocumentError) -> ConfigError {
    ConfigError::Invalid { var, expected: format!("a valid key document, but {err}") }
}

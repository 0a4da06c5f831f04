#![doc = include_str!("../README.md")]

pub mod ambiguity;
pub mod auth;
pub mod error;
pub mod filters;
pub mod json_body;
pub mod key_source;
pub mod method;
pub mod parse_errors;
pub mod rate_limit;
pub mod server;
pub mod startup;
pub mod telemetry;
pub mod tenant_keys;
pub mod traces;

pub use auth::authenticate;
pub use error::{ApiError, FieldError};
pub use filters::with;
pub use server::{serve, shutdown_signal};
pub use settings::{self as config, Config, ConfigError};
pub use startup::{AppState, Clock, KeyPolicy, Process, StartupError};
pub use tenant_keys::{TenantId, TenantKeys};

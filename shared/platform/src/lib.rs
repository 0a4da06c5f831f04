#![doc = include_str!("../README.md")]

pub mod ambiguity;
pub mod auth;
pub mod config;
pub mod deployment;
pub mod error;
pub mod fields;
pub mod header;
pub mod json_body;
pub mod key_source;
pub mod method;
pub mod parse_errors;
pub mod rate_limit;
pub mod server;
pub mod telemetry;
pub mod tenant_keys;

pub use auth::authenticate;
pub use config::{Config, ConfigError};
pub use deployment::{AppState, Deployment};
pub use error::{ApiError, FieldError};
pub use server::{serve, shutdown_signal};
pub use tenant_keys::{TenantId, TenantKeys};

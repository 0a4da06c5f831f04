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

/// The allocator of every function: mimalloc, not the C library's. A request allocates and
/// frees many small objects (JSON values, strings, spans); glibc's malloc took about a quarter
/// of the `events` process's CPU in batch ingest, and musl's, which the shipped static binaries
/// would otherwise use, is slower still. Not under the fuzzer, whose sanitizers track the C
/// library's allocations.
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#![doc = include_str!("../README.md")]

mod connect;
mod counts;
mod error;
mod insert;
mod migrations;
mod pool;
mod prepared;
pub mod schema;
mod writer;

pub use connect::{ConnectOptions, UrlError};
pub use counts::{Bucket, count_buckets, count_in_window};
pub use error::DataError;
pub use insert::{Event, InsertOutcome, find_event, insert_idempotent};
pub use migrations::run_migrations;
pub use pool::{Pool, PoolConfig, connect_pool, ping};
pub use writer::BatchingWriter;

#![doc = include_str!("../README.md")]

mod connect;
mod error;
mod events;
mod message;
mod migrations;
mod pool;
mod prepared;
pub mod schema;
mod writer;

pub use connect::{ConnectOptions, UrlError};
pub use error::DataError;
pub use events::{
    Bucket, Event, InsertOutcome, Interval, NewEvent, count_buckets, count_in_window, find_event, insert_idempotent,
    payload_fingerprint, truncate_to_micros,
};
pub use message::EventMessage;
pub use migrations::run_migrations;
pub use pool::{Pool, PoolConfig, connect_pool, ping};
pub use writer::BatchingWriter;

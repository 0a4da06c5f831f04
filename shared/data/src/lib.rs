#![doc = include_str!("../README.md")]

mod connect;
mod counts;
mod erasure;
mod error;
mod insert;
mod maintenance;
mod migrations;
mod pool;
mod prepared;
pub mod schema;
mod writer;

pub use connect::{ConnectOptions, UrlError};
pub use counts::{Bucket, count_buckets, count_in_window};
pub use erasure::{ErasureReport, erase_tenant};
pub use error::DataError;
pub use insert::{Event, InsertOutcome, find_event, insert_idempotent};
pub use maintenance::{MaintenancePlan, MaintenanceReport, maintain, partition_name};
pub use migrations::run_migrations;
pub use pool::{Plans, Pool, PoolConfig, connect_pool, connect_pool_planning, ping};
pub use writer::{BatchingWriter, MAX_GROUP_COMMIT};

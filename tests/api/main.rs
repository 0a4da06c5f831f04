//! Black-box tests: the service's real routes served on port 0, and its real binaries, over
//! HTTP, against a real PostgreSQL. Each test gets its own database, cloned from a migrated
//! template; see `harness`.

mod ambiguity;
mod auth;
mod batch;
mod binaries;
mod erasure;
mod harness;
mod health;
mod ingest;
mod lifecycle;
mod logging;
mod metrics;
mod outage;
mod pubsub;
mod rollups;
mod secrets;
mod statements;
mod tls;
mod traces;
mod upgrade;
mod validation;
mod warehouse;
mod worker;

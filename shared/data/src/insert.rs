//! Storing events exactly once: the idempotent insert, and reading a stored event back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::NewEvent;
use tracing::Instrument;

use crate::error::Inconsistency;
use crate::prepared::prepared;
use crate::schema::{event_identities, event_log};
use crate::{DataError, Pool};

/// A stored event.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = event_log)]
pub struct Event {
    pub tenant_id: String,
    pub event_id: String,
    pub event_name: String,
    pub occurred_at: DateTime<Utc>,
    pub properties: Option<serde_json::Value>,
    pub payload_hash: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

/// What an idempotent insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new row was written.
    Created,
    /// A row with this identity and the same payload already existed; nothing was written.
    Duplicate,
    /// A row with this identity but a different payload already existed; nothing was written.
    KeyReused,
}

/// Inserts each event unless its `(tenant_id, event_id)` exists, and says what happened to
/// each, in order. All events go to PostgreSQL in one statement: identities are claimed with
/// `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`, so concurrent identical requests
/// create exactly one row, and the stored fingerprint of each identity already taken is read
/// in the same statement to tell a replay from a reused key. A single event is a batch of one.
pub async fn insert_idempotent(pool: &Pool, events: &[NewEvent]) -> Result<Vec<InsertOutcome>, DataError> {
    let (outcomes, pool_wait) = insert_timed(pool, events).await?;
    tracing::Span::current().record("pool_wait_ms", pool_wait.as_secs_f64() * 1000.0);
    Ok(outcomes)
}

/// `insert_idempotent`, also saying how long it waited for a pooled connection; in a
/// `db.insert` span.
pub(crate) async fn insert_timed(
    pool: &Pool,
    events: &[NewEvent],
) -> Result<(Vec<InsertOutcome>, std::time::Duration), DataError> {
    let span = tracing::info_span!(
        "db.insert",
        otel.kind = "client",
        db.system = "postgresql",
        db.operation.name = "INSERT",
        events = events.len(),
        pool_wait_ms = tracing::field::Empty,
    );
    let waiting = std::time::Instant::now();
    let outcomes = async {
        let mut conn = pool.get().await?;
        let pool_wait = waiting.elapsed();
        tracing::Span::current().record("pool_wait_ms", pool_wait.as_secs_f64() * 1000.0);
        insert_on(&mut conn, events).await.map(|outcomes| (outcomes, pool_wait))
    }
    .instrument(span)
    .await?;
    Ok(outcomes)
}

async fn insert_on(conn: &mut AsyncPgConnection, events: &[NewEvent]) -> Result<Vec<InsertOutcome>, DataError> {
    // The first occurrence of each identity is sent; later ones are judged against it.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
    let unique: Vec<usize> =
        (0..events.len()).filter(|&i| first_of.entry(identity(&events[i])).or_insert(i) == &i).collect();
    let mut stored: Vec<Option<StoredAs>> = vec![None; events.len()];
    let mut pending = unique;
    // A conflicting identity can be invisible to the statement's snapshot when a concurrent
    // transaction committed it after the statement began; a second statement sees it. It can
    // vanish only if deleted (expiry, erasure); then the insert is simply tried again.
    for _ in 0..3 {
        if pending.is_empty() {
            break;
        }
        let rows = insert_unnest(conn, events, &pending).await?;
        let mut unresolved = Vec::new();
        for row in rows {
            let i = pending[usize::try_from(row.ord - 1).unwrap_or(usize::MAX)];
            match (row.created, row.stored_hash) {
                (true, _) => stored[i] = Some(StoredAs::CreatedHere),
                (false, Some(hash)) => stored[i] = Some(StoredAs::Existing(hash)),
                (false, None) => unresolved.push(i),
            }
        }
        pending = unresolved;
    }
    if !pending.is_empty() {
        return Err(DataError::unavailable(Inconsistency::ConflictUnresolved));
    }
    Ok(events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let first = first_of[&identity(event)];
            match &stored[first] {
                Some(StoredAs::CreatedHere) if first == i => InsertOutcome::Created,
                Some(StoredAs::CreatedHere) if events[first].fingerprint() == event.fingerprint() => {
                    InsertOutcome::Duplicate
                }
                Some(StoredAs::Existing(hash)) if event.matches_stored(hash) => InsertOutcome::Duplicate,
                _ => InsertOutcome::KeyReused,
            }
        })
        .collect())
}

#[derive(Debug, Clone)]
enum StoredAs {
    CreatedHere,
    Existing(Vec<u8>),
}

#[derive(QueryableByName)]
struct InsertedRow {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(sql_type = Bool)]
    created: bool,
    #[diesel(sql_type = Nullable<Bytea>)]
    stored_hash: Option<Vec<u8>>,
}

/// One statement whatever the batch size, so PostgreSQL plans it once per connection. It claims
/// each identity in `event_identities` and writes the events whose claim succeeded into
/// `event_log`, routed to their day's partition; a data-modifying CTE runs whether or not it
/// is read, and the whole statement commits or fails as one.
const INSERT_UNNEST: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::bytea[])
        WITH ORDINALITY AS t(tenant_id, event_id, event_name, occurred_at, properties, payload_hash, ord)
), claimed AS (
    INSERT INTO event_identities (tenant_id, event_id, occurred_at, payload_hash)
    SELECT tenant_id, event_id, occurred_at, payload_hash FROM input
    -- One lock order for every statement, so overlapping concurrent batches cannot deadlock.
    ORDER BY tenant_id, event_id
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING tenant_id, event_id
), stored AS (
    INSERT INTO event_log (tenant_id, event_id, event_name, occurred_at, properties, payload_hash)
    SELECT i.tenant_id, i.event_id, i.event_name, i.occurred_at, i.properties, i.payload_hash
    FROM input i JOIN claimed c ON c.tenant_id = i.tenant_id AND c.event_id = i.event_id
)
SELECT i.ord AS ord,
       c.event_id IS NOT NULL AS created,
       CASE WHEN c.event_id IS NULL THEN
           (SELECT d.payload_hash FROM event_identities d WHERE d.tenant_id = i.tenant_id AND d.event_id = i.event_id)
       END AS stored_hash
FROM input i
LEFT JOIN claimed c ON c.tenant_id = i.tenant_id AND c.event_id = i.event_id";

/// Runs the insert, again if it raced maintenance attaching a day's partition: a row routed to
/// the default partition just before that day's partition was attached is refused there
/// (PostgreSQL rechecks the default partition's constraint), the statement writes nothing, and
/// the same statement routes the row to the new partition.
async fn insert_unnest(
    conn: &mut AsyncPgConnection,
    events: &[NewEvent],
    which: &[usize],
) -> Result<Vec<InsertedRow>, DataError> {
    let mut attempts = 0;
    loop {
        match insert_unnest_once(conn, events, which).await {
            Err(diesel::result::Error::DatabaseError(_, info))
                if attempts < 3 && info.message().contains("violates partition constraint") =>
            {
                attempts += 1;
            }
            outcome => return Ok(outcome?),
        }
    }
}

async fn insert_unnest_once(
    conn: &mut AsyncPgConnection,
    events: &[NewEvent],
    which: &[usize],
) -> Result<Vec<InsertedRow>, diesel::result::Error> {
    let pick = |i: &usize| &events[*i];
    let tenant_ids: Vec<&str> = which.iter().map(|i| pick(i).tenant_id().as_str()).collect();
    let event_ids: Vec<&str> = which.iter().map(|i| pick(i).event_id().as_str()).collect();
    let names: Vec<&str> = which.iter().map(|i| pick(i).event_name().as_str()).collect();
    let times: Vec<DateTime<Utc>> = which.iter().map(|i| pick(i).occurred_at()).collect();
    let properties: Vec<Option<&serde_json::Value>> = which.iter().map(|i| pick(i).properties()).collect();
    let hashes: Vec<&[u8]> = which.iter().map(|i| pick(i).fingerprint().as_bytes().as_slice()).collect();
    prepared(
        diesel::sql_query(INSERT_UNNEST)
            .bind::<Array<Text>, _>(tenant_ids)
            .bind::<Array<Text>, _>(event_ids)
            .bind::<Array<Text>, _>(names)
            .bind::<Array<Timestamptz>, _>(times)
            .bind::<Array<Nullable<Jsonb>>, _>(properties)
            .bind::<Array<Bytea>, _>(hashes),
    )
    .load(conn)
    .await
}

/// An event's identity, the key idempotency is judged by.
fn identity(event: &NewEvent) -> (&str, &str) {
    (event.tenant_id().as_str(), event.event_id().as_str())
}

/// The stored event with this identity, if any: found through its identity, which says the
/// partition (by its time) to look in.
pub async fn find_event(pool: &Pool, tenant_id: &str, event_id: &str) -> Result<Option<Event>, DataError> {
    let mut conn = pool.get().await?;
    Ok(event_log::table
        .inner_join(
            event_identities::table.on(event_identities::tenant_id
                .eq(event_log::tenant_id)
                .and(event_identities::event_id.eq(event_log::event_id))
                .and(event_identities::occurred_at.eq(event_log::occurred_at))),
        )
        .filter(event_identities::tenant_id.eq(tenant_id).and(event_identities::event_id.eq(event_id)))
        .select(Event::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

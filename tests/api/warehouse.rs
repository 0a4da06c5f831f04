//! What the warehouse export reads: the `event_export` publication, decoded with `pgoutput`
//! from a logical replication slot on a server run with `wal_level = logical` (as Cloud SQL is
//! with `cloudsql.logical_decoding`), the way Datastream reads it. Every event a client stored
//! comes out once, under `event_log`, whatever partition it landed in (a day's, a new one, the
//! default one and then its own day's); replays and refused events never do; an erasure comes
//! out as deletes; and maintenance sets up the export's user and slot.

use std::collections::{BTreeSet, HashMap};

use chrono::{TimeDelta, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Bytea, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;

use crate::harness::{ACME_KEY, GLOBEX_KEY, TestApp, send};

const SLOT: &str = "event_export";
const USER: &str = "datastream";

/// One change of `pgoutput`: its relation and the row's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Insert { relation: String, tenant_id: String, event_id: String },
    Delete { relation: String, tenant_id: String, event_id: String },
}

#[derive(QueryableByName)]
struct Message {
    #[diesel(sql_type = Bytea)]
    data: Vec<u8>,
}

/// A cursor over one pgoutput message (protocol version 1).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.0[0];
        self.0 = &self.0[1..];
        b
    }
    fn int(&mut self, width: usize) -> i64 {
        let (head, rest) = self.0.split_at(width);
        self.0 = rest;
        head.iter().fold(0i64, |n, b| (n << 8) | i64::from(*b))
    }
    fn string(&mut self) -> String {
        let end = self.0.iter().position(|b| *b == 0).expect("a C string");
        let text = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        text
    }
    /// TupleData: the text of each column (None for null or unchanged).
    fn tuple(&mut self) -> Vec<Option<String>> {
        let columns = self.int(2);
        (0..columns)
            .map(|_| match self.byte() {
                b't' => {
                    let len = usize::try_from(self.int(4)).expect("length");
                    let (text, rest) = self.0.split_at(len);
                    self.0 = rest;
                    Some(String::from_utf8_lossy(text).into_owned())
                }
                _ => None,
            })
            .collect()
    }
}

/// Consumes the slot: every insert and delete it holds, in commit order.
async fn changes(conn: &mut AsyncPgConnection) -> Vec<Change> {
    let messages: Vec<Message> = diesel::sql_query(format!(
        "SELECT data FROM pg_logical_slot_get_binary_changes('{SLOT}', NULL, NULL, \
         'proto_version', '1', 'publication_names', 'event_export')"
    ))
    .load(conn)
    .await
    .expect("read the slot");
    // relation id -> (name, columns)
    let mut relations: HashMap<i64, (String, Vec<String>)> = HashMap::new();
    let mut out = Vec::new();
    for message in messages {
        let mut r = Reader(&message.data);
        match r.byte() {
            b'R' => {
                let id = r.int(4);
                let _namespace = r.string();
                let name = r.string();
                let _identity = r.byte();
                let columns = (0..r.int(2))
                    .map(|_| {
                        let _flags = r.byte();
                        let column = r.string();
                        let (_type, _modifier) = (r.int(4), r.int(4));
                        column
                    })
                    .collect();
                relations.insert(id, (name, columns));
            }
            kind @ (b'I' | b'D') => {
                let id = r.int(4);
                let _new_or_old = r.byte();
                let row = r.tuple();
                let (relation, columns) = relations.get(&id).cloned().expect("a relation message first");
                let column = |name: &str| {
                    let at = columns.iter().position(|c| c == name).expect("column");
                    row[at].clone().expect("a value")
                };
                let (tenant_id, event_id) = (column("tenant_id"), column("event_id"));
                out.push(if kind == b'I' {
                    Change::Insert { relation, tenant_id, event_id }
                } else {
                    Change::Delete { relation, tenant_id, event_id }
                });
            }
            _ => {}
        }
    }
    out
}

/// What a reader of the changes holds at the end: each identity once, deletes applied.
fn net(changes: &[Change]) -> BTreeSet<(String, String)> {
    let mut held = BTreeSet::new();
    for change in changes {
        match change {
            Change::Insert { tenant_id, event_id, .. } => {
                held.insert((tenant_id.clone(), event_id.clone()));
            }
            Change::Delete { tenant_id, event_id, .. } => {
                held.remove(&(tenant_id.clone(), event_id.clone()));
            }
        }
    }
    held
}

async fn stored(conn: &mut AsyncPgConnection) -> BTreeSet<(String, String)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        tenant_id: String,
        #[diesel(sql_type = Text)]
        event_id: String,
    }
    let rows: Vec<Row> = diesel::sql_query("SELECT tenant_id, event_id FROM event_log").load(conn).await.expect("rows");
    rows.into_iter().map(|r| (r.tenant_id, r.event_id)).collect()
}

#[tokio::test]
async fn the_export_sees_each_stored_event_once_and_the_erasures() {
    // Durable commits: decoding reads the WAL only as far as it is flushed.
    let server = devdb::Cluster::start_with(&[("wal_level", "logical"), ("synchronous_commit", "on")])
        .expect("PostgreSQL with logical decoding");
    let url = server.url("postgres");
    data::run_migrations(&url).await.expect("migrate");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    // A deployment past its first retention period (every day its own partition), and the
    // export's user as Terraform creates it.
    conn.batch_execute(
        "ALTER TABLE event_log DETACH PARTITION events; DROP TABLE events;
         UPDATE event_log_cutover SET cutover = '2000-01-01T00:00:00Z';
         CREATE ROLE datastream LOGIN PASSWORD 'not-a-real-password';",
    )
    .await
    .expect("set up");
    // Events up to two days ahead are accepted, so one can land in tomorrow's partition.
    let app = TestApp::spawn_with(&url, &[("MAX_FUTURE_SKEW_SECS", "172800")], None).await;
    let plan = data::MaintenancePlan {
        ahead_days: 1,
        export_slot: Some(SLOT.into()),
        export_user: Some(USER.into()),
        ..Default::default()
    };
    let report = data::maintain(&app.pool, Utc::now(), &plan).await.expect("maintenance");
    assert!(report.export.iter().any(|n| n.contains("slot event_export created")), "{report:?}");
    let may = app
        .scalar(
            "SELECT (has_table_privilege('datastream', 'event_log', 'SELECT') \
             AND (SELECT rolreplication FROM pg_roles WHERE rolname = 'datastream'))::int::bigint AS n",
        )
        .await;
    assert_eq!(may, 1, "the export's user may read the log and replicate");

    let now = Utc::now();
    let at = |days: i64| (now + TimeDelta::days(days)).to_rfc3339();
    let post = |key: &'static str, id: &str, timestamp: String| {
        let body = json!({"event_name": "signup", "timestamp": timestamp});
        let request =
            app.client.post(app.url("/events")).header("X-API-Key", key).header("Idempotency-Key", id).json(&body);
        async move { send(request).await.0 }
    };
    assert_eq!(post(ACME_KEY, "a-1", at(0)).await, 201);
    assert_eq!(post(ACME_KEY, "a-2", at(0)).await, 201);
    assert_eq!(post(GLOBEX_KEY, "g-1", at(0)).await, 201);
    assert_eq!(post(ACME_KEY, "a-1", at(0)).await, 200, "a replay");
    assert_eq!(post(ACME_KEY, "a-2", at(-1)).await, 422, "a reused key");
    assert_eq!(post(ACME_KEY, "a-3", "yesterday".into()).await, 400, "refused");
    let batch = json!({"events": [
        {"event_name": "signup", "timestamp": at(0), "event_id": "b-1"},
        {"event_name": "signup", "timestamp": at(0), "event_id": "a-1"},
        {"event_name": "", "timestamp": at(0), "event_id": "b-bad"},
    ]});
    let request = app.client.post(app.url("/events/batch")).header("X-API-Key", ACME_KEY).json(&batch);
    assert_eq!(send(request).await.0, 200);
    // A day whose partition maintenance made ahead, and one with none yet (the default
    // partition, until maintenance gives it its own).
    assert_eq!(post(ACME_KEY, "a-tomorrow", at(1)).await, 201);
    assert_eq!(post(ACME_KEY, "a-old", at(-20)).await, 201);
    let moved = data::maintain(&app.pool, Utc::now(), &plan).await.expect("maintenance");
    assert_eq!(moved.moved_from_default, 1, "{moved:?}");

    let seen = changes(&mut conn).await;
    assert!(seen.iter().all(|c| matches!(c, Change::Insert { relation, .. } | Change::Delete { relation, .. } if relation == "event_log")), "{seen:#?}");
    let expected: BTreeSet<(String, String)> = [
        ("acme", "a-1"),
        ("acme", "a-2"),
        ("globex", "g-1"),
        ("acme", "b-1"),
        ("acme", "a-tomorrow"),
        ("acme", "a-old"),
    ]
    .iter()
    .map(|(t, e)| (t.to_string(), e.to_string()))
    .collect();
    assert_eq!(stored(&mut conn).await, expected);
    assert_eq!(net(&seen), expected, "each stored event, once; nothing else");
    let inserted =
        |id: &str| seen.iter().filter(|c| matches!(c, Change::Insert { event_id, .. } if event_id == id)).count();
    for id in ["a-1", "a-2", "g-1", "b-1", "a-tomorrow"] {
        assert_eq!(inserted(id), 1, "{id} comes out once");
    }
    // Moved out of the default partition: deleted there and inserted in its day, in that order.
    assert_eq!(inserted("a-old"), 2);

    // An erasure comes out as deletes, so the warehouse copy is erased too.
    let erased =
        data::erase_tenant(&app.pool, &domain::TenantId::parse("acme").expect("valid"), Utc::now(), 100, |_| {})
            .await
            .expect("erase");
    assert_eq!(erased.events, 5);
    let after = changes(&mut conn).await;
    let deleted: BTreeSet<String> = after
        .iter()
        .filter_map(|c| match c {
            Change::Delete { tenant_id, event_id, .. } if tenant_id == "acme" => Some(event_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, ["a-1", "a-2", "b-1", "a-tomorrow", "a-old"].iter().map(|s| s.to_string()).collect());
    drop(app);
    drop(conn);
}

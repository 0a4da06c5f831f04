//! The data crate's raw statements are prepared once per connection and reused, not parsed and
//! planned again on every call (diesel's `sql_query` alone would never cache them).

use chrono::{DateTime, TimeDelta, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use data::PoolConfig;
use domain::{EventName, Interval, TenantId};

use crate::harness::{TestDatabase, new_event};

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = Text)]
    statement: String,
    #[diesel(sql_type = BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = BigInt)]
    custom_plans: i64,
}

#[tokio::test]
async fn insert_and_counts_reuse_one_prepared_statement_each() {
    let db = TestDatabase::create().await;
    // One connection, so every call below runs on the session whose statements are listed.
    let pool = data::connect_pool(&db.url, &PoolConfig { max_size: 1, ..PoolConfig::default() }).expect("url");
    let from: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().expect("valid");
    let to = from + TimeDelta::hours(3);
    let (acme, tick) = (TenantId::parse("acme").expect("valid"), EventName::parse("tick").expect("valid"));
    for i in 0..7 {
        let event = new_event("acme", &format!("e-{i}"), "tick", from + TimeDelta::minutes(i), None);
        data::insert_idempotent(&pool, &[event]).await.expect("insert");
        assert_eq!(data::count_in_window(&pool, &acme, &tick, from, to).await.expect("count"), i + 1);
        let buckets = data::count_buckets(&pool, &acme, &tick, from, to, Interval::Hour).await.expect("buckets");
        assert_eq!(buckets.iter().map(|b| b.count).sum::<i64>(), i + 1);
    }

    let mut conn = pool.get().await.expect("connection");
    let prepared: Vec<Prepared> = diesel::sql_query(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements ORDER BY statement",
    )
    .load(&mut *conn)
    .await
    .expect("list prepared statements");
    let uses = |needle: &str| -> Vec<i64> {
        prepared.iter().filter(|p| p.statement.contains(needle)).map(|p| p.generic_plans + p.custom_plans).collect()
    };
    assert_eq!(uses("INSERT INTO event_identities"), vec![7], "one insert statement, run 7 times");
    assert_eq!(uses("COALESCE(sum(n), 0)"), vec![7], "one window count statement, run 7 times");
    assert_eq!(uses("GROUP BY b ORDER BY b"), vec![7], "one bucket count statement, run 7 times");
}

/// How many generic and custom plans the insert statement got on `pool`'s one connection
/// after 7 single-event inserts.
async fn insert_plans(pool: &data::Pool) -> (i64, i64) {
    let at: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().expect("valid");
    for i in 0..7 {
        let event = new_event("acme", &format!("e-{i}"), "tick", at + TimeDelta::minutes(i), None);
        data::insert_idempotent(pool, &[event]).await.expect("insert");
    }
    let mut conn = pool.get().await.expect("connection");
    let prepared: Vec<Prepared> = diesel::sql_query(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE '%INSERT INTO event_identities%' AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .load(&mut *conn)
    .await
    .expect("list prepared statements");
    assert_eq!(prepared.len(), 1, "one insert statement");
    (prepared[0].generic_plans, prepared[0].custom_plans)
}

#[tokio::test]
async fn ingest_pools_plan_the_insert_once() {
    let config = PoolConfig { max_size: 1, ..PoolConfig::default() };
    // PostgreSQL's default plans a one-event insert anew on every execution: what the ingest
    // processes' pools avoid.
    let db = TestDatabase::create().await;
    let auto = data::connect_pool(&db.url, &config).expect("url");
    let (_, custom) = insert_plans(&auto).await;
    assert_eq!(custom, 7, "with plan_cache_mode = auto every single-event insert is planned anew");

    let db = TestDatabase::create().await;
    let generic = data::connect_pool_planning(&db.url, &config, data::Plans::Generic).expect("url");
    assert_eq!(insert_plans(&generic).await, (7, 0), "one generic plan, reused by every insert");
}

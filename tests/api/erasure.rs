//! Tenant erasure with the real `migrate erase-tenant`, while the erased tenant and another keep
//! sending: a first run is killed midway, a second finishes the job, its report matches what it
//! removed, nothing the tenant stored before remains (events, identities, rollups), what it
//! stored since is kept and counted, and the other tenant is untouched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::harness::{ACME_KEY, GLOBEX_KEY, TestApp, TestDatabase, binary, send};

const WINDOW: (&str, &str) = ("2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z");

fn at(i: i64) -> String {
    let base: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().expect("valid");
    (base + TimeDelta::seconds(i * 613 % (29 * 86_400))).to_rfc3339()
}

/// Sends events for `key` until `stop`, counting the ones stored.
fn keep_sending(
    app: Arc<TestApp>,
    key: &'static str,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let mut sent = 0;
        while !AtomicBool::load(&stop, Ordering::SeqCst) {
            let body = json!({"event_name": "view", "timestamp": at(sent), "properties": {"i": sent}});
            let (status, reply) = app.post_event(Some(key), Some(&format!("{prefix}-{sent}")), &body).await;
            assert_eq!(status, 201, "{reply}");
            sent += 1;
        }
        sent
    })
}

async fn erase(url: &str, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(binary("migrate"))
        .env_clear()
        .env("DATABASE_URL", url)
        .arg("erase-tenant")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start migrate erase-tenant")
}

#[tokio::test]
async fn a_tenant_is_erased_while_it_and_another_keep_sending() {
    let db = TestDatabase::create_past_cutover().await;
    let url = db.url.clone();
    let app = Arc::new(TestApp::spawn_on(db, &[], platform::Clock::system()).await);
    data::maintain(&app.pool, Utc::now(), &data::MaintenancePlan { ahead_days: 1, ..Default::default() })
        .await
        .expect("maintenance");
    // Stored beforehand, over a month of days (a partition each once maintenance runs), by batch.
    for chunk in 0..4 {
        let events: Vec<Value> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                json!({"event_name": if n % 2 == 0 { "view" } else { "buy" }, "timestamp": at(n), "event_id": format!("pre-{n}")})
            })
            .collect();
        let request =
            app.client.post(app.url("/events/batch")).header("X-API-Key", ACME_KEY).json(&json!({"events": events}));
        assert_eq!(send(request).await.0, 200);
    }
    data::maintain(&app.pool, Utc::now(), &data::MaintenancePlan { ahead_days: 1, ..Default::default() })
        .await
        .expect("maintenance moves the month into partitions");
    let globex_before = app.count(GLOBEX_KEY, "view", WINDOW.0, WINDOW.1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acme = keep_sending(app.clone(), ACME_KEY, "acme-live", stop.clone());
    let globex = keep_sending(app.clone(), GLOBEX_KEY, "globex-live", stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A first run, killed once it has removed something.
    let mut first = erase(&url, &["acme", "--batch-size", "20"]).await;
    let mut output = tokio::io::BufReader::new(first.stdout.take().expect("stdout"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::io::AsyncBufReadExt::read_line(&mut output, &mut line).await.expect("read");
        assert!(n > 0, "the first run ended before erasing anything");
        if line.contains("erasing") && line.contains("events=") && !line.contains("events=0") {
            break;
        }
    }
    first.kill().await.expect("kill the first run");
    let left_after_kill =
        app.scalar("SELECT count(*) AS n FROM event_log WHERE tenant_id = 'acme' AND event_id LIKE 'pre-%'").await;
    assert!((1..2000).contains(&left_after_kill), "killed midway: {left_after_kill} of 2000 left");

    // The second run erases what was stored before `before`; wait until every transaction that
    // began before it has committed, then count what it must remove.
    let before = Utc::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stamp = before.to_rfc3339();
    let due =
        |table: &str| format!("SELECT count(*) AS n FROM {table} WHERE tenant_id = 'acme' AND received_at < '{stamp}'");
    let (events_due, identities_due) =
        (app.scalar(&due("event_log")).await, app.scalar(&due("event_identities")).await);
    let second = erase(&url, &["acme", "--before", &stamp]).await.wait_with_output().await.expect("second run");
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{stdout}{}", String::from_utf8_lossy(&second.stderr));
    let report = stdout.lines().find(|l| l.starts_with("erased tenant acme:")).expect("the report line");
    assert!(
        report.contains(&format!(": {events_due} events, {identities_due} identities")),
        "{report} vs {events_due} events, {identities_due} identities"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let (acme_live, globex_live) = (acme.await.expect("acme writer"), globex.await.expect("globex writer"));
    assert!(acme_live > 0 && globex_live > 0);

    // Nothing of acme from before remains; what it sent since is stored and counted exactly.
    assert_eq!(app.scalar(&due("event_log")).await, 0);
    assert_eq!(app.scalar(&due("event_identities")).await, 0);
    let acme_left = app.scalar("SELECT count(*) AS n FROM event_log WHERE tenant_id = 'acme'").await;
    assert_eq!(app.scalar("SELECT count(*) AS n FROM event_identities WHERE tenant_id = 'acme'").await, acme_left);
    assert_eq!(
        app.count(ACME_KEY, "view", WINDOW.0, WINDOW.1).await + app.count(ACME_KEY, "buy", WINDOW.0, WINDOW.1).await,
        acme_left
    );
    for table in ["event_counts_minute", "event_counts_hour"] {
        let width = if table.ends_with("minute") { "minute" } else { "hour" };
        let orphans = app
            .scalar(&format!(
                "SELECT count(*) AS n FROM {table} c WHERE c.tenant_id = 'acme' AND NOT EXISTS (
                     SELECT 1 FROM event_log e WHERE e.tenant_id = 'acme' AND e.event_name = c.event_name
                       AND date_trunc('{width}', e.occurred_at, 'UTC') = c.bucket)"
            ))
            .await;
        assert_eq!(orphans, 0, "no {table} row is left for buckets acme no longer has events in");
        let total = app
            .scalar(&format!("SELECT coalesce(sum(count), 0)::bigint AS n FROM {table} WHERE tenant_id = 'acme'"))
            .await;
        assert_eq!(total, acme_left, "{table} counts exactly what is left");
    }
    // The other tenant is untouched.
    assert_eq!(app.count(GLOBEX_KEY, "view", WINDOW.0, WINDOW.1).await, globex_before + globex_live);
}

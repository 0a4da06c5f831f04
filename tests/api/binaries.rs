//! The real binaries: start-up refusals, and `local` serving, then stopping on SIGTERM.
//! They are built by `scripts/test` (`cargo build --bins`) next to this test executable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{TestDatabase, binary};

fn start_failure(name: &str, vars: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(binary(name))
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run binary");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn deployed_functions_refuse_to_start_without_a_database_or_keys() {
    for name in ["events", "metrics", "health"] {
        let (code, stderr) = start_failure(name, &[("TENANT_KEYS", r#"{"a": ["key-key-key"]}"#)]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        assert!(stderr.starts_with("error: DATABASE_URL is not set"), "{name}: {stderr}");

        let (code, stderr) = start_failure(name, &[("DATABASE_URL", "postgres://u@127.0.0.1:1/db")]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.starts_with("error: TENANT_KEYS is not set"), "{name}: {stderr}");

        let secret = r#"{"a": ["secret-key-1"], "b": ["secret-key-1"]}"#;
        let (code, stderr) =
            start_failure(name, &[("DATABASE_URL", "postgres://u@127.0.0.1:1/db"), ("TENANT_KEYS", secret)]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.starts_with("error: TENANT_KEYS is invalid"), "{name}: {stderr}");
        assert!(!stderr.contains("secret-key-1"), "{name} echoed a key: {stderr}");
    }
    let (code, stderr) = start_failure("migrate", &[]);
    assert_eq!(
        (code, stderr.lines().next().unwrap_or_default().starts_with("error: DATABASE_URL")),
        (2, true),
        "{stderr}"
    );
    let (code, stderr) = start_failure("events", &[("PORT", "http"), ("DATABASE_URL", "x"), ("TENANT_KEYS", "{}")]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: PORT is invalid"), "{stderr}");
}

#[tokio::test]
async fn local_serves_the_api_and_stops_cleanly_on_sigterm() {
    let db = TestDatabase::create().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary("local"))
        .env("PORT", port.to_string())
        .env("DATABASE_URL", &db.url)
        .env_remove("TENANT_KEYS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start local");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    loop {
        if let Ok(response) = client.get(format!("{base}/ready")).send().await
            && response.status() == 200
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "local did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The demo keys work when TENANT_KEYS is unset.
    let response = client
        .post(format!("{base}/events"))
        .header("X-API-Key", "tenant-key-123")
        .json(&serde_json::json!({"event_name": "signup", "timestamp": "2026-01-01T10:00:00Z"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 201);

    let pid = child.id().expect("pid").to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(sent.success());
    let status =
        tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits in time").expect("status");
    assert!(status.success(), "local exits 0 on SIGTERM: {status:?}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let db = TestDatabase::create().await;
    let process = crate::harness::Process::start(
        "metrics",
        &[("DATABASE_URL", &db.url), ("TENANT_KEYS", crate::harness::TEST_KEYS), ("SHUTDOWN_GRACE_SECS", "8")],
    )
    .await
    .expect("metrics starts");

    // Make the request slow: hold a lock its query must wait for.
    let mut blocker = AsyncPgConnection::establish(&db.url).await.expect("connect");
    diesel::sql_query("BEGIN").execute(&mut blocker).await.expect("begin");
    diesel::sql_query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE").execute(&mut blocker).await.expect("lock");
    let url = format!("{}/metrics?event_name=a&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", process.base);
    let slow = tokio::spawn(async move {
        reqwest::Client::new().get(url).header("X-API-Key", crate::harness::ACME_KEY).send().await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!slow.is_finished(), "the request is held by the lock");

    process.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Draining: new connections are refused while the held request is still running.
    assert!(reqwest::get(format!("{}/health", process.base)).await.is_err(), "listener closed after SIGTERM");
    assert!(!slow.is_finished());

    diesel::sql_query("COMMIT").execute(&mut blocker).await.expect("release");
    let response = slow.await.expect("task").expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    let mut process = process;
    let status =
        tokio::time::timeout(Duration::from_secs(10), process.child.wait()).await.expect("exits").expect("status");
    assert!(status.success(), "exit 0 after draining: {status:?}\n{}", process.output());
}

#[tokio::test]
async fn concurrent_migration_runs_apply_each_migration_once() {
    let db = TestDatabase::create_empty().await;
    let runs = futures_util::future::join_all((0..3).map(|_| data::run_migrations(&db.url))).await;
    let applied: Vec<Vec<String>> = runs.into_iter().map(|r| r.expect("every run succeeds")).collect();
    let non_empty: Vec<&Vec<String>> = applied.iter().filter(|a| !a.is_empty()).collect();
    assert_eq!(non_empty.len(), 1, "exactly one run applies the migrations: {applied:?}");
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .expect("migrations directory")
        .filter(|entry| entry.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert_eq!(non_empty[0].len(), migrations, "every migration, once");
    assert!(data::run_migrations(&db.url).await.expect("rerun").is_empty());
}

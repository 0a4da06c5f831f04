//! Database faults: PostgreSQL becomes unreachable in the middle of a load of unique events
//! sent with retries, then comes back. During the outage readiness is 503 and ingestion
//! answers 503 with `Retry-After` (never a 500, never a hang); afterwards the service recovers
//! without a restart, and every event is stored exactly once.
//!
//! The outage is made by a TCP proxy between the service and PostgreSQL (the way toxiproxy
//! does it): cutting it resets every open connection and refuses new ones, which is what the
//! service sees when the database goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::harness::{ACME_KEY, TestApp, TestDatabase, event};

/// Forwards a loopback port to `target` until cut.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (up, cut) = (Arc::new(AtomicBool::new(true)), Arc::new(Notify::new()));
        let (accept_up, accept_cut) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let cut = accept_cut.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.notified() => {} // dropping both ends resets the connection
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).and_then(|rest| rest.split('/').next()).expect("authority");
    authority.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
}

#[tokio::test]
async fn an_outage_is_503s_then_recovery_with_every_event_stored_once() {
    let db = TestDatabase::create().await;
    let proxy = Proxy::start(port_of(&db.url)).await;
    let proxied = db.url.replacen(&format!(":{}/", port_of(&db.url)), &format!(":{}/", proxy.port), 1);
    let app = TestApp::spawn_with(&proxied, &[("DB_ACQUIRE_TIMEOUT_MS", "1000")], Some(db)).await;

    const EVENTS: usize = 240;
    let next = AtomicUsize::new(0);
    let acknowledged = AtomicUsize::new(0);
    let unavailable = AtomicUsize::new(0);
    let slowest = std::sync::Mutex::new(Duration::ZERO);
    let worker = || async {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= EVENTS {
                return;
            }
            let body = event("signup", "2026-01-01T10:00:00Z");
            // A client that retries until its event is acknowledged.
            loop {
                let started = Instant::now();
                let response = app
                    .client
                    .post(app.url("/events"))
                    .header("X-API-Key", ACME_KEY)
                    .header("Idempotency-Key", format!("o-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .expect("every request is answered");
                let took = started.elapsed();
                {
                    let mut slowest = slowest.lock().expect("lock");
                    *slowest = (*slowest).max(took);
                }
                match response.status().as_u16() {
                    201 | 200 => {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    503 => {
                        assert_eq!(response.headers()["retry-after"], "1");
                        unavailable.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    other => panic!("event {i}: unexpected {other}: {}", response.text().await.unwrap_or_default()),
                }
            }
        }
    };
    let outage = async {
        while acknowledged.load(Ordering::SeqCst) < EVENTS / 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.cut();
        let cut_at = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ready = app.client.get(app.url("/ready")).send().await.expect("ready answers");
        assert_eq!(ready.status(), 503, "not ready while the database is away");
        let acked_during = acknowledged.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            acknowledged.load(Ordering::SeqCst),
            acked_during,
            "nothing is acknowledged while the database is away"
        );
        proxy.restore();
        eprintln!("outage lasted {:?}", cut_at.elapsed());
    };
    futures_util::future::join(futures_util::future::join_all((0..8).map(|_| worker())), outage).await;

    let ready = app.client.get(app.url("/ready")).send().await.expect("ready answers");
    assert_eq!(ready.status(), 200, "recovered without a restart");
    assert!(unavailable.load(Ordering::SeqCst) > 0, "the outage was seen as 503s");
    assert_eq!(app.count(ACME_KEY, "signup", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z").await, EVENTS as i64);
    let slowest = *slowest.lock().expect("lock");
    assert!(slowest < Duration::from_secs(5), "no request hung: slowest took {slowest:?}");
    eprintln!(
        "outage test: {EVENTS} events, {} acknowledged, {} 503s retried, slowest answer {slowest:?}, stored {EVENTS}",
        acknowledged.load(Ordering::SeqCst),
        unavailable.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_slow_database_and_an_exhausted_pool_answer_503_in_bounded_time() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    let vars = [("DB_POOL_SIZE", "1"), ("DB_ACQUIRE_TIMEOUT_MS", "500"), ("DB_STATEMENT_TIMEOUT_MS", "1000")];
    let app = TestApp::spawn_with(&url, &vars, Some(db)).await;

    // A slow database: every insert waits on a lock held elsewhere.
    let mut blocker = AsyncPgConnection::establish(&url).await.expect("connect");
    diesel::sql_query("BEGIN").execute(&mut blocker).await.expect("begin");
    diesel::sql_query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE").execute(&mut blocker).await.expect("lock");

    let started = Instant::now();
    let requests = (0..6).map(|i| {
        let app = &app;
        async move {
            let body = event("signup", "2026-01-01T10:00:00Z");
            let response = app
                .client
                .post(app.url("/events"))
                .header("X-API-Key", ACME_KEY)
                .header("Idempotency-Key", format!("slow-{i}"))
                .json(&body)
                .send()
                .await
                .expect("answered");
            (response.status().as_u16(), started.elapsed())
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    for (status, took) in &answers {
        assert_eq!(*status, 503, "{answers:?}");
        assert!(*took < Duration::from_secs(3), "answered within the statement and acquire timeouts: {answers:?}");
    }
    diesel::sql_query("ROLLBACK").execute(&mut blocker).await.expect("release");
    let (status, _) = app.post_event(Some(ACME_KEY), Some("after"), &event("signup", "2026-01-01T10:00:00Z")).await;
    assert_eq!(status, 201, "recovered");
}

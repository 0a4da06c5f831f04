//! How tests get a server and a database.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (a superuser URL to any database of a running
//! server) when set, else from one throwaway cluster started for the whole run (`devdb`).
//! Each test gets its own database, cloned from a template migrated once per run, and dropped
//! when the test ends. Logs are quiet unless `TEST_LOG` is set.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use platform::{AppState, Config, TenantKeys};
use serde_json::Value;
use tokio::sync::{OnceCell, oneshot};

pub const ACME_KEY: &str = "acme-key-0001";
pub const ACME_ROTATED_KEY: &str = "acme-key-0002";
pub const GLOBEX_KEY: &str = "globex-key-0001";
pub const TEST_KEYS: &str = r#"{"acme": ["acme-key-0001", "acme-key-0002"], "globex": ["globex-key-0001"]}"#;

const TEMPLATE: &str = "events_test_template";

enum Server {
    External(String),
    Owned(devdb::Cluster),
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server::External(url),
        _ => Server::Owned(devdb::Cluster::start().expect("start a throwaway PostgreSQL for the tests")),
    })
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

fn admin_url() -> String {
    match server() {
        Server::External(url) => url.clone(),
        Server::Owned(cluster) => cluster.url("postgres"),
    }
}

async fn admin_connection() -> AsyncPgConnection {
    AsyncPgConnection::establish(&admin_url()).await.expect("connect to the test server")
}

/// Creates (once per run) the migrated template every test database is cloned from.
async fn ensure_template() {
    static TEMPLATE_READY: OnceCell<()> = OnceCell::const_new();
    TEMPLATE_READY
        .get_or_init(|| async {
            let mut conn = admin_connection().await;
            // Several test processes may share one external server.
            diesel::sql_query("SELECT pg_advisory_lock(4242)").execute(&mut conn).await.expect("lock");
            let exists = diesel::sql_query(format!("SELECT 1 FROM pg_database WHERE datname = '{TEMPLATE}'"))
                .execute(&mut conn)
                .await
                .expect("query pg_database")
                == 1;
            if !exists {
                diesel::sql_query(format!("CREATE DATABASE {TEMPLATE}"))
                    .execute(&mut conn)
                    .await
                    .expect("create template");
            }
            data::run_migrations(&with_database(&admin_url(), TEMPLATE)).await.expect("migrate the template");
            diesel::sql_query("SELECT pg_advisory_unlock(4242)").execute(&mut conn).await.expect("unlock");
        })
        .await;
}

/// A database of its own for one test; dropped with it.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A migrated database.
    pub async fn create() -> Self {
        ensure_template().await;
        Self::create_from(TEMPLATE).await
    }

    /// A migrated database as a deployment has it once its first retention period is over: the
    /// first schema's table (the partition holding everything before the cutover) is gone, so
    /// every day, recent ones included, gets a partition of its own.
    pub async fn create_past_cutover() -> Self {
        let db = Self::create().await;
        let mut conn = AsyncPgConnection::establish(&db.url).await.expect("connect");
        diesel::sql_query("ALTER TABLE event_log DETACH PARTITION events").execute(&mut conn).await.expect("detach");
        diesel::sql_query("DROP TABLE events").execute(&mut conn).await.expect("drop");
        diesel::sql_query("UPDATE event_log_cutover SET cutover = '2000-01-01T00:00:00Z'")
            .execute(&mut conn)
            .await
            .expect("cutover");
        db
    }

    /// A database with no schema at all.
    pub async fn create_empty() -> Self {
        Self::create_from("template0").await
    }

    async fn create_from(template: &str) -> Self {
        let name = format!("test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = admin_connection().await;
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut conn)
            .await
            .expect("clone the template");
        let url = with_database(&admin_url(), &name);
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = AsyncPgConnection::establish(&admin_url()).await.ok()?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Logs of the whole run with `TEST_LOG`; otherwise a global subscriber that records nothing.
/// That one matters: `tracing` caches, per call site, whether any subscriber wants it, and a
/// site first reached on a thread without one would be cached as never wanted, hiding it from a
/// test that captures logs with a subscriber of its own (`logging`). This one answers
/// "sometimes" for every site, so each event asks the subscriber of the thread it is on.
pub fn init_test_logging() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            platform::telemetry::init(&Config::from_lookup(|_| None).expect("default config"));
        } else {
            let _ = tracing::subscriber::set_global_default(Quiet);
        }
    });
}

/// Records nothing; keeps every call site's interest at "sometimes" (see `init_test_logging`).
struct Quiet;

impl tracing::Subscriber for Quiet {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The whole API (the `local` routes) on a port of its own, on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub pool: data::Pool,
    _db: Option<TestDatabase>,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    /// A server on a fresh, migrated database.
    pub async fn spawn() -> Self {
        let db = TestDatabase::create().await;
        let url = db.url.clone();
        Self::spawn_with(&url, &[], Some(db)).await
    }

    /// A server whose database cannot be reached.
    pub async fn spawn_unreachable() -> Self {
        // Port 1 on loopback: nothing listens there, so connecting fails at once.
        Self::spawn_with("postgres://postgres@127.0.0.1:1/unreachable", &[], None).await
    }

    /// A server with extra config variables, on `database_url`.
    pub async fn spawn_with(database_url: &str, vars: &[(&str, &str)], db: Option<TestDatabase>) -> Self {
        Self::spawn_at(0, database_url, vars, db).await
    }

    /// Like `spawn_with`, on loopback port `port` (0: any free port).
    pub async fn spawn_at(port: u16, database_url: &str, vars: &[(&str, &str)], db: Option<TestDatabase>) -> Self {
        Self::spawn_full(port, database_url, vars, db, platform::Clock::system()).await
    }

    /// A server on `db` whose rules read the time from `clock`.
    pub async fn spawn_on(db: TestDatabase, vars: &[(&str, &str)], clock: platform::Clock) -> Self {
        let url = db.url.clone();
        Self::spawn_full(0, &url, vars, Some(db), clock).await
    }

    /// A second server on an existing database, whose rules read the time from `clock`.
    pub async fn spawn_with_clock(database_url: &str, vars: &[(&str, &str)], clock: platform::Clock) -> Self {
        Self::spawn_full(0, database_url, vars, None, clock).await
    }

    async fn spawn_full(
        port: u16,
        database_url: &str,
        vars: &[(&str, &str)],
        db: Option<TestDatabase>,
        clock: platform::Clock,
    ) -> Self {
        init_test_logging();
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("valid test config");
        let pool = data::connect_pool(database_url, &config.pool).expect("a usable database URL");
        let mut state = AppState::new(config, TenantKeys::from_json(TEST_KEYS).expect("valid test keys"));
        state.clock = clock;
        let writer = data::BatchingWriter::from_config(&pool, &state.config);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let routes = local::routes(&state, pool.clone(), writer).expect("routes");
        tokio::spawn(platform::serve(listener, routes, shutdown, Duration::from_secs(1)));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        Self { addr, client, pool, _db: db, _stop: stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `POST /events` with a JSON body and optional `Idempotency-Key`.
    pub async fn post_event(&self, key: Option<&str>, idempotency_key: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.client.post(self.url("/events")).json(body);
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        if let Some(id) = idempotency_key {
            request = request.header("Idempotency-Key", id);
        }
        send(request).await
    }

    /// `GET /metrics` with the given query parameters.
    pub async fn metrics(&self, key: &str, query: &[(&str, &str)]) -> (u16, Value) {
        send(self.client.get(self.url("/metrics")).header("X-API-Key", key).query(query)).await
    }

    /// Stores an event straight into the database with the given fingerprint, as an earlier
    /// release (or a migration) left it, bypassing the service.
    pub async fn store_with_fingerprint(
        &self,
        tenant_id: &str,
        event_id: &str,
        event_name: &str,
        occurred_at: &str,
        properties: Option<&str>,
        payload_hash: &[u8],
    ) {
        use diesel::sql_types::{Bytea, Nullable, Text};
        let mut conn = self.pool.get().await.expect("connection");
        diesel::sql_query(
            "INSERT INTO events (tenant_id, event_id, event_name, occurred_at, properties, payload_hash) \
             VALUES ($1, $2, $3, $4::timestamptz, $5::jsonb, $6)",
        )
        .bind::<Text, _>(tenant_id)
        .bind::<Text, _>(event_id)
        .bind::<Text, _>(event_name)
        .bind::<Text, _>(occurred_at)
        .bind::<Nullable<Text>, _>(properties)
        .bind::<Bytea, _>(payload_hash)
        .execute(&mut conn)
        .await
        .expect("store the event directly");
    }

    /// The single number `query` (SQL, a `bigint` column named `n`) returns.
    pub async fn scalar(&self, query: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.pool.get().await.expect("connection");
        let row: N = diesel::sql_query(query).get_result(&mut conn).await.unwrap_or_else(|e| panic!("{query}: {e}"));
        row.n
    }

    /// The count `GET /metrics` reports for `event_name` over `[from, to)`.
    pub async fn count(&self, key: &str, event_name: &str, from: &str, to: &str) -> i64 {
        let (status, body) = self.metrics(key, &[("event_name", event_name), ("from", from), ("to", to)]).await;
        assert_eq!(status, 200, "{body}");
        body["count"].as_i64().expect("count is an integer")
    }
}

/// Sends a request; returns the status and the body as JSON (`Null` when empty).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request reaches the server");
    let status = response.status().as_u16();
    let is_problem = response.headers().get("content-type").is_some_and(|v| v == "application/problem+json");
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("body is JSON") };
    if status >= 400 {
        assert!(is_problem, "error {status} must be application/problem+json: {body}");
        assert_eq!(body["status"], status, "problem status matches: {body}");
    }
    (status, body)
}

/// An event to store directly through `data`, as the service would make it.
pub fn new_event(
    tenant_id: &str,
    event_id: &str,
    event_name: &str,
    occurred_at: chrono::DateTime<chrono::Utc>,
    properties: Option<Value>,
) -> domain::NewEvent {
    domain::NewEvent::new(
        domain::TenantId::parse(tenant_id).expect("valid tenant"),
        domain::EventId::parse(event_id.as_bytes()).expect("valid id"),
        domain::EventName::parse(event_name).expect("valid name"),
        occurred_at,
        properties.map(|p| domain::Properties::parse(p).expect("valid properties")),
    )
}

/// A minimal valid event body.
pub fn event(name: &str, timestamp: &str) -> Value {
    serde_json::json!({"event_name": name, "timestamp": timestamp})
}

/// Field names a 400 problem lists.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn with_database_replaces_only_the_name() {
    assert_eq!(with_database("postgres://u:p@h:5/db", "x"), "postgres://u:p@h:5/x");
    assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

/// `host:port` of the Pub/Sub emulator: `PUBSUB_EMULATOR_HOST` if set, else one emulator
/// started for the whole run.
pub fn pubsub_emulator_host() -> String {
    static EMULATOR: OnceLock<Result<String, devdb::PubSubEmulator>> = OnceLock::new();
    let started = EMULATOR.get_or_init(|| match std::env::var("PUBSUB_EMULATOR_HOST") {
        Ok(host) if !host.is_empty() => Ok(host),
        _ => Err(devdb::PubSubEmulator::start().expect("start the Pub/Sub emulator for the tests")),
    });
    match started {
        Ok(host) => host.clone(),
        Err(emulator) => emulator.host(),
    }
}

/// A built binary of the workspace, next to this test executable. `scripts/test` builds them
/// first; under a plain `cargo test` (or nextest) the first test that needs one builds them all
/// with the same cargo and profile, once.
pub fn binary(name: &str) -> std::path::PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target profile directory");
    let path = dir.join(name);
    if !path.is_file() {
        let built = BUILT.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let release = dir.file_name().is_some_and(|profile| profile == "release");
            let mut build = std::process::Command::new(cargo);
            // From the workspace root, so its default members' binaries are built.
            build.args(["build", "--bins"]).current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            if release {
                build.arg("--release");
            }
            match build.status() {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(format!("`cargo build --bins` failed ({status})")),
                Err(err) => Err(format!("cannot run cargo: {err}")),
            }
        });
        if let Err(reason) = built {
            panic!("{} is missing and {reason}: run `cargo build --bins` first", path.display());
        }
    }
    assert!(path.is_file(), "{} is missing: run `cargo build --bins` first (scripts/test does)", path.display());
    path
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

/// A real binary running as a child process with only the given environment, its output
/// collected as it comes.
pub struct Process {
    pub child: tokio::process::Child,
    pub base: String,
    output: Arc<std::sync::Mutex<String>>,
}

impl Process {
    /// Starts `name` on a free port and waits for `/health`; if it exits first, returns its
    /// exit code and everything it printed.
    pub async fn start(name: &str, vars: &[(&str, &str)]) -> Result<Self, (Option<i32>, String)> {
        Self::start_at(name, free_port(), vars).await
    }

    /// As `start`, on `port`.
    pub async fn start_at(name: &str, port: u16, vars: &[(&str, &str)]) -> Result<Self, (Option<i32>, String)> {
        let mut child = tokio::process::Command::new(binary(name))
            .env_clear()
            .env("PORT", port.to_string())
            // No ambient Google credentials: the tests say where the metadata server is.
            .env("HOME", std::env::temp_dir())
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start binary");
        let output = Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stdout) = child.stdout.take() {
            collect(Box::pin(stdout), output.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect(Box::pin(stderr), output.clone());
        }
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let text = output.lock().map(|o| o.clone()).unwrap_or_default();
                return Err((status.code(), text));
            }
            if let Ok(response) = client.get(format!("{base}/health")).send().await
                && response.status() == 200
            {
                return Ok(Self { child, base, output });
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{name} did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
    }
}

fn collect(stream: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>, into: Arc<std::sync::Mutex<String>>) {
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut out) = into.lock() {
                out.push_str(&line);
                out.push('\n');
            }
        }
    });
}

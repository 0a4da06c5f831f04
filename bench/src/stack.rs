//! The system under test: a durable throwaway PostgreSQL, migrated by the release `migrate`,
//! and the release `events`, `metrics` and `health` binaries as child processes.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::client;

/// The tenant every request of the benchmark belongs to, and its key.
pub const TENANT: &str = "bench";
pub const API_KEY: &str = "bench-key-0000000001";

/// PostgreSQL as production runs it: every commit flushed, full page writes, and a buffer
/// cache that holds the 10M-row table (the machine has 24 GiB).
pub const PG_SETTINGS: [(&str, &str); 4] =
    [("fsync", "on"), ("synchronous_commit", "on"), ("full_page_writes", "on"), ("shared_buffers", "2GB")];

/// Everything the benchmark runs against. Dropping it stops the services, then the cluster.
#[derive(Debug)]
pub struct Stack {
    // Field order is drop order: the services go before the database they use.
    pub events: Service,
    pub metrics: Service,
    pub health: Service,
    pub cluster: devdb::Cluster,
    pub db_url: String,
    pub postmaster: u32,
    pub bin_dir: PathBuf,
    pub pool_size: u32,
    /// The migrations `migrate` applied, by version.
    pub migrations: String,
    /// The user triggers on `events` (e.g. rollup maintenance), if any.
    pub events_triggers: Option<String>,
    /// When `events` has triggers: a table like it (columns, keys, indexes, constraints) without
    /// them, so pgbench can also measure the bare insert.
    pub bare_table: Option<&'static str>,
    /// Scratch space: service logs, pgbench scripts and logs, COPY files.
    pub scratch: tempfile::TempDir,
    /// For the main thread's own requests: health polls and the cold starts.
    pub http: client::Blocking,
}

/// The trigger-free copy of `events` for the bare-table pgbench reference.
pub const BARE_TABLE: &str = "bench_bare_events";

impl Stack {
    pub fn start(bin_dir: &Path, pool_size: u32) -> anyhow::Result<Self> {
        for name in ["events", "metrics", "health", "migrate"] {
            let path = bin_dir.join(name);
            if !path.is_file() {
                bail!("{} is missing: build it with scripts/bench (cargo build --release ...)", path.display());
            }
        }
        let scratch = tempfile::Builder::new().prefix("events-bench-").tempdir().context("creating a scratch dir")?;
        eprintln!("bench: starting PostgreSQL (durable: fsync, synchronous_commit, full_page_writes on)");
        let cluster = devdb::Cluster::start_with(&PG_SETTINGS).context("starting PostgreSQL")?;
        let db_url = cluster.url("postgres");
        let postmaster = psql(&db_url, "SELECT split_part(pg_read_file('postmaster.pid'), E'\\n', 1)")?
            .parse::<u32>()
            .context("reading the postmaster's pid")?;

        let migrate = Command::new(bin_dir.join("migrate"))
            .env("DATABASE_URL", &db_url)
            .env("LOG_FORMAT", "text")
            .output()
            .context("running migrate")?;
        if !migrate.status.success() {
            bail!(
                "migrate failed ({}): {}{}",
                migrate.status,
                String::from_utf8_lossy(&migrate.stdout),
                String::from_utf8_lossy(&migrate.stderr)
            );
        }
        psql(&db_url, "SELECT 1 FROM events LIMIT 1").context("the events table after migrate")?;
        let migrations =
            psql(&db_url, "SELECT string_agg(version, ', ' ORDER BY version) FROM __diesel_schema_migrations")
                .unwrap_or_else(|_| "unknown".to_owned());
        let events_triggers = psql(
            &db_url,
            "SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal",
        )?;
        let events_triggers = Some(events_triggers).filter(|t| !t.is_empty());
        let bare_table = if events_triggers.is_some() {
            psql(&db_url, &format!("CREATE TABLE {BARE_TABLE} (LIKE events INCLUDING ALL)"))?;
            Some(BARE_TABLE)
        } else {
            None
        };

        let start = |name: &str| Service::start(bin_dir, name, name, &db_url, pool_size, scratch.path(), &[]);
        let events = start("events")?;
        let metrics = start("metrics")?;
        let health = start("health")?;
        let http = client::Blocking::new()?;
        for service in [&events, &metrics, &health] {
            wait_for_health(&http, service.port, Duration::from_secs(20))
                .with_context(|| format!("{} did not answer /health; see {}", service.name, service.log.display()))?;
        }
        Ok(Self {
            events,
            metrics,
            health,
            cluster,
            db_url,
            postmaster,
            bin_dir: bin_dir.to_owned(),
            pool_size,
            migrations,
            events_triggers,
            bare_table,
            scratch,
            http,
        })
    }

    /// Runs SQL through psql and returns its unaligned output.
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        psql(&self.db_url, sql)
    }

    /// Empty tables, and a checkpoint so that every point starts from the same WAL state (the
    /// first write of each page after a checkpoint logs the full page). Every table of the
    /// schema is emptied, not only `events`: TRUNCATE fires no row triggers, so tables derived
    /// from `events` (rollups) would otherwise keep counts of rows that are gone.
    pub fn reset_table(&self) -> anyhow::Result<()> {
        self.sql(
            "DO $$ BEGIN EXECUTE (SELECT 'TRUNCATE ' || string_agg(format('%I.%I', schemaname, tablename), ', ') \
             FROM pg_tables WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'); END $$",
        )?;
        self.sql("CHECKPOINT")?;
        Ok(())
    }
}

/// One release binary serving on a free port.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub port: u16,
    pub child: Child,
    pub log: PathBuf,
}

impl Service {
    /// Starts binary `name` with the benchmark's settings plus `vars`; `label` names its log.
    pub fn start(
        bin_dir: &Path,
        name: &str,
        label: &str,
        db_url: &str,
        pool_size: u32,
        scratch: &Path,
        vars: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log = scratch.join(format!("{label}.stderr.log"));
        let stderr = std::fs::File::create(&log).context("creating a service log")?;
        let child = Command::new(bin_dir.join(name))
            .env("PORT", port.to_string())
            .env("DATABASE_URL", db_url)
            .env("TENANT_KEYS", tenant_keys())
            .env("DB_POOL_SIZE", pool_size.to_string())
            // Cloud Run's log format at the default level (`info`: one line per request). The
            // lines go to /dev/null, as they leave the container on Cloud Run: the formatting
            // is paid for, the disk is not.
            .env("LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { name: label.to_owned(), port, child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SIGTERM first (the service drains and closes its pool), SIGKILL if it lingers.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tenant_keys() -> String {
    format!(r#"{{"{TENANT}":["{API_KEY}"]}}"#)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// `psql` with errors as errors; returns stdout, unaligned and without headers.
pub fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .context("running psql (is it on PATH?)")?;
    if !out.status.success() {
        bail!("psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Polls `GET /health`, a new connection each time, until it answers 200; returns when it
/// first did.
pub fn wait_for_health(http: &client::Blocking, port: u16, timeout: Duration) -> anyhow::Result<Instant> {
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = http.get(port, "/health") {
            return Ok(Instant::now());
        }
        if started.elapsed() > timeout {
            bail!("no 200 from /health on port {port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Exec of the release `health` binary to its first 200 on `/health`, `runs` times.
pub fn cold_starts(stack: &Stack, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let port = free_port()?;
        let started = Instant::now();
        let mut child = Command::new(stack.bin_dir.join("health"))
            .env("PORT", port.to_string())
            .env("DATABASE_URL", &stack.db_url)
            .env("TENANT_KEYS", tenant_keys())
            .env("DB_POOL_SIZE", stack.pool_size.to_string())
            .env("LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting health")?;
        let ready = wait_for_health(&stack.http, port, Duration::from_secs(10));
        let _ = child.kill();
        let _ = child.wait();
        times.push(ready?.duration_since(started));
    }
    Ok(times)
}

/// The directory of the running executable: scripts/bench builds the service binaries there.
pub fn own_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    exe.parent().map(Path::to_owned).context("the bench executable has no directory")
}

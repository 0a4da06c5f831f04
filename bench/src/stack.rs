//! The system under test: a durable throwaway PostgreSQL, migrated by the release `migrate`
//! and brought to a long-running deployment's steady state (below), and the release `events`,
//! `metrics`, `health` and `worker` binaries as child processes.
//!
//! Steady state: `migrate` attaches the first schema's `events` table as the partition of
//! everything before a cutover two days ahead, so a fresh database would store today's events
//! in that legacy partition. A deployment that has run for a while has dropped it and stores
//! each day in its own partition. So after `migrate`, the (empty) `events` partition is detached
//! and dropped, the cutover is moved into the past, and the release `migrate maintain` creates
//! the daily partitions from yesterday to `PARTITION_AHEAD_DAYS` ahead, as its schedule does.

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
    /// The Pub/Sub push endpoint, fed push requests directly (no emulator), no tenant keys.
    pub worker: Service,
    pub cluster: devdb::Cluster,
    pub db_url: String,
    pub postmaster: u32,
    pub bin_dir: PathBuf,
    pub pool_size: u32,
    /// The schema as the run found it once in its steady state.
    pub schema: Schema,
    /// Scratch space: service logs, pgbench scripts and logs, COPY files.
    pub scratch: tempfile::TempDir,
    /// For the main thread's own requests: health polls and the cold starts.
    pub http: client::Blocking,
}

/// The schema under test, for the report's header.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// The migrations `migrate` applied, by version.
    pub migrations: String,
    /// The user triggers on `event_log` (rollup maintenance).
    pub log_triggers: String,
    /// The partitions of `event_log` once `migrate maintain` has run: how many, and which.
    pub partitions: String,
    /// The log line of the `migrate maintain` that made the steady state.
    pub maintain_at_start: String,
}

/// The bare table: the first schema's shape (the columns of `event_log`, the primary key
/// `(tenant_id, event_id)`, the window index, the CHECK constraints), unpartitioned and without
/// triggers. pgbench's insert into it is PostgreSQL's ceiling for storing an event with the
/// least work, the yardstick of the ingest targets.
pub const BARE_TABLE: &str = "bench_bare_events";

/// `BARE_TABLE`, written out: the `events` table it used to be copied from is gone.
pub const BARE_TABLE_DDL: &str = "CREATE TABLE bench_bare_events (
    tenant_id    text        NOT NULL,
    event_id     text        NOT NULL,
    event_name   text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    properties   jsonb,
    payload_hash bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id),
    CHECK (octet_length(event_id) BETWEEN 1 AND 255),
    CHECK (char_length(event_name) BETWEEN 1 AND 200),
    CHECK (octet_length(payload_hash) = 32),
    CHECK (properties IS NULL OR jsonb_typeof(properties) = 'object')
);
CREATE INDEX bench_bare_events_window_idx ON bench_bare_events (tenant_id, event_name, occurred_at);";

/// Tables `reset_table` leaves alone: the schema's own bookkeeping, not data.
const KEPT_TABLES: [&str; 2] = ["__diesel_schema_migrations", "event_log_cutover"];

/// Brings a freshly migrated database to the steady state (see the module's doc): the empty
/// legacy partition detached and dropped, the cutover in the past.
const STEADY_STATE: &str = "DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'event_log'::regclass AND inhrelid = to_regclass('events')) THEN
        IF EXISTS (SELECT 1 FROM events) THEN
            RAISE EXCEPTION 'the legacy partition events holds rows: not a fresh database';
        END IF;
        ALTER TABLE event_log DETACH PARTITION events;
        DROP TABLE events;
    END IF;
    UPDATE event_log_cutover SET cutover = date_trunc('day', now(), 'UTC') - interval '1 year';
END $$";

impl Stack {
    pub fn start(bin_dir: &Path, pool_size: u32) -> anyhow::Result<Self> {
        for name in ["events", "metrics", "health", "migrate", "worker"] {
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
        psql(&db_url, "SELECT 1 FROM event_log LIMIT 1").context("the event_log table after migrate")?;
        let migrations =
            psql(&db_url, "SELECT string_agg(version, ', ' ORDER BY version) FROM __diesel_schema_migrations")
                .unwrap_or_else(|_| "unknown".to_owned());
        eprintln!("bench: steady state: dropping the empty legacy partition, cutover in the past, migrate maintain");
        psql(&db_url, STEADY_STATE).context("bringing the schema to its steady state")?;
        let maintained = maintain(bin_dir, &db_url, &[]).context("migrate maintain at start")?;
        let log_triggers = psql(
            &db_url,
            "SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'event_log'::regclass AND NOT tgisinternal",
        )?;
        let schema = Schema {
            migrations,
            log_triggers: if log_triggers.is_empty() { "none".to_owned() } else { log_triggers },
            partitions: describe_partitions(&partitions(&db_url)?),
            maintain_at_start: maintained.line,
        };
        psql(&db_url, BARE_TABLE_DDL).context("creating the bare table")?;

        let start = |name: &str| Service::start(bin_dir, name, name, &db_url, pool_size, scratch.path(), &[]);
        let events = start("events")?;
        let metrics = start("metrics")?;
        let health = start("health")?;
        let worker = start("worker")?;
        let http = client::Blocking::new()?;
        for service in [&events, &metrics, &health, &worker] {
            wait_for_health(&http, service.port, Duration::from_secs(20))
                .with_context(|| format!("{} did not answer /health; see {}", service.name, service.log.display()))?;
        }
        Ok(Self {
            events,
            metrics,
            health,
            worker,
            cluster,
            db_url,
            postmaster,
            bin_dir: bin_dir.to_owned(),
            pool_size,
            schema,
            scratch,
            http,
        })
    }

    /// Runs SQL through psql and returns its unaligned output.
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        psql(&self.db_url, sql)
    }

    /// Empty tables, and a checkpoint so that every point starts from the same WAL state (the
    /// first write of each page after a checkpoint logs the full page). Every data table of the
    /// schema is emptied, not only `event_log` (whose TRUNCATE empties its partitions):
    /// `event_identities`, or the next point's ids would conflict, and the rollups, since
    /// TRUNCATE fires no row triggers. The partitions themselves stay, as do the migrations'
    /// bookkeeping and the cutover.
    pub fn reset_table(&self) -> anyhow::Result<()> {
        let kept = KEPT_TABLES.map(|t| format!("'{t}'")).join(", ");
        self.sql(&format!(
            "DO $$ BEGIN EXECUTE (SELECT 'TRUNCATE ' || string_agg(format('%I.%I', schemaname, tablename), ', ') \
             FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ({kept})); END $$"
        ))?;
        self.sql("CHECKPOINT")?;
        Ok(())
    }

    /// Has the release `migrate maintain` create the partitions of `days` (none of which may
    /// have one yet), exactly as it makes them: a marker row per day goes into the default
    /// partition, and maintenance creates each stray row's day and moves the row there, as it
    /// catches up after falling behind. Then every table is emptied again (the partitions stay).
    pub fn create_partitions(&self, days: &[chrono::NaiveDate]) -> anyhow::Result<Option<Maintained>> {
        if days.is_empty() {
            return Ok(None);
        }
        let starts: Vec<String> = days.iter().map(|d| format!("'{d}T00:00:00Z'")).collect();
        self.sql(&format!(
            "INSERT INTO event_log (tenant_id, event_id, event_name, occurred_at, payload_hash) \
             SELECT '{TENANT}', 'partition-marker-' || ord, 'partition_marker', t, sha256(ord::text::bytea) \
             FROM unnest(ARRAY[{}]::timestamptz[]) WITH ORDINALITY AS m(t, ord)",
            starts.join(", ")
        ))?;
        let maintained = maintain(&self.bin_dir, &self.db_url, &[]).context("migrate maintain creating partitions")?;
        self.reset_table()?;
        let existing = partitions(&self.db_url)?;
        let missing: Vec<String> = days
            .iter()
            .map(|d| format!("event_log_p{}", d.format("%Y%m%d")))
            .filter(|name| !existing.contains(name))
            .collect();
        if !missing.is_empty() {
            bail!("migrate maintain did not create {}: {}", missing.join(", "), maintained.line);
        }
        Ok(Some(maintained))
    }

    /// Events of the bench tenant stored at exactly `at` (every event of a load point has the
    /// point's own timestamp): found through the window index, in one partition.
    pub fn stored_at(&self, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.sql(&format!(
            "SELECT count(*) FROM event_log WHERE tenant_id = '{TENANT}' AND event_name = '{}' AND occurred_at = '{at}'",
            crate::load::EVENT_NAME
        ))?
        .parse()
        .context("a count from psql")
    }
}

/// The names of `event_log`'s partitions, sorted.
pub fn partitions(url: &str) -> anyhow::Result<Vec<String>> {
    let names = psql(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'event_log'::regclass ORDER BY 1",
    )?;
    Ok(names.lines().map(str::to_owned).filter(|n| !n.is_empty()).collect())
}

/// `17: event_log_default and 16 daily, event_log_p20261201 … event_log_p20261216`.
pub fn describe_partitions(names: &[String]) -> String {
    let daily: Vec<&String> = names.iter().filter(|n| n.starts_with("event_log_p")).collect();
    let others: Vec<&str> = names.iter().filter(|n| !n.starts_with("event_log_p")).map(String::as_str).collect();
    let mut text = format!("{}: ", names.len());
    if !others.is_empty() {
        text.push_str(&others.join(", "));
        text.push_str(" and ");
    }
    match (daily.first(), daily.last()) {
        (Some(first), Some(last)) => text.push_str(&format!("{} daily, {first} … {last}", daily.len())),
        _ => text.push_str("no daily ones"),
    }
    text
}

/// What one `migrate maintain` did.
#[derive(Debug, Clone, Default)]
pub struct Maintained {
    /// Its `maintenance done` log line, without the timestamp and level.
    pub line: String,
    pub elapsed: Duration,
}

impl Maintained {
    /// The partitions the line says were `created=[…]` or `dropped=[…]`.
    pub fn listed(&self, field: &str) -> usize {
        listed_in(&self.line, field)
    }
}

/// The number a `field=N` of a text log line gives.
pub fn number_in(line: &str, field: &str) -> Option<i64> {
    let rest = line.split(&format!(" {field}=")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// How many names a `field=["a", "b"]` of a text log line lists.
pub fn listed_in(line: &str, field: &str) -> usize {
    let Some(rest) = line.split(&format!("{field}=[")).nth(1) else { return 0 };
    let inside = rest.split(']').next().unwrap_or_default();
    inside.split(',').filter(|item| !item.trim().is_empty()).count()
}

/// Runs the release `migrate maintain` with `vars` (`RETENTION_DAYS`, `PARTITION_AHEAD_DAYS`; the
/// bench's own environment does not leak in) and returns its `maintenance done` line.
pub fn maintain(bin_dir: &Path, url: &str, vars: &[(&str, &str)]) -> anyhow::Result<Maintained> {
    let started = Instant::now();
    let out = Command::new(bin_dir.join("migrate"))
        .arg("maintain")
        .env("DATABASE_URL", url)
        .env("LOG_FORMAT", "text")
        .env_remove("RUST_LOG")
        .env_remove("RETENTION_DAYS")
        .env_remove("PARTITION_AHEAD_DAYS")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .context("running migrate maintain")?;
    let elapsed = started.elapsed();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("migrate maintain failed ({}): {}", out.status, text.trim());
    }
    let line = text
        .lines()
        .find(|l| l.contains("maintenance done") || l.contains("did nothing"))
        .map(|l| l.split_once("INFO ").map_or(l, |(_, rest)| rest).trim().to_owned())
        .with_context(|| format!("migrate maintain printed no `maintenance done` line: {}", text.trim()))?;
    Ok(Maintained { line, elapsed })
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
        let mut command = Command::new(bin_dir.join(name));
        // The worker serves Pub/Sub, never tenants: it starts with the database alone.
        if name != "worker" {
            command.env("TENANT_KEYS", tenant_keys());
        }
        let child = command
            .env("PORT", port.to_string())
            .env("DATABASE_URL", db_url)
            .env("DB_POOL_SIZE", pool_size.to_string())
            // Cloud Run's log format at the default level (`info`: one line per request). The
            // lines go to /dev/null, as they leave the container on Cloud Run: the formatting
            // is paid for, the disk is not.
            .env("LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .env_remove("RETENTION_DAYS")
            .env_remove("PARTITION_AHEAD_DAYS")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_described_by_their_range() {
        let names: Vec<String> =
            ["event_log_default", "event_log_p20261201", "event_log_p20261202", "event_log_p20261216"]
                .map(str::to_owned)
                .to_vec();
        assert_eq!(
            describe_partitions(&names),
            "4: event_log_default and 3 daily, event_log_p20261201 … event_log_p20261216"
        );
        assert_eq!(describe_partitions(&names[..1]), "1: event_log_default and no daily ones");
    }

    #[test]
    fn maintain_lines_are_read() {
        let line = r#"maintenance done created=["event_log_p20261218"] moved_from_default=0 dropped=["event_log_p20261023", "x"] deferred=[] identities_expired=5000"#;
        assert_eq!(listed_in(line, "created"), 1);
        assert_eq!(listed_in(line, "dropped"), 2);
        assert_eq!(listed_in(line, "deferred"), 0);
        assert_eq!(listed_in(line, "missing"), 0);
        assert_eq!(number_in(line, "identities_expired"), Some(5000));
        assert_eq!(number_in(line, "moved_from_default"), Some(0));
        assert_eq!(number_in(line, "rollup_rows_expired"), None);
    }

    #[test]
    fn reset_keeps_the_bookkeeping() {
        assert!(KEPT_TABLES.contains(&"event_log_cutover") && KEPT_TABLES.contains(&"__diesel_schema_migrations"));
        assert!(BARE_TABLE_DDL.starts_with(&format!("CREATE TABLE {BARE_TABLE} (")));
        assert!(!BARE_TABLE_DDL.contains("PARTITION") && BARE_TABLE_DDL.contains("PRIMARY KEY (tenant_id, event_id)"));
    }
}

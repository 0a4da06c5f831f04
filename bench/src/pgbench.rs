//! PostgreSQL's own ceiling for the same work: pgbench with custom scripts, and COPY.
//!
//! Two yardsticks, each at 1 and at 100 rows per transaction:
//! - the bare table (`stack::BARE_TABLE`): `INSERT … ON CONFLICT DO NOTHING` into one
//!   unpartitioned table without triggers, the least work that stores an event idempotently;
//! - the service's own statement (`INSERT_UNNEST` of shared/data/src/insert.rs, read from that
//!   file when the bench is built, so it cannot drift): identities claimed in
//!   `event_identities`, the claimed events written into `event_log` (its partitions and rollup
//!   triggers), the stored fingerprints read back; the arrays the service binds as parameters
//!   are built in the script instead.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use sha2::{Digest, Sha256};

use crate::load::{Measured, new_histogram};
use crate::probe::{self, Watch};
use crate::stack::{BARE_TABLE, Stack, TENANT};

/// The columns every insert of the benchmark writes (`received_at` takes its default).
const COLUMNS: &str = "tenant_id, event_id, event_name, occurred_at, properties, payload_hash";

/// The source file of the service's insert: the bench reads the statement from it rather than
/// depending on the `data` crate (and its database stack).
const SERVICE_INSERT_SOURCE: &str = include_str!("../../shared/data/src/insert.rs");

/// Which insert pgbench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Yardstick {
    /// `INSERT … ON CONFLICT DO NOTHING` into the bare table.
    Bare,
    /// The service's `INSERT_UNNEST`, claiming identities and writing into `event_log`.
    ServiceStatement,
}

impl Yardstick {
    /// The pgbench script of `rows` rows per transaction.
    pub fn script(self, rows: usize) -> anyhow::Result<String> {
        match self {
            Self::Bare => Ok(insert_script(rows, BARE_TABLE)),
            Self::ServiceStatement => service_statement_script(rows),
        }
    }

    /// A short name for files and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::ServiceStatement => "service-statement",
        }
    }
}

/// One row as the service writes it: a new unique id, a small JSON object, a 32-byte hash.
fn row_values(offset: usize) -> String {
    format!(
        "('{TENANT}', gen_random_uuid()::text, 'bench_event', now(), \
         jsonb_build_object('n', :n::int8 + {offset}), sha256(int8send(:n::int8 + {offset})))"
    )
}

/// The pgbench script of a `rows`-row `INSERT … ON CONFLICT DO NOTHING` into `table`: one
/// statement, one transaction, one commit.
pub fn insert_script(rows: usize, table: &str) -> String {
    let values: Vec<String> = (0..rows).map(row_values).collect();
    format!(
        "\\set n random(1, 1000000000000)\nINSERT INTO {table} ({COLUMNS})\nVALUES {}\nON CONFLICT DO NOTHING;\n",
        values.join(",\n       ")
    )
}

/// The service's `INSERT_UNNEST` statement as its source file spells it (`$1` … `$6` are the
/// arrays it binds).
pub fn service_statement() -> anyhow::Result<String> {
    extract_statement(SERVICE_INSERT_SOURCE, "INSERT_UNNEST")
        .context("INSERT_UNNEST not found as a plain string constant in shared/data/src/insert.rs")
}

/// The text of `const NAME: &str = "…";` in Rust source: a plain string literal whose only
/// escapes are line continuations (a backslash ending a line skips the line break and the next
/// line's indentation), `\"` and `\\`.
fn extract_statement(source: &str, name: &str) -> Option<String> {
    let opening = format!("const {name}: &str = \"");
    let start = source.find(&opening)? + opening.len();
    let mut out = String::new();
    let mut chars = source[start..].chars().peekable();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                '\n' => while chars.next_if(|c| c.is_whitespace()).is_some() {},
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
}

/// The pgbench script of the service's statement for `rows` new events, its six array
/// parameters built in SQL: the same values as the bare table's rows.
pub fn service_statement_script(rows: usize) -> anyhow::Result<String> {
    let statement = service_statement()?;
    if !(1..=6).all(|k| statement.contains(&format!("${k}"))) || statement.contains("$7") {
        bail!("INSERT_UNNEST no longer takes exactly the parameters $1 to $6; update bench/src/pgbench.rs");
    }
    let array =
        |element: &dyn Fn(usize) -> String| format!("ARRAY[{}]", (0..rows).map(element).collect::<Vec<_>>().join(", "));
    let params = [
        array(&|_| format!("'{TENANT}'")),
        array(&|_| "gen_random_uuid()::text".to_owned()),
        array(&|_| format!("'{}'", crate::load::EVENT_NAME)),
        array(&|_| "now()".to_owned()),
        array(&|k| format!("jsonb_build_object('n', :n::int8 + {k})")),
        array(&|k| format!("sha256(int8send(:n::int8 + {k}))")),
    ];
    let mut sql = statement;
    for (k, value) in params.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", k + 1), value);
    }
    Ok(format!("\\set n random(1, 1000000000000)\n{};\n", sql.trim_end()))
}

/// Runs `pgbench -M prepared` with `script` at `clients` for `duration`, logging every
/// transaction's latency for the percentiles. `rows` is the rows per transaction: events/s is
/// TPS × rows.
pub fn run(
    stack: &Stack,
    name: &str,
    script: &str,
    rows: usize,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let dir = stack.scratch.path();
    let script_path = dir.join(format!("{name}.sql"));
    std::fs::write(&script_path, script).context("writing the pgbench script")?;
    let log_prefix = dir.join(format!("{name}-c{clients}-log"));
    let seconds = duration.as_secs().max(1);
    let threads = clients.min(2);
    let mut command = Command::new(pgbench_path());
    command
        .args(["-n", "-M", "prepared", "-h", "127.0.0.1", "-U", "postgres"])
        .args(["-p", &stack.cluster.port().to_string()])
        .args(["-c", &clients.to_string(), "-j", &threads.to_string(), "-T", &seconds.to_string()])
        .arg("-f")
        .arg(&script_path)
        .arg("-l")
        .arg(format!("--log-prefix={}", log_prefix.display()))
        .arg("postgres")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = command.spawn().context("starting pgbench")?;
    // pgbench starts its clock once its clients are connected: watch the middle of the run.
    let lead = Duration::from_secs_f64((seconds as f64 / 4.0).min(1.0));
    let watch = Watch { service: None, generator: child.id(), postmaster: stack.postmaster };
    let observer = probe::observe(
        watch,
        started + lead,
        started + Duration::from_secs(seconds).saturating_sub(Duration::from_millis(250)),
    );
    let out = child.wait_with_output().context("waiting for pgbench")?;
    let observation = observer.join().unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("pgbench failed ({}):\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let tps = field(&stdout, "tps = ").context("pgbench printed no tps")?;
    let latency_avg_ms = field(&stdout, "latency average = ").context("pgbench printed no latency average")?;
    let failed = field(&stdout, "number of failed transactions: ").unwrap_or(0.0);
    let histogram = read_logs(dir, &log_prefix)?;
    let micros = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(Measured {
        events_per_s: tps * rows as f64,
        requests_per_s: tps,
        p50_ms: micros(0.5),
        p99_ms: micros(0.99),
        avg_ms: latency_avg_ms,
        errors: failed as u64,
        error_samples: Vec::new(),
        cpu: observation.cpu,
        service_rss_max_kib: None,
        acknowledged: 0,
        stored: None,
        wal_bytes: None,
    })
}

fn pgbench_path() -> PathBuf {
    let installed = PathBuf::from("/usr/lib/postgresql/15/bin/pgbench");
    if installed.is_file() { installed } else { PathBuf::from("pgbench") }
}

/// The number after `label` on pgbench's summary line that starts with it.
fn field(stdout: &str, label: &str) -> Option<f64> {
    let line = stdout.lines().find(|l| l.starts_with(label))?;
    line[label.len()..].split_whitespace().next()?.parse().ok()
}

/// Reads pgbench's per-transaction logs (`client tx latency_us script epoch epoch_us`, one file
/// per thread) into a histogram of microseconds, then deletes them.
fn read_logs(dir: &Path, prefix: &Path) -> anyhow::Result<Histogram<u64>> {
    let stem = prefix.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let mut histogram = new_histogram();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(&stem) && n.len() > stem.len()) {
            continue;
        }
        let file = std::fs::File::open(entry.path())?;
        for line in BufReader::new(file).lines() {
            let line = line?;
            if let Some(latency) = line.split_whitespace().nth(2).and_then(|f| f.parse::<u64>().ok()) {
                histogram.saturating_record(latency.max(1));
            }
        }
        std::fs::remove_file(entry.path())?;
    }
    if histogram.is_empty() {
        bail!("pgbench wrote no transaction log under {}", prefix.display());
    }
    Ok(histogram)
}

/// Writes `rows` events as CSV for COPY: the same columns and shapes the service writes.
pub fn write_copy_file(path: &Path, rows: usize, tag: &str) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).context("creating the COPY file")?);
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for i in 0..rows {
        let hash = Sha256::digest(i.to_be_bytes());
        let mut hex = String::with_capacity(64);
        for byte in hash {
            hex.push_str(&format!("{byte:02x}"));
        }
        writeln!(out, "{TENANT},{tag}-{i},bench_event,{ts},\"{{\"\"n\"\": {i}}}\",\\x{hex}")?;
    }
    out.flush()?;
    Ok(())
}

/// COPY of pre-written CSV files, one `psql \copy` per file, all at once: events per second
/// from start to the last one's commit.
pub fn copy(stack: &Stack, files: &[(PathBuf, usize)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut children = Vec::new();
    for (path, _) in files {
        let sql = format!("\\copy {BARE_TABLE} ({COLUMNS}) FROM '{}' WITH (FORMAT csv)", path.display());
        let child = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &stack.db_url, "-c", &sql])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting psql \\copy")?;
        children.push(child);
    }
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("COPY failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rows: usize = files.iter().map(|(_, rows)| rows).sum();
    Ok(rows as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_have_one_statement_of_n_rows() {
        let one = insert_script(1, "events");
        assert!(one.starts_with("\\set n random("));
        assert_eq!(one.matches("gen_random_uuid()").count(), 1);
        assert_eq!(one.matches(';').count(), 1, "one statement: {one}");
        assert!(one.contains("ON CONFLICT DO NOTHING;"));
        assert_eq!(insert_script(100, "events").matches("gen_random_uuid()").count(), 100);
    }

    #[test]
    fn the_service_statement_is_read_from_its_source() {
        let statement = service_statement().expect("found");
        assert!(statement.starts_with("WITH input AS ("), "{statement}");
        assert!(statement.contains("INSERT INTO event_identities") && statement.contains("INSERT INTO event_log"));
        assert!(!statement.contains('\\') && !statement.ends_with(';'));
        let one = service_statement_script(1).expect("script");
        assert!(!one.contains('$'), "every parameter replaced: {one}");
        assert_eq!(one.matches("gen_random_uuid()").count(), 1);
        assert!(one.starts_with("\\set n random(") && one.trim_end().ends_with(';'));
        assert_eq!(one.matches(';').count(), 1, "one statement: {one}");
        assert_eq!(service_statement_script(100).expect("script").matches("gen_random_uuid()").count(), 100);
    }

    #[test]
    fn string_constants_are_unescaped() {
        let source = "x\nconst Q: &str = \"\\\n    SELECT 1,\n    \\\"a\\\" -- \\\\\";\nconst R: &str = \"\\u{1}\";";
        assert_eq!(extract_statement(source, "Q").as_deref(), Some("SELECT 1,\n    \"a\" -- \\"));
        assert_eq!(extract_statement(source, "R"), None, "an escape it does not know");
        assert_eq!(extract_statement(source, "S"), None);
    }

    #[test]
    fn summary_fields() {
        let out = "latency average = 2.034 ms\ninitial connection time = 3.1 ms\ntps = 7863.123456 (without initial connection time)\n";
        assert_eq!(field(out, "tps = "), Some(7863.123456));
        assert_eq!(field(out, "latency average = "), Some(2.034));
        assert_eq!(field(out, "number of failed transactions: "), None);
    }
}

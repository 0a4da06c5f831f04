//! `bench`: the release service against PostgreSQL's own ceiling for the same work, on this
//! machine, in one run; writes docs/benchmarks.md and docs/benchmarks/ingest.png. Run it with
//! `scripts/bench` (which builds the release binaries first); `bench --help` lists the flags.
//!
//! One run: start a durable PostgreSQL, migrate it and bring the partitioned schema to a
//! long-running deployment's steady state (`stack`), start the release services; time the cold
//! start and read idle memory; then per run and concurrency, pgbench's single-row insert into
//! the bare table and the service's own statement, `POST /events`, and the `worker` fed push
//! requests, back to back; ingest while `migrate maintain` creates and drops a partition; the
//! async path on the Pub/Sub emulator; pgbench's 100-row inserts, `/events/batch` and COPY; then
//! load 10M rows into 30 daily partitions and time `GET /metrics` and ingest into that table,
//! and the same on the large table (`--large-rows`). Every number in the report is measured in
//! that run.

// A benchmark's output is its report: printing it to stdout is the point. Progress goes to stderr.
#![allow(clippy::print_stdout)]

mod cli;
mod client;
mod load;
mod maintenance;
mod metrics;
mod pgbench;
mod plot;
mod probe;
mod pubsub;
mod report;
mod results;
mod stack;
mod stats;
mod traces;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use procfs::Current;

use crate::cli::Args;
use crate::load::{LoadSpec, Measured, Workload};
use crate::pgbench::Yardstick;
use crate::results::{BatchRun, CopyRun, Footprint, LoadedTable, Machine, Results, SingleRun};
use crate::stack::{Service, Stack};
use crate::stats::{ms, rate};

/// Clients of single-event ingest into the loaded tables (the target concurrency the large
/// table is compared at).
pub const LOADED_INGEST_CLIENTS: usize = 16;

/// The deployable binaries whose size and idle memory are reported.
const BINARIES: [&str; 5] = ["events", "metrics", "health", "worker", "migrate"];

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Now, to the microsecond PostgreSQL stores: a point's events are found again by this time.
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin_dir = stack::own_bin_dir()?;
    let busy_before_pct = probe::machine_busy_over(Duration::from_secs(2));
    if busy_before_pct > 10.0 {
        eprintln!("bench: warning: the machine is already {busy_before_pct:.0}% busy; results will be noisy");
    }
    let stack = Stack::start(&bin_dir, args.pool_size)?;
    let machine = Machine { busy_before_pct, ..machine(&stack) };
    eprintln!(
        "bench: PostgreSQL {} on port {}; events :{}, metrics :{}, health :{}, worker :{}; DB_POOL_SIZE={}",
        machine.postgres,
        stack.cluster.port(),
        stack.events.port,
        stack.metrics.port,
        stack.health.port,
        stack.worker.port,
        args.pool_size
    );
    eprintln!("bench: event_log partitions {}; {}", stack.schema.partitions, stack.schema.maintain_at_start);
    let mut results = Results {
        args: args.clone(),
        machine,
        single: Vec::new(),
        tracing: Vec::new(),
        maintenance: Vec::new(),
        async_runs: Vec::new(),
        batch: Vec::new(),
        copy: Vec::new(),
        metrics: None,
        large: None,
        large_note: None,
        footprint: Footprint::default(),
        failures: Vec::new(),
        elapsed: Duration::ZERO,
        plot: None,
    };

    // Memory before any request, start-up time and size, while the machine is quiet.
    std::thread::sleep(Duration::from_secs(1));
    results.footprint.idle_rss_kib = [&stack.events, &stack.metrics, &stack.health, &stack.worker]
        .iter()
        .map(|s| (s.name.clone(), probe::rss_kib(s.pid())))
        .collect();
    eprintln!("bench: cold start of health, {} runs", args.cold_start_runs);
    match stack::cold_starts(&stack, args.cold_start_runs) {
        Ok(times) => results.footprint.cold_starts = times,
        Err(err) => results.failures.push(format!("cold start: {err:#}")),
    }
    results.footprint.sizes = BINARIES
        .iter()
        .map(|name| (name.to_string(), std::fs::metadata(bin_dir.join(name)).ok().map(|m| m.len())))
        .collect();

    single_points(&stack, args, &mut results);
    std::thread::sleep(Duration::from_secs(1));
    results.footprint.events_rss_after_load_kib = probe::rss_kib(stack.events.pid());
    tracing_points(&stack, args, &mut results);
    maintenance_points(&stack, args, &mut results);
    async_points(&stack, args, &mut results);
    batch_points(&stack, args, &mut results);
    copy_points(&stack, args, &mut results);
    if args.skip_metrics {
        results.failures.push("`/metrics` and the large point skipped (--skip-metrics)".to_owned());
    } else {
        metrics_points(&stack, args, &mut results);
        large_point(&stack, args, &mut results);
    }
    let mismatches: Vec<String> = results
        .service_points()
        .into_iter()
        .filter(|(_, m)| m.stored_matches() == Some(false))
        .map(|(what, m)| {
            format!(
                "{what}: {} events stored, but {} acknowledged ({} errors)",
                m.stored.unwrap_or(0),
                m.acknowledged,
                m.errors
            )
        })
        .collect();
    results.failures.extend(mismatches);

    let out = &args.out;
    let plot_path = plot_path(out);
    results.elapsed = started.elapsed();
    match plot::ingest(&results, &plot_path) {
        Ok(()) => results.plot = Some(relative_to(&plot_path, out)),
        Err(err) => results.failures.push(format!("the plot ({}): {err:#}", plot_path.display())),
    }
    let markdown = report::render(&results);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, &markdown).with_context(|| format!("writing {}", out.display()))?;
    println!("{markdown}");
    eprintln!(
        "bench: wrote {} and {} in {:.1} min",
        out.display(),
        plot_path.display(),
        started.elapsed().as_secs_f64() / 60.0
    );
    drop(stack);
    Ok(())
}

/// `docs/benchmarks.md` → `docs/benchmarks/ingest.png`.
fn plot_path(out: &Path) -> PathBuf {
    out.with_extension("").join("ingest.png")
}

/// The plot's path as the report links it: relative to the report's directory.
fn relative_to(plot: &Path, report: &Path) -> String {
    let base = report.parent().unwrap_or(Path::new(""));
    plot.strip_prefix(base).unwrap_or(plot).display().to_string()
}

/// With `--quiet-wait`, waits (up to that long) until the machine is under 15% busy, so that a
/// point does not start in the middle of someone else's build.
fn wait_until_quiet(args: &Args) {
    if args.quiet_wait.is_zero() {
        return;
    }
    let started = Instant::now();
    loop {
        let busy = probe::machine_busy_over(Duration::from_secs(1));
        if busy < 15.0 {
            return;
        }
        if started.elapsed() >= args.quiet_wait {
            eprintln!("bench:   the machine is still {busy:.0}% busy after {:?}; measuring anyway", args.quiet_wait);
            return;
        }
    }
}

/// A load point against `target`: on emptied tables when `fresh`, else on the tables as they
/// are (after a checkpoint). Then counts the events the point stored, to hold them against the
/// events it got acknowledged.
fn service_point(
    stack: &Stack,
    args: &Args,
    target: &Service,
    clients: usize,
    workload: Workload,
    tag: String,
    fresh: bool,
) -> anyhow::Result<Measured> {
    wait_until_quiet(args);
    if fresh {
        stack.reset_table()?;
    } else {
        stack.sql("CHECKPOINT")?;
    }
    let spec = LoadSpec {
        port: target.port,
        service_pid: target.pid(),
        postmaster: stack.postmaster,
        clients,
        warmup: args.warmup,
        duration: args.duration,
        workload,
        tag,
        timestamp: now_micros(),
        timeline: false,
    };
    let wal_before = stack.sql("SELECT pg_current_wal_lsn()")?;
    let mut measured = load::run(&spec)?;
    measured.stored = Some(stack.stored_at(spec.timestamp)?);
    measured.wal_bytes = Some(
        stack
            .sql(&format!("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{wal_before}')::bigint"))?
            .parse()
            .context("a WAL byte count from psql")?,
    );
    Ok(measured)
}

fn pgbench_point(
    stack: &Stack,
    args: &Args,
    yardstick: Yardstick,
    rows: usize,
    clients: usize,
) -> anyhow::Result<Measured> {
    wait_until_quiet(args);
    stack.reset_table()?;
    let name = format!("{}-{rows}", yardstick.name());
    pgbench::run(stack, &name, &yardstick.script(rows)?, rows, clients, args.duration)
}

fn log_point(label: &str, result: &anyhow::Result<Measured>) {
    match result {
        Ok(m) => eprintln!(
            "bench:   {label}: {} events/s ({} requests/s), p50 {} ms, p99 {} ms, errors {}{}; CPU service {:.0}% postgres {:.0}% generator {:.0}% other {:.0}%",
            rate(m.events_per_s),
            rate(m.requests_per_s),
            ms(m.p50_ms),
            ms(m.p99_ms),
            m.errors,
            m.stored.map_or_else(String::new, |s| format!(", stored {s} of {} acknowledged", m.acknowledged)),
            m.cpu.service,
            m.cpu.postgres,
            m.cpu.generator,
            m.cpu.other
        ),
        Err(err) => eprintln!("bench:   {label}: FAILED: {err:#}"),
    }
}

fn keep<T>(result: anyhow::Result<T>, what: &str, failures: &mut Vec<String>) -> Option<T> {
    result.map_err(|err| failures.push(format!("{what}: {err:#}"))).ok()
}

fn single_points(stack: &Stack, args: &Args, results: &mut Results) {
    for run in 1..=args.runs {
        for &clients in &args.clients {
            eprintln!("bench: single-event ingest, run {run}/{}, {clients} clients", args.runs);
            let failures = &mut results.failures;
            let what = |point: &str| format!("{point}, {clients} clients, run {run}");
            let bare = pgbench_point(stack, args, Yardstick::Bare, 1, clients);
            log_point("pgbench single-row, bare table", &bare);
            let bare = keep(bare, &what("pgbench single-row bare"), failures);
            let same = pgbench_point(stack, args, Yardstick::ServiceStatement, 1, clients);
            log_point("pgbench, the service's statement, 1 event", &same);
            let same = keep(same, &what("pgbench service statement, 1 event"), failures);
            let tag = format!("s{clients}r{run}");
            let svc = service_point(stack, args, &stack.events, clients, Workload::Single, tag, true);
            log_point("service POST /events", &svc);
            let service = keep(svc, &what("service POST /events"), failures);
            let worker = args.worker_clients.contains(&clients).then(|| {
                let tag = format!("w{clients}r{run}");
                let pushed = service_point(stack, args, &stack.worker, clients, Workload::Push, tag, true);
                log_point("worker POST /pubsub/push", &pushed);
                keep(pushed, &what("worker POST /pubsub/push"), failures)
            });
            results.single.push(SingleRun { clients, bare, same, service, worker: worker.flatten() });
        }
    }
}

/// Single-event ingest with tracing off (the stack's `events`), then with traces exported at
/// each ratio (`traces::RATIOS`), back to back per run. A traced point whose spans never reached
/// the collector is a failure, not a result.
fn tracing_points(stack: &Stack, args: &Args, results: &mut Results) {
    if args.tracing_clients.is_empty() {
        return;
    }
    let traced = match traces::TracedStack::start(stack) {
        Ok(traced) => traced,
        Err(err) => return results.failures.push(format!("tracing: {err:#}")),
    };
    for run in 1..=args.runs {
        for &clients in &args.tracing_clients {
            eprintln!("bench: tracing, run {run}/{}, {clients} clients", args.runs);
            let failures = &mut results.failures;
            let off = service_point(
                stack,
                args,
                &stack.events,
                clients,
                Workload::Single,
                format!("t{clients}r{run}off"),
                true,
            );
            log_point("service POST /events, tracing off", &off);
            let off = keep(off, &format!("tracing off, {clients} clients, run {run}"), failures);
            let mut points = Vec::new();
            for (i, (ratio, service)) in traced.services.iter().enumerate() {
                let before = traced.collector.received();
                let tag = format!("t{clients}r{run}s{i}");
                let point = service_point(stack, args, service, clients, Workload::Single, tag, true);
                // The last batch of spans leaves within the exporter's 1 s schedule.
                std::thread::sleep(Duration::from_millis(1500));
                let received = traced.collector.received() - before;
                log_point(&format!("service POST /events, traces exported, ratio {ratio}"), &point);
                eprintln!(
                    "bench:   the collector received {} export requests, {} bytes",
                    received.requests, received.bytes
                );
                let what = format!("tracing at ratio {ratio}, {clients} clients, run {run}");
                let point = keep(point, &what, failures);
                if point.is_some() && received.requests == 0 {
                    failures.push(format!("{what}: no span reached the collector"));
                }
                points.push((*ratio, point, received));
            }
            results.tracing.push(traces::TracingRun { clients, off, traced: points });
        }
    }
}

fn maintenance_points(stack: &Stack, args: &Args, results: &mut Results) {
    for run in 1..=args.runs {
        wait_until_quiet(args);
        eprintln!(
            "bench: maintenance under load, run {run}/{}, {} clients, migrate maintain at {:.1} s",
            args.runs,
            maintenance::CLIENTS,
            args.duration.as_secs_f64() / 2.0
        );
        match maintenance::point(stack, args.warmup, args.duration, format!("mt{run}")) {
            Ok(point) => {
                log_point("service POST /events (whole interval)", &Ok(point.measured.clone()));
                eprintln!(
                    "bench:   while maintenance ran ({} ms, {} requests): p99 {} ms; otherwise ({} requests) p99 {} ms, \
                     in windows as long: median {} ms, p90 {} ms; {}",
                    point.maintained.elapsed.as_millis(),
                    point.during.requests,
                    ms(point.during.p99_ms),
                    point.steady.requests,
                    ms(point.steady.p99_ms),
                    ms(point.windows.median_p99_ms),
                    ms(point.windows.p90_p99_ms),
                    point.maintained.line
                );
                results.maintenance.push(point);
            }
            Err(err) => results.failures.push(format!("maintenance under load, run {run}: {err:#}")),
        }
    }
}

fn async_points(stack: &Stack, args: &Args, results: &mut Results) {
    if args.async_clients.is_empty() {
        return;
    }
    let async_stack = match pubsub::AsyncStack::start(stack) {
        Ok(async_stack) => async_stack,
        Err(err) => return results.failures.push(format!("async ingestion: {err:#}")),
    };
    for run in 1..=args.runs {
        for &clients in &args.async_clients {
            wait_until_quiet(args);
            eprintln!("bench: async ingestion (pubsub), run {run}/{}, {clients} clients", args.runs);
            let tag = format!("a{clients}r{run}");
            match pubsub::point(stack, &async_stack, clients, args.warmup, args.duration, tag) {
                Ok(point) => {
                    log_point("events (pubsub) POST /events", &Ok(point.accepted.clone()));
                    eprintln!(
                        "bench:   202 to countable: {} probes, {} failed; drained {:.1} s after the load",
                        point.countable.len(),
                        point.probes_failed,
                        point.drain.as_secs_f64()
                    );
                    results.async_runs.push(point);
                }
                Err(err) => results.failures.push(format!("async ingestion, {clients} clients, run {run}: {err:#}")),
            }
        }
    }
}

fn batch_points(stack: &Stack, args: &Args, results: &mut Results) {
    for run in 1..=args.runs {
        for &clients in &args.batch_clients {
            eprintln!("bench: batch ingest, run {run}/{}, {clients} clients", args.runs);
            let what = |point: &str| format!("{point}, {clients} clients, run {run}");
            let bare = pgbench_point(stack, args, Yardstick::Bare, 100, clients);
            log_point("pgbench 100-row, bare table", &bare);
            let bare100 = keep(bare, &what("pgbench 100-row bare"), &mut results.failures);
            let same = pgbench_point(stack, args, Yardstick::ServiceStatement, 100, clients);
            log_point("pgbench, the service's statement, 100 events", &same);
            let same100 = keep(same, &what("pgbench service statement, 100 events"), &mut results.failures);
            let mut service = Vec::new();
            for &size in &args.batch_sizes {
                let tag = format!("b{size}c{clients}r{run}");
                let svc = service_point(stack, args, &stack.events, clients, Workload::Batch { size }, tag, true);
                log_point(&format!("service batch of {size}"), &svc);
                service.push((size, keep(svc, &what(&format!("service batch of {size}")), &mut results.failures)));
            }
            results.batch.push(BatchRun { clients, bare100, same100, service });
        }
    }
}

fn copy_points(stack: &Stack, args: &Args, results: &mut Results) {
    let rows = args.copy_rows;
    let dir = stack.scratch.path();
    let files = [dir.join("copy-a.csv"), dir.join("copy-b.csv"), dir.join("copy-c.csv")];
    let written = pgbench::write_copy_file(&files[0], rows, "copy1")
        .and_then(|()| pgbench::write_copy_file(&files[1], rows / 2, "copy2a"))
        .and_then(|()| pgbench::write_copy_file(&files[2], rows - rows / 2, "copy2b"));
    if let Err(err) = written {
        results.failures.push(format!("COPY files: {err:#}"));
        return;
    }
    for run in 1..=args.runs {
        for streams in [1, 2] {
            let chosen: Vec<(PathBuf, usize)> = if streams == 1 {
                vec![(files[0].clone(), rows)]
            } else {
                vec![(files[1].clone(), rows / 2), (files[2].clone(), rows - rows / 2)]
            };
            let outcome = stack.reset_table().and_then(|()| pgbench::copy(stack, &chosen));
            match outcome {
                Ok(events_per_s) => {
                    eprintln!(
                        "bench: COPY, run {run}/{}, {streams} stream(s): {} events/s",
                        args.runs,
                        rate(events_per_s)
                    );
                    results.copy.push(CopyRun { streams, rows, events_per_s });
                }
                Err(err) => results.failures.push(format!("COPY, {streams} stream(s), run {run}: {err:#}")),
            }
        }
    }
    for file in files {
        let _ = std::fs::remove_file(file);
    }
}

/// Loads `rows` over the span ending today, times `/metrics` on it, then single-event ingest
/// into it.
fn loaded_table(stack: &Stack, args: &Args, rows: u64, failures: &mut Vec<String>) -> anyhow::Result<LoadedTable> {
    let (span_from, _) = metrics::span(Utc::now().date_naive());
    eprintln!("bench: loading {} rows into 30 daily partitions", rate(rows as f64));
    let load = metrics::load(stack, rows, span_from)?;
    eprintln!(
        "bench:   loaded in {:.0} s, vacuumed in {:.0} s; {:.0} bytes per event",
        load.insert_s,
        load.vacuum_s,
        load.bytes_per_event()
    );
    let queries = metrics::measure(stack, rows, span_from, args.metrics_requests)?;
    for q in &queries {
        eprintln!(
            "bench:   {} – {} {:?}: {} rows (SQL), service {:?}, p50 {} ms, p99 {} ms",
            q.window.start_text(),
            q.window.end_text(),
            q.interval,
            q.sql_count,
            q.timing.count,
            ms(q.timing.p50_ms),
            ms(q.timing.p99_ms)
        );
    }
    eprintln!("bench: single-event ingest into the {}-row table, {LOADED_INGEST_CLIENTS} clients", rate(rows as f64));
    let tag = format!("l{rows}");
    let ingest = service_point(stack, args, &stack.events, LOADED_INGEST_CLIENTS, Workload::Single, tag, false);
    log_point("service POST /events", &ingest);
    let ingest = keep(ingest, &format!("POST /events into the {}-row table", rate(rows as f64)), failures);
    eprintln!("bench: migrate maintain dropping the first of the {} days, and its identities", metrics::SPAN_DAYS);
    let retention = metrics::EXPIRY_RETENTION_DAYS.to_string();
    let expiry =
        stack::maintain(&stack.bin_dir, &stack.db_url, &[("RETENTION_DAYS", &retention)]).and_then(|m| {
            match m.listed("dropped") {
                1 => Ok(m),
                _ => Err(anyhow::anyhow!("it did not drop exactly one day: {}", m.line)),
            }
        });
    if let Ok(m) = &expiry {
        eprintln!("bench:   {} ms: {}", m.elapsed.as_millis(), m.line);
    }
    let expiry = keep(expiry, &format!("expiring a day of the {}-row table", rate(rows as f64)), failures);
    Ok(LoadedTable { load, queries, ingest, expiry })
}

fn metrics_points(stack: &Stack, args: &Args, results: &mut Results) {
    match loaded_table(stack, args, args.metrics_rows, &mut results.failures) {
        Ok(table) => results.metrics = Some(table),
        Err(err) => results.failures.push(format!("GET /metrics: {err:#}")),
    }
}

fn large_point(stack: &Stack, args: &Args, results: &mut Results) {
    if args.large_rows == 0 {
        results.large_note = Some("not measured in this run (`--large-rows 0`, the default with `--quick`)".to_owned());
        return;
    }
    // The small table's space back first: the large one is sized to the disk free without it.
    let free = stack.reset_table().and_then(|()| metrics::free_disk(stack));
    let free = match free {
        Ok(free) => free,
        Err(err) => return results.failures.push(format!("the large point: free disk: {err:#}")),
    };
    let bytes_per_event =
        results.metrics.as_ref().map_or(metrics::FALLBACK_BYTES_PER_EVENT, |t| t.load.bytes_per_event());
    let (rows, note) = metrics::large_rows(args.large_rows, free, bytes_per_event, args.metrics_rows);
    eprintln!("bench: the large point: {note}");
    results.large_note = Some(note);
    let Some(rows) = rows else { return };
    match loaded_table(stack, args, rows, &mut results.failures) {
        Ok(table) => results.large = Some(table),
        Err(err) => results.failures.push(format!("the large point ({} rows): {err:#}", rate(rows as f64))),
    }
}

/// The machine, the PostgreSQL version and the command, for the report's header.
fn machine(stack: &Stack) -> Machine {
    let cpu_model = procfs::CpuInfo::current()
        .ok()
        .and_then(|info| info.model_name(0).map(str::to_owned))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory = Command::new("free")
        .arg("-h")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines().find(|l| l.starts_with("Mem:"))?.split_whitespace().nth(1).map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    // The release string as it is (`6.18.44-fc-v657`): procfs's `KernelVersion` keeps only the
    // numbers, and the suffix names the build.
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default();
    let postgres = stack.sql("SHOW server_version").unwrap_or_else(|_| "unknown".to_owned());
    let command = std::env::var("BENCH_COMMAND").unwrap_or_else(|_| {
        let args: Vec<String> = std::env::args().skip(1).collect();
        format!("target/release/bench {}", args.join(" ")).trim().to_owned()
    });
    Machine {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M").to_string(),
        cores: probe::cores(),
        memory,
        cpu_model,
        kernel,
        postgres,
        command,
        revision: revision(),
        schema: stack.schema.clone(),
        busy_before_pct: 0.0,
    }
}

/// `git rev-parse --short HEAD`, and how many files differ from it or are new (the results
/// files aside): the binaries were built from the work tree.
fn revision() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else { return "unknown (not a git work tree)".to_owned() };
    let changed = git(&["status", "--porcelain", "--", ".", ":(exclude)docs/benchmarks*"]);
    match changed {
        Some(list) if !list.is_empty() => {
            format!("{head} plus {} files changed or new since it", list.lines().count())
        }
        _ => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_sits_beside_the_report() {
        let out = Path::new("docs/benchmarks.md");
        let plot = plot_path(out);
        assert_eq!(plot, Path::new("docs/benchmarks/ingest.png"));
        assert_eq!(relative_to(&plot, out), "benchmarks/ingest.png");
    }
}

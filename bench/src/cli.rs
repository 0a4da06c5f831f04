//! Command-line flags. Every knob has a default that follows docs/benchmarks.md's method;
//! `--quick` shrinks everything for a smoke run.
//!
//! clap parses `Flags`, the command line as typed: a flag left out is `None`, because its
//! default depends on `--quick` wherever that stands. `Args` is what the run uses, every
//! default filled in.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

/// The command line as typed.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "The release service against PostgreSQL's own ceiling (pgbench, COPY) on this machine, in one run.",
    after_help = "Run it through scripts/bench, which builds the release binaries first; bench finds the service \
                  binaries next to its own executable.",
    // A flag given twice: the last one counts.
    args_override_self = true,
    // `--warmup -1` is a bad value (and says so), not an unknown flag.
    allow_negative_numbers = true,
    disable_help_flag = true
)]
struct Flags {
    /// measured seconds per load point (pgbench -T and the service alike); default 20
    #[arg(long, value_name = "SECS", value_parser = positive_seconds)]
    duration: Option<Duration>,
    /// unmeasured load before each service point (opens the pool); default 2
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    warmup: Option<Duration>,
    /// runs of every point; the report gives the median and min-max; default 3
    #[arg(long, value_name = "N", value_parser = count)]
    runs: Option<usize>,
    /// single-event concurrencies, comma-separated; default 1,4,16,64
    #[arg(long, value_name = "LIST", value_parser = counts)]
    clients: Option<Counts>,
    /// /events/batch concurrencies; default 4,16
    #[arg(long, value_name = "LIST", value_parser = counts)]
    batch_clients: Option<Counts>,
    /// events per /events/batch request; default 100,1000
    #[arg(long, value_name = "LIST", value_parser = batch_sizes)]
    batch_sizes: Option<Counts>,
    /// concurrencies of the async point (events in pubsub mode on the emulator, the worker
    /// storing); empty to skip it; default 16
    #[arg(long, value_name = "LIST", value_parser = counts_or_none)]
    async_clients: Option<Counts>,
    /// concurrencies (among --clients) at which the release worker is fed Pub/Sub push requests
    /// directly, right after the inline point of the same concurrency; empty to skip; default
    /// 16,64
    #[arg(long, value_name = "LIST", value_parser = counts_or_none)]
    worker_clients: Option<Counts>,
    /// concurrencies of the tracing point (single events with traces exported at ratios 0.01
    /// and 1.0, against tracing off); empty to skip; default 16
    #[arg(long, value_name = "LIST", value_parser = counts_or_none)]
    tracing_clients: Option<Counts>,
    /// DB_POOL_SIZE of the services; default 32
    #[arg(long, value_name = "N", value_parser = count_u32)]
    pool_size: Option<u32>,
    /// rows per COPY measurement; default 400000
    #[arg(long, value_name = "N", value_parser = count)]
    copy_rows: Option<usize>,
    /// rows loaded for the /metrics measurement; default 10000000
    #[arg(long, value_name = "N", value_parser = count_u64)]
    metrics_rows: Option<u64>,
    /// GET /metrics requests per query (capped at 60 s per query); default 200
    #[arg(long, value_name = "N", value_parser = count)]
    metrics_requests: Option<usize>,
    /// skip loading rows and measuring GET /metrics
    #[arg(long)]
    skip_metrics: bool,
    /// the large point: rows loaded after the /metrics table for GET /metrics and ingest into a
    /// large table, fewer if the disk cannot hold them; 0 to skip; default 100000000 (0 with
    /// --quick)
    #[arg(long, value_name = "N", value_parser = count_or_zero)]
    large_rows: Option<u64>,
    /// before each load point, wait up to SECS for the machine to be under 15% busy (other work
    /// on a shared machine skews the numbers); default 0 (off)
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    quiet_wait: Option<Duration>,
    /// smoke run: 3 s points, 1 run, clients 16,64, batch clients 4, 1M rows, 50 requests per
    /// query, no large point; writes target/bench-quick.md unless --out is given
    #[arg(long)]
    quick: bool,
    /// where the markdown report goes (the plot goes to FILE-without-.md/ingest.png); default
    /// docs/benchmarks.md
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// this text
    #[arg(short, long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// A comma-separated list of counts, as one flag's value (`--clients 1,4,16`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts(Vec<usize>);

/// Everything the run is parameterised by.
#[derive(Debug, Clone)]
pub struct Args {
    pub duration: Duration,
    pub warmup: Duration,
    pub runs: usize,
    pub clients: Vec<usize>,
    pub batch_clients: Vec<usize>,
    pub batch_sizes: Vec<usize>,
    pub async_clients: Vec<usize>,
    pub worker_clients: Vec<usize>,
    pub tracing_clients: Vec<usize>,
    pub pool_size: u32,
    pub copy_rows: usize,
    pub metrics_rows: u64,
    pub metrics_requests: usize,
    pub skip_metrics: bool,
    /// 0: no large point.
    pub large_rows: u64,
    pub quick: bool,
    pub cold_start_runs: usize,
    pub quiet_wait: Duration,
    pub out: PathBuf,
}

impl Args {
    /// The process's command line; on `--help` or a bad flag, prints and exits as clap does
    /// (0 for help, 2 for an error).
    pub fn parse() -> Self {
        Self::from(Flags::parse())
    }

    /// `argv` (the program name first); the error is clap's, help included.
    #[cfg(test)]
    pub fn try_parse_from<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Flags::try_parse_from(argv).map(Self::from)
    }

    fn defaults() -> Self {
        Self {
            duration: Duration::from_secs(20),
            warmup: Duration::from_secs(2),
            runs: 3,
            clients: vec![1, 4, 16, 64],
            batch_clients: vec![4, 16],
            batch_sizes: vec![100, 1000],
            async_clients: vec![16],
            worker_clients: vec![16, 64],
            tracing_clients: vec![16],
            pool_size: 32,
            copy_rows: 400_000,
            metrics_rows: 10_000_000,
            metrics_requests: 200,
            skip_metrics: false,
            large_rows: 100_000_000,
            quick: false,
            cold_start_runs: 10,
            quiet_wait: Duration::ZERO,
            out: PathBuf::from("docs/benchmarks.md"),
        }
    }

    fn quick_defaults() -> Self {
        Self {
            duration: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            runs: 1,
            clients: vec![16, 64],
            batch_clients: vec![4],
            copy_rows: 50_000,
            metrics_rows: 1_000_000,
            metrics_requests: 50,
            large_rows: 0,
            quick: true,
            out: PathBuf::from("target/bench-quick.md"),
            ..Self::defaults()
        }
    }
}

impl From<Flags> for Args {
    /// The defaults (`--quick`'s when it is given), each overridden by its flag.
    fn from(flags: Flags) -> Self {
        let base = if flags.quick { Self::quick_defaults() } else { Self::defaults() };
        Self {
            duration: flags.duration.unwrap_or(base.duration),
            warmup: flags.warmup.unwrap_or(base.warmup),
            runs: flags.runs.unwrap_or(base.runs),
            clients: flags.clients.map_or(base.clients, |c| c.0),
            batch_clients: flags.batch_clients.map_or(base.batch_clients, |c| c.0),
            batch_sizes: flags.batch_sizes.map_or(base.batch_sizes, |c| c.0),
            async_clients: flags.async_clients.map_or(base.async_clients, |c| c.0),
            worker_clients: flags.worker_clients.map_or(base.worker_clients, |c| c.0),
            tracing_clients: flags.tracing_clients.map_or(base.tracing_clients, |c| c.0),
            pool_size: flags.pool_size.unwrap_or(base.pool_size),
            copy_rows: flags.copy_rows.unwrap_or(base.copy_rows),
            metrics_rows: flags.metrics_rows.unwrap_or(base.metrics_rows),
            metrics_requests: flags.metrics_requests.unwrap_or(base.metrics_requests),
            skip_metrics: flags.skip_metrics,
            large_rows: flags.large_rows.unwrap_or(base.large_rows),
            quick: flags.quick,
            quiet_wait: flags.quiet_wait.unwrap_or(base.quiet_wait),
            out: flags.out.unwrap_or(base.out),
            ..base
        }
    }
}

// Value parsers: clap reports their message as "invalid value '…' for '--flag <N>': …".

fn positive_seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err("needs a positive number".to_owned()),
    }
}

fn seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err("needs a number of seconds".to_owned()),
    }
}

fn count(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err("needs a positive whole number".to_owned()),
    }
}

fn count_u32(value: &str) -> Result<u32, String> {
    u32::try_from(count(value)?).map_err(|_| "too large".to_owned())
}

fn count_u64(value: &str) -> Result<u64, String> {
    u64::try_from(count(value)?).map_err(|_| "too large".to_owned())
}

fn count_or_zero(value: &str) -> Result<u64, String> {
    value.trim().parse::<u64>().map_err(|_| "needs a whole number (0 for none)".to_owned())
}

fn counts(value: &str) -> Result<Counts, String> {
    value.split(',').map(count).collect::<Result<_, _>>().map(Counts).map_err(|e| format!("{e} in each item"))
}

/// `counts`, where an empty value is an empty list.
fn counts_or_none(value: &str) -> Result<Counts, String> {
    if value.is_empty() { Ok(Counts(Vec::new())) } else { counts(value) }
}

fn batch_sizes(value: &str) -> Result<Counts, String> {
    let sizes = counts(value)?;
    if sizes.0.iter().any(|&n| n > 1000) {
        return Err("/events/batch takes at most 1000 events".to_owned());
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).expect("valid flags")
    }

    fn refused(args: &[&str]) -> ErrorKind {
        match Args::try_parse_from(std::iter::once("bench").chain(args.iter().copied())) {
            Ok(args) => panic!("{args:?} accepted"),
            Err(err) => err.kind(),
        }
    }

    #[test]
    fn the_command_is_well_formed() {
        Flags::command().debug_assert();
    }

    #[test]
    fn defaults_follow_the_method() {
        let args = parse(&[]);
        assert_eq!(args.duration, Duration::from_secs(20));
        assert_eq!(args.warmup, Duration::from_secs(2));
        assert_eq!(args.runs, 3);
        assert_eq!(args.clients, vec![1, 4, 16, 64]);
        assert_eq!(args.batch_clients, vec![4, 16]);
        assert_eq!(args.batch_sizes, vec![100, 1000]);
        assert_eq!(args.async_clients, vec![16]);
        assert_eq!(args.worker_clients, vec![16, 64]);
        assert_eq!(args.large_rows, 100_000_000);
        assert_eq!((args.pool_size, args.copy_rows, args.metrics_rows), (32, 400_000, 10_000_000));
        assert_eq!(args.metrics_requests, 200);
        assert!(!args.quick && !args.skip_metrics);
        assert_eq!(args.quiet_wait, Duration::ZERO);
        assert_eq!(args.out, PathBuf::from("docs/benchmarks.md"));
    }

    #[test]
    fn quick_shrinks_and_flags_still_win() {
        let args = parse(&["--runs", "2", "--quick", "--skip-metrics"]);
        assert!(args.quick && args.skip_metrics);
        assert_eq!(args.runs, 2, "a flag beats the --quick default wherever it stands");
        assert_eq!(args.duration, Duration::from_secs(3));
        assert_eq!(args.clients, vec![16, 64]);
        assert_eq!(args.metrics_rows, 1_000_000);
        assert_eq!(args.large_rows, 0, "no large point in a smoke run");
        assert_eq!(args.worker_clients, vec![16, 64]);
        assert_eq!(args.out, PathBuf::from("target/bench-quick.md"));
        assert_eq!(parse(&["--quick", "--large-rows", "2000000"]).large_rows, 2_000_000);
        assert_eq!(parse(&["--large-rows", "0"]).large_rows, 0);
        assert_eq!(parse(&["--quick", "--out", "x.md"]).out, PathBuf::from("x.md"));
    }

    #[test]
    fn values_parse() {
        let args = parse(&[
            "--duration",
            "1.5",
            "--warmup",
            "0",
            "--clients",
            "2, 8",
            "--async-clients",
            "",
            "--worker-clients",
            "",
            "--pool-size",
            "8",
            "--quiet-wait",
            "60",
            "--runs",
            "5",
            "--runs",
            "4",
        ]);
        assert_eq!(args.duration, Duration::from_millis(1500));
        assert_eq!(args.warmup, Duration::ZERO);
        assert_eq!(args.clients, vec![2, 8]);
        assert!(args.async_clients.is_empty(), "an empty list skips the async point");
        assert!(args.worker_clients.is_empty());
        assert_eq!(args.pool_size, 8);
        assert_eq!(args.quiet_wait, Duration::from_secs(60));
        assert_eq!(args.runs, 4, "the last of a repeated flag counts");
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(refused(&["--runs", "0"]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--duration", "0"]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--warmup", "-1"]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--runs", "-3"]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--clients", "4,x"]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--clients", ""]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--batch-sizes", "5000"]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--pool-size", "5000000000"]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--large-rows", "-1"]), ErrorKind::ValueValidation);
        assert_eq!(refused(&["--runs"]), ErrorKind::InvalidValue);
        assert_eq!(refused(&["--nope"]), ErrorKind::UnknownArgument);
        assert_eq!(refused(&["--help"]), ErrorKind::DisplayHelp);
        assert_eq!(refused(&["-h"]), ErrorKind::DisplayHelp);
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let help = Flags::command().render_help().to_string();
        for flag in [
            "--duration <SECS>",
            "--warmup <SECS>",
            "--runs <N>",
            "--clients <LIST>",
            "--batch-clients <LIST>",
            "--batch-sizes <LIST>",
            "--async-clients <LIST>",
            "--worker-clients <LIST>",
            "--pool-size <N>",
            "--copy-rows <N>",
            "--metrics-rows <N>",
            "--metrics-requests <N>",
            "--skip-metrics",
            "--large-rows <N>",
            "--quiet-wait <SECS>",
            "--quick",
            "--out <FILE>",
            "-h, --help",
        ] {
            assert!(help.contains(flag), "{flag} missing from\n{help}");
        }
        assert!(help.contains("default 10000000"), "{help}");
        assert!(help.contains("Run it through scripts/bench"), "{help}");
    }
}

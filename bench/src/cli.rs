//! Command-line flags. Every knob has a default that follows docs/benchmarks.md's method;
//! `--quick` shrinks everything for a smoke run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

pub const USAGE: &str = "\
usage: bench [flags]

  --duration SECS       measured seconds per load point (pgbench -T and the service alike); default 20
  --warmup SECS         unmeasured load before each service point (opens the pool); default 2
  --runs N              runs of every point; the report gives the median and min-max; default 3
  --clients LIST        single-event concurrencies, comma-separated; default 1,4,16,64
  --batch-clients LIST  /events/batch concurrencies; default 4,16
  --batch-sizes LIST    events per /events/batch request; default 100,1000
  --async-clients LIST  concurrencies of the async point (events in pubsub mode on the emulator,
                        the worker storing); empty to skip it; default 16
  --pool-size N         DB_POOL_SIZE of the services; default 32
  --copy-rows N         rows per COPY measurement; default 400000
  --metrics-rows N      rows loaded for the /metrics measurement; default 10000000
  --metrics-requests N  GET /metrics requests per query (capped at 60 s per query); default 200
  --skip-metrics        skip loading rows and measuring GET /metrics
  --quiet-wait SECS     before each load point, wait up to SECS for the machine to be under 15%
                        busy (other work on a shared machine skews the numbers); default 0 (off)
  --quick               smoke run: 3 s points, 1 run, clients 16,64, batch clients 4, 1M rows,
                        50 requests per query; writes target/bench-quick.md unless --out is given
  --out FILE            where the markdown report goes (the plot goes to FILE-without-.md/ingest.png);
                        default docs/benchmarks.md
  -h, --help            this text

Run it through scripts/bench, which builds the release binaries first; bench finds the service
binaries next to its own executable.";

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
    pub pool_size: u32,
    pub copy_rows: usize,
    pub metrics_rows: u64,
    pub metrics_requests: usize,
    pub skip_metrics: bool,
    pub quick: bool,
    pub cold_start_runs: usize,
    pub quiet_wait: Duration,
    pub out: PathBuf,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Args>),
    Help,
}

impl Args {
    pub fn parse(argv: impl IntoIterator<Item = String>) -> anyhow::Result<Parsed> {
        let argv: Vec<String> = argv.into_iter().collect();
        let quick = argv.iter().any(|a| a == "--quick");
        let mut args = if quick { Self::quick_defaults() } else { Self::defaults() };
        let mut iter = argv.into_iter();
        while let Some(flag) = iter.next() {
            let mut value = || iter.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--quick" => {}
                "--skip-metrics" => args.skip_metrics = true,
                "--duration" => args.duration = Duration::from_secs_f64(positive(&flag, &value()?)?),
                "--warmup" => args.warmup = Duration::from_secs_f64(non_negative(&flag, &value()?)?),
                "--runs" => args.runs = count(&flag, &value()?)?,
                "--clients" => args.clients = list(&flag, &value()?)?,
                "--batch-clients" => args.batch_clients = list(&flag, &value()?)?,
                "--async-clients" => {
                    let clients = value()?;
                    args.async_clients = if clients.is_empty() { Vec::new() } else { list(&flag, &clients)? };
                }
                "--batch-sizes" => {
                    args.batch_sizes = list(&flag, &value()?)?;
                    if args.batch_sizes.iter().any(|&n| n > 1000) {
                        bail!("--batch-sizes: /events/batch takes at most 1000 events");
                    }
                }
                "--pool-size" => args.pool_size = u32::try_from(count(&flag, &value()?)?)?,
                "--copy-rows" => args.copy_rows = count(&flag, &value()?)?,
                "--metrics-rows" => args.metrics_rows = u64::try_from(count(&flag, &value()?)?)?,
                "--metrics-requests" => args.metrics_requests = count(&flag, &value()?)?,
                "--quiet-wait" => args.quiet_wait = Duration::from_secs_f64(non_negative(&flag, &value()?)?),
                "--out" => args.out = PathBuf::from(value()?),
                other => bail!("unknown flag {other:?}\n\n{USAGE}"),
            }
        }
        Ok(Parsed::Run(Box::new(args)))
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
            pool_size: 32,
            copy_rows: 400_000,
            metrics_rows: 10_000_000,
            metrics_requests: 200,
            skip_metrics: false,
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
            quick: true,
            out: PathBuf::from("target/bench-quick.md"),
            ..Self::defaults()
        }
    }
}

fn positive(flag: &str, value: &str) -> anyhow::Result<f64> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => bail!("{flag} needs a positive number, not {value:?}"),
    }
}

fn non_negative(flag: &str, value: &str) -> anyhow::Result<f64> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => bail!("{flag} needs a number of seconds, not {value:?}"),
    }
}

fn count(flag: &str, value: &str) -> anyhow::Result<usize> {
    match value.parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => bail!("{flag} needs a positive whole number, not {value:?}"),
    }
}

fn list(flag: &str, value: &str) -> anyhow::Result<Vec<usize>> {
    value.split(',').map(|part| count(flag, part.trim())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        match Args::parse(args.iter().map(|s| (*s).to_owned())) {
            Ok(Parsed::Run(args)) => *args,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_method() {
        let args = parse(&[]);
        assert_eq!(args.duration, Duration::from_secs(20));
        assert_eq!(args.runs, 3);
        assert_eq!(args.clients, vec![1, 4, 16, 64]);
        assert_eq!(args.out, PathBuf::from("docs/benchmarks.md"));
    }

    #[test]
    fn quick_shrinks_and_flags_still_win() {
        let args = parse(&["--runs", "2", "--quick", "--skip-metrics"]);
        assert!(args.quick && args.skip_metrics);
        assert_eq!(args.runs, 2, "a flag beats the --quick default wherever it stands");
        assert_eq!(args.metrics_rows, 1_000_000);
        assert_eq!(args.out, PathBuf::from("target/bench-quick.md"));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Args::parse(["--runs".to_owned(), "0".to_owned()]).is_err());
        assert!(Args::parse(["--clients".to_owned(), "4,x".to_owned()]).is_err());
        assert!(Args::parse(["--batch-sizes".to_owned(), "5000".to_owned()]).is_err());
        assert!(Args::parse(["--nope".to_owned()]).is_err());
        assert!(matches!(Args::parse(["--help".to_owned()]), Ok(Parsed::Help)));
    }
}

//! Everything one run measured, as the report and the plot read it.

use std::time::Duration;

use crate::cli::Args;
use crate::load::Measured;
use crate::metrics::{Loaded, QueryResult};
pub use crate::pubsub::AsyncRun;
use crate::stats::Spread;

/// One run of a single-event point: pgbench and the service at the same concurrency,
/// measured back to back.
#[derive(Debug, Clone)]
pub struct SingleRun {
    pub clients: usize,
    pub pgbench: Option<Measured>,
    /// pgbench into the trigger-free copy of `events` (only when `events` has triggers, and
    /// only at the target concurrencies, 16 and 64).
    pub pgbench_bare: Option<Measured>,
    pub service: Option<Measured>,
}

/// One run of a batch point: pgbench's 100-row insert and the service's batches.
#[derive(Debug, Clone)]
pub struct BatchRun {
    pub clients: usize,
    pub pgbench100: Option<Measured>,
    /// pgbench's 100-row insert into the trigger-free copy of `events`, when it has triggers.
    pub pgbench100_bare: Option<Measured>,
    /// (events per request, what the service did)
    pub service: Vec<(usize, Option<Measured>)>,
}

/// One COPY measurement.
#[derive(Debug, Clone)]
pub struct CopyRun {
    pub streams: usize,
    pub rows: usize,
    pub events_per_s: f64,
}

/// Start-up time, memory and size of the deployable binaries.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    pub cold_starts: Vec<Duration>,
    /// (binary, VmRSS KiB) one second after start, before any load.
    pub idle_rss_kib: Vec<(String, Option<u64>)>,
    /// `events` VmRSS one second after the single-event points ended.
    pub events_rss_after_load_kib: Option<u64>,
    /// (binary, bytes)
    pub sizes: Vec<(String, Option<u64>)>,
}

/// The machine and the software the run had.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub date: String,
    pub cores: usize,
    pub memory: String,
    pub cpu_model: String,
    pub kernel: String,
    pub postgres: String,
    pub command: String,
    /// The commit the binaries were built from, and whether the work tree differed from it.
    pub revision: String,
    /// The migrations applied and the user triggers on `events`.
    pub migrations: String,
    pub events_triggers: Option<String>,
    /// Share of all cores busy over 2 s just before the run started anything.
    pub busy_before_pct: f64,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Results {
    pub args: Args,
    pub machine: Machine,
    pub single: Vec<SingleRun>,
    pub async_runs: Vec<AsyncRun>,
    pub batch: Vec<BatchRun>,
    pub copy: Vec<CopyRun>,
    pub metrics_load: Option<Loaded>,
    pub metrics: Vec<QueryResult>,
    pub footprint: Footprint,
    /// What failed or could not be measured, in words.
    pub failures: Vec<String>,
    pub elapsed: Duration,
    pub plot: Option<String>,
}

impl Results {
    /// The single-event runs at `clients`.
    pub fn single_at(&self, clients: usize) -> impl Iterator<Item = &SingleRun> {
        self.single.iter().filter(move |r| r.clients == clients)
    }

    /// Spread of `f` over the pgbench side of the single-event runs at `clients`.
    pub fn single_pg(&self, clients: usize, f: impl Fn(&Measured) -> f64) -> Option<Spread> {
        Spread::of(self.single_at(clients).filter_map(|r| r.pgbench.as_ref()).map(f))
    }

    /// Spread of `f` over the service side of the single-event runs at `clients`.
    pub fn single_svc(&self, clients: usize, f: impl Fn(&Measured) -> f64) -> Option<Spread> {
        Spread::of(self.single_at(clients).filter_map(|r| r.service.as_ref()).map(f))
    }

    /// Spread of `f` over the bare-table pgbench runs at `clients`.
    pub fn single_bare(&self, clients: usize, f: impl Fn(&Measured) -> f64) -> Option<Spread> {
        Spread::of(self.single_at(clients).filter_map(|r| r.pgbench_bare.as_ref()).map(f))
    }

    /// Spread of `f(service, bare-table pgbench)` over the runs at `clients` that measured both.
    pub fn single_paired_bare(&self, clients: usize, f: impl Fn(&Measured, &Measured) -> f64) -> Option<Spread> {
        Spread::of(self.single_at(clients).filter_map(|r| Some(f(r.service.as_ref()?, r.pgbench_bare.as_ref()?))))
    }

    /// Spread of `f(service, pgbench)` over the runs at `clients` that measured both.
    pub fn single_paired(&self, clients: usize, f: impl Fn(&Measured, &Measured) -> f64) -> Option<Spread> {
        Spread::of(self.single_at(clients).filter_map(|r| Some(f(r.service.as_ref()?, r.pgbench.as_ref()?))))
    }

    pub fn batch_at(&self, clients: usize) -> impl Iterator<Item = &BatchRun> {
        self.batch.iter().filter(move |r| r.clients == clients)
    }

    /// The service's batch of `size` at `clients`, in every run that measured it.
    pub fn batch_svc(&self, clients: usize, size: usize) -> impl Iterator<Item = (&BatchRun, &Measured)> {
        self.batch_at(clients).filter_map(move |r| {
            let measured = r.service.iter().find(|(s, _)| *s == size)?.1.as_ref()?;
            Some((r, measured))
        })
    }

    /// The "everything else" CPU share of every load point: what processes outside the
    /// benchmark (and the idle services) took while it measured.
    pub fn other_cpu(&self) -> Option<Spread> {
        let single = self.single.iter().flat_map(|r| [r.pgbench.as_ref(), r.pgbench_bare.as_ref(), r.service.as_ref()]);
        let batch = self.batch.iter().flat_map(|r| {
            [r.pgbench100.as_ref(), r.pgbench100_bare.as_ref()]
                .into_iter()
                .chain(r.service.iter().map(|(_, m)| m.as_ref()))
        });
        Spread::of(single.chain(batch).flatten().map(|m| m.cpu.other))
    }

    /// COPY events/s at `streams`.
    pub fn copy_rate(&self, streams: usize) -> Option<Spread> {
        Spread::of(self.copy.iter().filter(|c| c.streams == streams).map(|c| c.events_per_s))
    }
}

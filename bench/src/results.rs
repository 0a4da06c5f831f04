//! Everything one run measured, as the report and the plot read it.

use std::time::Duration;

use crate::cli::Args;
use crate::load::Measured;
pub use crate::maintenance::MaintenanceRun;
use crate::metrics::{Loaded, QueryResult};
pub use crate::pubsub::AsyncRun;
use crate::stats::Spread;

/// One run of a single-event point: the yardsticks and the service at the same concurrency,
/// measured back to back.
#[derive(Debug, Clone)]
pub struct SingleRun {
    pub clients: usize,
    /// pgbench's single-row insert into the bare table.
    pub bare: Option<Measured>,
    /// pgbench running the service's own statement for one event.
    pub same: Option<Measured>,
    /// `POST /events`.
    pub service: Option<Measured>,
    /// The `worker` fed push requests at the same concurrency (at `--worker-clients` only).
    pub worker: Option<Measured>,
}

/// One run of a batch point: pgbench's 100-row inserts and the service's batches.
#[derive(Debug, Clone)]
pub struct BatchRun {
    pub clients: usize,
    /// pgbench's 100-row insert into the bare table.
    pub bare100: Option<Measured>,
    /// pgbench running the service's own statement for 100 events.
    pub same100: Option<Measured>,
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

/// A loaded table: how it was loaded, its `/metrics` timings, and single-event ingest into it.
#[derive(Debug, Clone)]
pub struct LoadedTable {
    pub load: Loaded,
    pub queries: Vec<QueryResult>,
    /// `POST /events` at `crate::LOADED_INGEST_CLIENTS` clients into the loaded table.
    pub ingest: Option<Measured>,
    /// The release `migrate maintain` dropping the span's first day, after the ingest.
    pub expiry: Option<crate::stack::Maintained>,
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
    pub schema: crate::stack::Schema,
    /// Share of all cores busy over 2 s just before the run started anything.
    pub busy_before_pct: f64,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Results {
    pub args: Args,
    pub machine: Machine,
    pub single: Vec<SingleRun>,
    pub tracing: Vec<crate::traces::TracingRun>,
    pub maintenance: Vec<MaintenanceRun>,
    pub async_runs: Vec<AsyncRun>,
    pub batch: Vec<BatchRun>,
    pub copy: Vec<CopyRun>,
    /// `/metrics` on the table of `--metrics-rows`.
    pub metrics: Option<LoadedTable>,
    /// The large point (`--large-rows`), and what decided its size or why it was not measured.
    pub large: Option<LoadedTable>,
    pub large_note: Option<String>,
    pub footprint: Footprint,
    /// What failed or could not be measured, in words.
    pub failures: Vec<String>,
    pub elapsed: Duration,
    pub plot: Option<String>,
}

/// Which side of a single-event run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Bare,
    Same,
    Service,
    Worker,
}

impl SingleRun {
    pub fn side(&self, side: Side) -> Option<&Measured> {
        match side {
            Side::Bare => self.bare.as_ref(),
            Side::Same => self.same.as_ref(),
            Side::Service => self.service.as_ref(),
            Side::Worker => self.worker.as_ref(),
        }
    }
}

impl Results {
    /// The single-event runs at `clients`.
    pub fn single_at(&self, clients: usize) -> impl Iterator<Item = &SingleRun> {
        self.single.iter().filter(move |r| r.clients == clients)
    }

    /// Spread of `f` over one side of the single-event runs at `clients`.
    pub fn single(&self, side: Side, clients: usize, f: impl Fn(&Measured) -> f64) -> Option<Spread> {
        Spread::of(self.single_at(clients).filter_map(|r| r.side(side)).map(f))
    }

    /// Spread of `f(a, b)` over the runs at `clients` that measured both sides: ratios are
    /// taken within a run (measured back to back), then the median over runs.
    pub fn single_paired(
        &self,
        a: Side,
        b: Side,
        clients: usize,
        f: impl Fn(&Measured, &Measured) -> f64,
    ) -> Option<Spread> {
        Spread::of(self.single_at(clients).filter_map(|r| Some(f(r.side(a)?, r.side(b)?))))
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

    /// Traced ÷ untraced events/s at `ratio` and `clients`, per run.
    pub fn tracing_ratio(&self, clients: usize, ratio: f64) -> Option<Spread> {
        Spread::of(self.tracing.iter().filter(|r| r.clients == clients).filter_map(|r| {
            let traced = r.at(ratio)?.0?;
            Some(traced.events_per_s / r.off.as_ref()?.events_per_s)
        }))
    }

    /// Batch events/s ÷ the bare table's 100-row insert, per run, at `clients` and `size`.
    pub fn batch_vs_bare(&self, clients: usize, size: usize) -> Option<Spread> {
        Spread::of(
            self.batch_svc(clients, size)
                .filter_map(|(run, m)| Some(m.events_per_s / run.bare100.as_ref()?.events_per_s)),
        )
    }

    /// Every service measurement of the run, with what it was: for the rows-stored check.
    pub fn service_points(&self) -> Vec<(String, &Measured)> {
        let mut all = Vec::new();
        for r in &self.single {
            if let Some(m) = &r.service {
                all.push((format!("POST /events, {} clients", r.clients), m));
            }
            if let Some(m) = &r.worker {
                all.push((format!("worker pushes, {} clients", r.clients), m));
            }
        }
        for r in &self.tracing {
            for (ratio, m, _) in &r.traced {
                if let Some(m) = m {
                    all.push((format!("POST /events with traces exported at ratio {ratio}, {} clients", r.clients), m));
                }
            }
        }
        for r in &self.maintenance {
            all.push((format!("maintenance under load, {} clients", crate::maintenance::CLIENTS), &r.measured));
        }
        for r in &self.async_runs {
            all.push((format!("events (pubsub) → worker, {} clients", r.clients), &r.accepted));
        }
        for r in &self.batch {
            for (size, m) in &r.service {
                if let Some(m) = m {
                    all.push((format!("batches of {size}, {} clients", r.clients), m));
                }
            }
        }
        for table in [&self.metrics, &self.large].into_iter().flatten() {
            if let Some(m) = &table.ingest {
                all.push((format!("POST /events into {} rows", crate::stats::rate(table.load.rows as f64)), m));
            }
        }
        all
    }

    /// The "everything else" CPU share of every load point: what processes outside the
    /// benchmark (and the idle services) took while it measured.
    pub fn other_cpu(&self) -> Option<Spread> {
        let single = self.single.iter().flat_map(|r| [&r.bare, &r.same, &r.service, &r.worker]);
        let batch = self
            .batch
            .iter()
            .flat_map(|r| [&r.bare100, &r.same100].into_iter().chain(r.service.iter().map(|(_, m)| m)));
        Spread::of(single.chain(batch).flatten().map(|m| m.cpu.other))
    }

    /// COPY events/s at `streams`.
    pub fn copy_rate(&self, streams: usize) -> Option<Spread> {
        Spread::of(self.copy.iter().filter(|c| c.streams == streams).map(|c| c.events_per_s))
    }
}

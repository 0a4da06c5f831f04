//! `migrate`: the database's operator commands, each run once and exiting 0 on success.
//!
//! - `migrate` applies pending migrations (a Cloud Run job before each deploy, a one-shot in
//!   docker compose);
//! - `migrate maintain [--repeat]` keeps the partitioned event log in shape (a Cloud Run job on
//!   a Cloud Scheduler schedule; with `--repeat`, every `MAINTENANCE_INTERVAL_SECS` until
//!   SIGTERM, as compose runs it);
//! - `migrate erase-tenant TENANT [--before RFC3339] [--batch-size N]` removes everything the
//!   tenant stored before that instant (default: now), `N` rows per transaction (default 5000).

use std::process::ExitCode;
use std::time::Duration;

use domain::TenantId;
use platform::{Process, StartupError};

const USAGE: &str =
    "usage: migrate | migrate maintain [--repeat] | migrate erase-tenant TENANT [--before RFC3339] [--batch-size N]";

/// Operator commands run long statements on few connections.
const POOL: data::PoolConfig = data::PoolConfig {
    max_size: 1,
    acquire_timeout: Duration::from_secs(30),
    statement_timeout: Duration::from_secs(600),
};

/// Rows per erasure batch: each a short transaction.
const ERASURE_BATCH: i64 = 5_000;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    platform::startup::run(async {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            [] => migrate().await,
            ["maintain"] => maintain(false).await,
            ["maintain", "--repeat"] => maintain(true).await,
            ["erase-tenant", tenant, options @ ..] => erase(tenant, options).await,
            _ => Err(StartupError::dependency(USAGE, "unknown arguments")),
        }
    })
    .await
}

async fn migrate() -> Result<(), StartupError> {
    let process = Process::from_env()?;
    let applied = data::run_migrations(process.database_url()?)
        .await
        .map_err(|e| StartupError::dependency("migration failed", e))?;
    tracing::info!(applied = ?applied, "schema is current");
    Ok(())
}

async fn maintain(repeat: bool) -> Result<(), StartupError> {
    let process = Process::from_env()?;
    let pool = data::connect_pool(process.database_url()?, &POOL).map_err(StartupError::database_url)?;
    let plan = data::MaintenancePlan::from(&process.config);
    let mut shutdown = std::pin::pin!(platform::shutdown_signal());
    loop {
        data::maintain(&pool, chrono::Utc::now(), &plan)
            .await
            .map_err(|e| StartupError::dependency("maintenance failed", e))?
            .log();
        if !repeat {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(process.config.maintenance_interval) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

async fn erase(tenant: &str, options: &[&str]) -> Result<(), StartupError> {
    let bad = |what: &str| StartupError::dependency(USAGE, what.to_owned());
    let tenant = TenantId::parse(tenant).map_err(|reason| bad(&format!("TENANT {reason}")))?;
    let (mut started, mut batch) = (chrono::Utc::now(), ERASURE_BATCH);
    for pair in options.chunks(2) {
        match pair {
            ["--before", at] => {
                started = domain::time::parse_timestamp(at).map_err(|reason| bad(&format!("--before {reason}")))?;
            }
            ["--batch-size", n] => {
                batch =
                    n.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("--batch-size must be a positive number"))?;
            }
            _ => return Err(bad("unknown option")),
        }
    }
    let process = Process::from_env()?;
    let pool = data::connect_pool(process.database_url()?, &POOL).map_err(StartupError::database_url)?;
    tracing::info!(tenant_id = %tenant, before = %started, "erasing the tenant's events, identities and rollups");
    let report = data::erase_tenant(&pool, &tenant, started, batch, |so_far| {
        tracing::info!(tenant_id = %tenant, events = so_far.events, identities = so_far.identities, rollup_rows = so_far.rollup_rows, "erasing");
    })
    .await
    .map_err(|e| StartupError::dependency("erasure failed; run it again to finish", e))?;
    tracing::info!(tenant_id = %tenant, events = report.events, identities = report.identities, rollup_rows = report.rollup_rows, "tenant erased");
    #[allow(clippy::print_stdout)]
    {
        println!(
            "erased tenant {tenant}: {} events, {} identities, {} rollup rows (stored before {})",
            report.events,
            report.identities,
            report.rollup_rows,
            started.to_rfc3339()
        );
    }
    Ok(())
}

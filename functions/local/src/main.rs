//! Runs the whole API on one port. With `DATABASE_URL` unset it starts a throwaway PostgreSQL
//! cluster, migrates it, and removes it on exit; with `TENANT_KEYS` unset it serves the demo
//! tenants; with `INGEST_MODE=pubsub` and no `PUBSUB_EMULATOR_HOST` it starts the emulator.

use std::process::ExitCode;

use platform::config::IngestMode;
use platform::{KeyPolicy, Process, StartupError};

#[tokio::main]
async fn main() -> ExitCode {
    platform::startup::run(run()).await
}

async fn run() -> Result<(), StartupError> {
    let mut process = Process::from_env()?;
    if process.config.tenant_keys.is_none() && process.config.tenant_keys_secret.is_none() {
        tracing::warn!(
            "TENANT_KEYS is unset: serving the demo tenants acme and globex (keys in README.md); never deploy these"
        );
    }

    // Declared before the pool so that it is dropped after it: the server outlives its clients.
    let mut cluster = None;
    let database_url = match &process.config.database_url {
        Some(url) => url.clone(),
        None => {
            tracing::info!("DATABASE_URL is unset: starting a throwaway PostgreSQL cluster");
            let started = blocking(devdb::Cluster::start)
                .await
                .map_err(|e| StartupError::dependency("no throwaway PostgreSQL", e))?;
            tracing::info!(port = started.port(), "throwaway PostgreSQL is up; it is deleted on exit");
            let url = started.url("postgres");
            cluster = Some(started);
            url
        }
    };
    let applied =
        data::run_migrations(&database_url).await.map_err(|e| StartupError::dependency("migration failed", e))?;
    tracing::info!(applied = ?applied, "schema is current");
    let pool = data::connect_pool(&database_url, &process.config.pool).map_err(StartupError::database_url)?;
    // Partitions locally too: maintenance now and every MAINTENANCE_INTERVAL_SECS, as the
    // scheduled job does in the cloud.
    tokio::spawn(maintain_forever(
        pool.clone(),
        data::MaintenancePlan::from(&process.config),
        process.config.maintenance_interval,
    ));
    let listener = process.listen().await?;

    // Async mode: the emulator (PUBSUB_EMULATOR_HOST, or one started here) with the topic and
    // a push subscription delivering to this server's own worker route.
    let mut emulator = None;
    if process.config.ingest_mode == IngestMode::PubSub {
        let host = match &process.config.pubsub_emulator_host {
            Some(host) => host.clone(),
            None => {
                tracing::info!("PUBSUB_EMULATOR_HOST is unset: starting a Pub/Sub emulator");
                let started = blocking(devdb::PubSubEmulator::start)
                    .await
                    .map_err(|e| StartupError::dependency("no Pub/Sub emulator", e))?;
                let host = started.host();
                emulator = Some(started);
                host
            }
        };
        let topic = process.config.pubsub_topic.clone().unwrap_or_default();
        let port = listener.local_addr().map_err(|e| StartupError::dependency("no local address", e))?.port();
        let push_endpoint = format!("http://127.0.0.1:{port}/pubsub/push");
        local::pubsub::Topology::for_topic(&topic)
            .ensure(&host, &push_endpoint, 5)
            .await
            .map_err(|e| StartupError::dependency("cannot set up the emulator's topic and subscription", e))?;
        tracing::info!(%host, %topic, %push_endpoint, "async mode: publishing to the emulator, pushed back to /pubsub/push");
        process.config.pubsub_emulator_host = Some(host);
    }

    let state = process.app_state(KeyPolicy::DemoFallback(local::DEMO_TENANT_KEYS)).await?;
    let tenants: Vec<String> = state.keys.tenants().iter().map(ToString::to_string).collect();
    let writer = data::BatchingWriter::from_config(&pool, &process.config);
    let routes = local::routes(&state, pool, writer)?;
    tracing::info!(tenants = ?tenants, mode = ?process.config.ingest_mode, "local API ready");
    process.serve(listener, routes).await;

    drop(state);
    if let Some(emulator) = emulator {
        blocking(move || drop(emulator)).await;
    }
    if let Some(cluster) = cluster {
        blocking(move || drop(cluster)).await;
        tracing::info!("throwaway PostgreSQL removed");
    }
    Ok(())
}

async fn maintain_forever(pool: data::Pool, plan: data::MaintenancePlan, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        match data::maintain(&pool, chrono::Utc::now(), &plan).await {
            Ok(report) => report.log(),
            Err(err) => {
                tracing::warn!(error = %platform::error::Chain(&err), "maintenance failed; trying again at the next interval")
            }
        }
    }
}

/// Runs blocking set-up or clean-up (starting or stopping a server process) off the runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|panicked| std::panic::resume_unwind(panicked.into_panic()))
}

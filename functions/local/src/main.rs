//! Runs the whole API on one port. With `DATABASE_URL` unset it starts a throwaway PostgreSQL
//! cluster, migrates it, and removes it on exit; with `TENANT_KEYS` unset it serves the demo
//! tenants.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use platform::config::IngestMode;
use platform::{AppState, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return platform::deployment::exit_with(&err),
    };
    platform::telemetry::init(&config);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if config.tenant_keys.is_none() && config.tenant_keys_secret.is_none() {
        tracing::warn!(
            "TENANT_KEYS is unset: serving the demo tenants acme and globex (keys in README.md); never deploy these"
        );
    }
    let keys = platform::key_source::load_tenant_keys(&config, Some(local::DEMO_TENANT_KEYS)).await?;
    let tenants: Vec<String> = keys.tenants().iter().map(ToString::to_string).collect();

    // Declared before the pool so that it is dropped after it: the server outlives its clients.
    let mut cluster = None;
    let database_url = match &config.database_url {
        Some(url) => url.clone(),
        None => {
            tracing::info!("DATABASE_URL is unset: starting a throwaway PostgreSQL cluster");
            let started = tokio::task::spawn_blocking(devdb::Cluster::start).await??;
            let url = started.url("postgres");
            tracing::info!(port = started.port(), "throwaway PostgreSQL is up; it is deleted on exit");
            cluster = Some(started);
            url
        }
    };
    let applied = data::run_migrations(&database_url).await?;
    tracing::info!(applied = ?applied, "schema is current");

    let pool = data::connect_pool(&database_url, &config.pool)?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;

    // Async mode: the emulator (PUBSUB_EMULATOR_HOST, or one started here) with the topic and
    // a push subscription delivering to this server's own worker route.
    let mut emulator = None;
    if config.ingest_mode == IngestMode::PubSub {
        let host = match &config.pubsub_emulator_host {
            Some(host) => host.clone(),
            None => {
                tracing::info!("PUBSUB_EMULATOR_HOST is unset: starting a Pub/Sub emulator");
                let started = tokio::task::spawn_blocking(devdb::PubSubEmulator::start).await??;
                let host = started.host();
                emulator = Some(started);
                host
            }
        };
        let topic = config.pubsub_topic.clone().unwrap_or_default();
        let push_endpoint = format!("http://127.0.0.1:{}/pubsub/push", listener.local_addr()?.port());
        local::pubsub::Topology::for_topic(&topic).ensure(&host, &push_endpoint, 5).await?;
        tracing::info!(%host, %topic, %push_endpoint, "async mode: publishing to the emulator, pushed back to /pubsub/push");
        config.pubsub_emulator_host = Some(host);
    }
    tracing::info!(%addr, tenants = ?tenants, mode = ?config.ingest_mode, "local API listening");
    let grace = config.shutdown_grace;
    let state = AppState::new(pool, keys, config);
    let routes = local::routes(&state)?;
    platform::serve(listener, routes, platform::shutdown_signal(), grace).await;
    drop(state);
    if let Some(emulator) = emulator {
        tokio::task::spawn_blocking(move || drop(emulator)).await?;
    }
    if let Some(cluster) = cluster {
        tokio::task::spawn_blocking(move || drop(cluster)).await?;
        tracing::info!("throwaway PostgreSQL removed");
    }
    Ok(())
}

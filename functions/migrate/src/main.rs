//! `migrate`: applies pending migrations to `DATABASE_URL` and exits (0 on success). Run as a
//! Cloud Run job before each deploy and as a one-shot in docker compose.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match platform::Config::from_env() {
        Ok(config) => config,
        Err(err) => return platform::deployment::exit_with(&err),
    };
    platform::telemetry::init(&config);
    let url = match config.require_database_url() {
        Ok(url) => url,
        Err(err) => return platform::deployment::exit_with(&err),
    };
    match data::run_migrations(url).await {
        Ok(applied) => {
            tracing::info!(applied = ?applied, "schema is current");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "migration failed");
            ExitCode::FAILURE
        }
    }
}

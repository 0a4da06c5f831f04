//! `migrate`: applies pending migrations to `DATABASE_URL` and exits (0 on success). Run as a
//! Cloud Run job before each deploy and as a one-shot in docker compose.

use std::process::ExitCode;

use platform::{Process, StartupError};

#[tokio::main]
async fn main() -> ExitCode {
    platform::startup::run(async {
        let process = Process::from_env()?;
        let applied = data::run_migrations(process.database_url()?)
            .await
            .map_err(|e| StartupError::dependency("migration failed", e))?;
        tracing::info!(applied = ?applied, "schema is current");
        Ok(())
    })
    .await
}

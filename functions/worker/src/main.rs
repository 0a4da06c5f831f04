use std::process::ExitCode;

use platform::{KeyPolicy, Process, StartupError};

#[tokio::main]
async fn main() -> ExitCode {
    platform::startup::run(async {
        let process = Process::from_env()?;
        let pool = data::connect_pool_planning(process.database_url()?, &process.config.pool, data::Plans::Generic)
            .map_err(StartupError::database_url)?;
        // Reached only by Pub/Sub push (Cloud Run checks the OIDC token), never by tenants.
        let state = process.app_state(KeyPolicy::NoTenants).await?;
        let listener = process.listen().await?;
        let writer = data::BatchingWriter::from_config(&pool, &process.config);
        process.serve(listener, worker::routes(&state, writer)).await;
        Ok(())
    })
    .await
}

use std::process::ExitCode;

use platform::{KeyPolicy, Process, StartupError};

#[tokio::main]
async fn main() -> ExitCode {
    platform::startup::run(async {
        let process = Process::from_env()?;
        let pool = data::connect_pool_planning(process.database_url()?, &process.config.pool, data::Plans::Generic)
            .map_err(StartupError::database_url)?;
        let state = process.app_state(KeyPolicy::Required).await?;
        let writer = data::BatchingWriter::from_config(&pool, &process.config);
        let sink = events::Sink::start(&process.config, &pool, &writer)?;
        let listener = process.listen().await?;
        process.serve(listener, events::routes(&state, sink)).await;
        Ok(())
    })
    .await
}

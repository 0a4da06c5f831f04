use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match platform::Deployment::from_env().await {
        Ok(deployment) => {
            let routes = metrics::routes(&deployment.state);
            deployment.serve(routes).await
        }
        Err(err) => platform::deployment::exit_with(&err),
    }
}

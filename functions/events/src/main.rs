use std::process::ExitCode;

use platform::deployment::exit_with;

#[tokio::main]
async fn main() -> ExitCode {
    let deployment = match platform::Deployment::from_env().await {
        Ok(deployment) => deployment,
        Err(err) => return exit_with(&err),
    };
    match events::routes(&deployment.state) {
        Ok(routes) => deployment.serve(routes).await,
        Err(err) => exit_with(&err),
    }
}

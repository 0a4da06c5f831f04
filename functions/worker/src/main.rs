use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // The worker is reached only by Pub/Sub push (Cloud Run checks the OIDC token), never by
    // tenants, so it needs no tenant keys.
    match platform::Deployment::from_env_without_tenant_keys() {
        Ok(deployment) => {
            let routes = worker::routes(&deployment.state);
            deployment.serve(routes).await
        }
        Err(err) => platform::deployment::exit_with(&err),
    }
}

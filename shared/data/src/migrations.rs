//! Embedded migrations, applied through `AsyncConnectionWrapper` so that nothing links libpq.

use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::connect::ConnectOptions;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// The advisory lock key that serialises concurrent migration runs (an arbitrary constant).
const MIGRATION_LOCK: i64 = 7_461_312_001;

/// Applies every pending migration to the database at `database_url` and returns the versions
/// applied (empty when the schema was current).
pub async fn run_migrations(database_url: &str) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let conn = ConnectOptions::parse(database_url)?.establish().await?;
    tokio::task::spawn_blocking(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        // Each function's deploy runs the migrate job; a push that touches shared code starts
        // several at once. One at a time: the others wait, then find nothing pending.
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")),
            &mut conn,
        )?;
        let applied =
            conn.run_pending_migrations(MIGRATIONS).map(|versions| versions.iter().map(ToString::to_string).collect());
        // Released here, not only when the connection closes, in case closing is delayed.
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")),
            &mut conn,
        )?;
        applied
    })
    .await?
}

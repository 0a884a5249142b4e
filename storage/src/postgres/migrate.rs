//! Versioned schema migrations.
//!
//! Each file `storage/migrations/postgres/NNNN_name.sql` is one migration, compiled into the
//! binary and applied at most once per database, in version order, each in its own
//! transaction together with its row in `schema_migrations(version, name, applied_at)`: a
//! migration is applied whole or not at all. Released migrations are never edited; a change is
//! a new file.
//!
//! Several nodes may start at once against a new database. Every migration transaction first
//! takes a transaction-scoped advisory lock, so they run one at a time, and re-reads what is
//! applied after getting it: the node that waited finds the work done and applies nothing.
//! A database already migrated past the newest version this build knows is refused, since the
//! code would read and write a schema it does not understand.

use super::{PostgresError, PostgresStore, db_error, describe};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in version order.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "signing_keys",
        sql: include_str!("../../migrations/postgres/0002_signing_keys.sql"),
    },
    Migration {
        version: 3,
        name: "refresh_tokens_by_user",
        sql: include_str!("../../migrations/postgres/0003_refresh_tokens_by_user.sql"),
    },
    Migration {
        version: 4,
        name: "id_leases",
        sql: include_str!("../../migrations/postgres/0004_id_leases.sql"),
    },
    Migration {
        version: 5,
        name: "guild_owners",
        sql: include_str!("../../migrations/postgres/0005_guild_owners.sql"),
    },
    Migration {
        version: 6,
        name: "audit_log",
        sql: include_str!("../../migrations/postgres/0006_audit_log.sql"),
    },
    Migration {
        version: 7,
        name: "webhooks",
        sql: include_str!("../../migrations/postgres/0007_webhooks.sql"),
    },
    Migration {
        version: 8,
        name: "private_channels",
        sql: include_str!("../../migrations/postgres/0008_private_channels.sql"),
    },
    Migration {
        version: 9,
        name: "guild_emojis",
        sql: include_str!("../../migrations/postgres/0009_guild_emojis.sql"),
    },
];

/// The schema version this build reads and writes.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The advisory lock key that serializes migrations ("enrichmg" in ASCII). Advisory locks are
/// per database, so this only ever contends with other migrations of the same database.
const MIGRATION_LOCK: i64 = 0x656e_7269_6368_6d67;

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version     BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)";

impl PostgresStore {
    /// Applies every migration the database lacks and returns the versions applied, oldest
    /// first (empty when the schema was already current). Safe to call from several nodes at
    /// once, and again at every start.
    ///
    /// Fails with [`PostgresError::SchemaTooNew`] on a database migrated by a newer release.
    pub async fn migrate(&self) -> Result<Vec<i64>, PostgresError> {
        let mut client = self.client().await?;
        let mut applied = Vec::new();
        for migration in MIGRATIONS {
            let tx = client
                .transaction()
                .await
                .map_err(db_error("starting a migration"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(db_error("waiting for the migration lock"))?;
            tx.batch_execute(CREATE_LEDGER)
                .await
                .map_err(db_error("creating schema_migrations"))?;
            let newest: Option<i64> = tx
                .query_one("SELECT max(version) FROM schema_migrations", &[])
                .await
                .map_err(db_error("reading schema_migrations"))?
                .get(0);
            if let Some(found) = newest
                && found > LATEST_SCHEMA_VERSION
            {
                return Err(PostgresError::SchemaTooNew {
                    found,
                    known: LATEST_SCHEMA_VERSION,
                });
            }
            let done = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[&migration.version],
                )
                .await
                .map_err(db_error("reading schema_migrations"))?
                .is_some();
            if !done {
                let failed = |e: tokio_postgres::Error| PostgresError::Migration {
                    version: migration.version,
                    name: migration.name,
                    reason: describe(&e),
                };
                tx.batch_execute(migration.sql).await.map_err(failed)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[&migration.version, &migration.name],
                )
                .await
                .map_err(failed)?;
            }
            // Committing also releases the lock.
            tx.commit()
                .await
                .map_err(db_error("committing a migration"))?;
            if !done {
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "applied migration"
                );
                applied.push(migration.version);
            }
        }
        Ok(applied)
    }
}

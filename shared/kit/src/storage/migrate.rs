//! Migrations: the kit's (versions below 1000) and the service's (1000 and up) run as one
//! tracked set, so that a migration that was applied and is now missing, or was edited
//! after it was applied, stops the start with a message saying so instead of being
//! ignored. On PostgreSQL they run under an advisory lock, so replicas starting together
//! take turns; the same step checks the outbox's epoch and loads the page-token key.

use std::borrow::Cow;

use sqlx::{
    PgPool, SqlitePool,
    migrate::{MigrateError, Migration, Migrator},
};

use super::{Conn, StorageError};

/// The kit's own tables (outbox, consumers, audit trail, idempotency keys, keys).
static KIT_POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
static KIT_SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A service's migrations, one set per backend (see [`crate::migrations!`]).
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

/// The migrations of the calling crate's `migrations/postgres` and `migrations/sqlite`.
#[macro_export]
macro_rules! migrations {
    () => {{
        static POSTGRES: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/postgres");
        static SQLITE: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/sqlite");
        $crate::storage::Migrations {
            postgres: &POSTGRES,
            sqlite: &SQLITE,
        }
    }};
}

/// What the start-up step hands back besides a migrated database.
pub(super) struct Setup {
    pub(super) page_token_key: Vec<u8>,
}

/// One migrator over the kit's and the service's migrations, in version order.
fn combined(kit: &Migrator, service: &Migrator) -> Result<Migrator, StorageError> {
    let mut migrations: Vec<Migration> = kit.iter().chain(service.iter()).cloned().collect();
    migrations.sort_by_key(|m| m.version);
    if let Some(pair) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(StorageError::Migrate(format!(
            "two migrations have version {}: the kit's are below 1000, a service's from 1000",
            pair[0].version
        )));
    }
    let mut migrator = Migrator::DEFAULT;
    migrator.migrations = Cow::Owned(migrations);
    Ok(migrator)
}

/// Says what went wrong with the migrations in words an operator can act on.
fn explain(error: MigrateError, migrator: &Migrator) -> StorageError {
    let describe = |version: i64| {
        migrator
            .iter()
            .find(|m| m.version == version)
            .map(|m| format!("{version} ({})", m.description))
            .unwrap_or_else(|| version.to_string())
    };
    StorageError::Migrate(match error {
        MigrateError::VersionMissing(v) => format!(
            "migration {v} was applied to this database but is not in this build: the \
             database belongs to another (probably newer) version of custos; run that \
             version, or restore a backup taken before it"
        ),
        MigrateError::VersionMismatch(v) => format!(
            "migration {} has changed since it was applied to this database (its checksum \
             differs): a released migration must never be edited; restore it as shipped \
             and add a new migration instead",
            describe(v)
        ),
        MigrateError::Dirty(v) => format!(
            "migration {} was left half-applied; repair the database by hand, then remove \
             its row from _sqlx_migrations",
            describe(v)
        ),
        other => format!("database migration failed: {other}"),
    })
}

pub(super) async fn run_sqlite(
    pool: &SqlitePool,
    service: Migrations,
) -> Result<Setup, StorageError> {
    let migrator = combined(&KIT_SQLITE, service.sqlite)?;
    migrator
        .run(pool)
        .await
        .map_err(|e| explain(e, &migrator))?;
    let mut conn = pool.acquire().await?;
    let page_token_key = key(Conn::Sqlite(&mut conn), "page_tokens").await?;
    Ok(Setup { page_token_key })
}

/// Creates the schema and migrates it while holding an advisory lock. The connection's
/// `search_path` is the schema, so sqlx's bookkeeping table lives there too.
pub(super) async fn run_postgres(
    pool: &PgPool,
    schema: &str,
    service: Migrations,
) -> Result<Setup, StorageError> {
    const LOCK: &str = "SELECT pg_advisory_lock(hashtextextended('custos.migrate.' || $1, 0))";
    const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended('custos.migrate.' || $1, 0))";
    let mut migrator = combined(&KIT_POSTGRES, service.postgres)?;
    // Our own lock already serialises replicas; sqlx's would be per database.
    migrator.set_locking(false);
    let mut conn = pool.acquire().await?;
    sqlx::query(LOCK).bind(schema).execute(&mut *conn).await?;
    let result = async {
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut *conn)
            .await?;
        migrator
            .run(&mut *conn)
            .await
            .map_err(|e| explain(e, &migrator))?;
        crate::outbox::check_epoch(&mut conn).await?;
        let page_token_key = key(Conn::Postgres(&mut conn), "page_tokens").await?;
        Ok::<_, StorageError>(Setup { page_token_key })
    }
    .await;
    sqlx::query(UNLOCK).bind(schema).execute(&mut *conn).await?;
    result
}

/// A random 32-byte key kept in the service's database under `name`, created on first
/// use; every replica reads the same one.
async fn key(mut conn: Conn<'_>, name: &str) -> Result<Vec<u8>, StorageError> {
    const INSERT: &str =
        "INSERT INTO service_keys (name, key) VALUES ($1, $2) ON CONFLICT DO NOTHING";
    const SELECT: &str = "SELECT key FROM service_keys WHERE name = $1";
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh)
        .map_err(|e| StorageError::Corrupt(format!("no random source: {e}")))?;
    Ok(crate::with_conn!(&mut conn, c => {
        sqlx::query(INSERT).bind(name).bind(fresh.as_slice()).execute(&mut *c).await?;
        sqlx::query_scalar(SELECT).bind(name).fetch_one(&mut *c).await?
    }))
}

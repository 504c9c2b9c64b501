//! PostgreSQL or SQLite, chosen by the database URL. Each service owns a schema (on
//! PostgreSQL) or a file (on SQLite) and its own migrations per backend, embedded and run
//! at start under an advisory lock so that replicas starting together do not race.
//!
//! Stores write their queries once and run them on either backend with [`with_pool!`]:
//! the body is compiled separately for `PgPool` and `SqlitePool`, so each backend gets a
//! real, type-checked implementation (placeholders are `$1` on both). Where SQL must
//! differ, `Dialect::pick` chooses it.

use std::{str::FromStr, sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use sqlx::{
    Connection, PgPool, SqlitePool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::watch;

use crate::{
    config::DatabaseConfig,
    error::{Code, ServiceError},
};

/// The kit's own tables (outbox, consumer cursors, audit trail), migrated before the
/// service's. Their versions stay below 1000; services number theirs from 1000 up.
static KIT_POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
static KIT_SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A service's migrations, one set per backend (`sqlx::migrate!` in the service crate).
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A pool of one backend, for [`with_pool!`].
#[derive(Debug, Clone)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$p` bound to the concrete pool of either backend.
#[macro_export]
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::storage::Pool::Postgres($p) => $body,
            $crate::storage::Pool::Sqlite($p) => $body,
        }
    };
}

/// Chooses SQL by backend inside a [`with_pool!`] body.
pub trait Dialect {
    const BACKEND: Backend;

    fn pick(&self, postgres: &'static str, sqlite: &'static str) -> &'static str {
        match Self::BACKEND {
            Backend::Postgres => postgres,
            Backend::Sqlite => sqlite,
        }
    }
}

impl Dialect for PgPool {
    const BACKEND: Backend = Backend::Postgres;
}

impl Dialect for SqlitePool {
    const BACKEND: Backend = Backend::Sqlite;
}

/// A service's database: its pools and the signal its outbox readers wait on.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

#[derive(Debug)]
struct DbInner {
    pools: Pools,
    schema: String,
    /// Bumped when outbox events may have committed, here or in another replica.
    outbox_changes: watch::Sender<u64>,
    /// Bumped only by this process's commits (relayed to other replicas on PostgreSQL).
    local_commits: watch::Sender<u64>,
}

#[derive(Debug)]
enum Pools {
    Postgres(PgPool),
    /// SQLite has one writer at a time: one connection writes, several read (WAL).
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
}

impl Db {
    /// Connects, creates the schema if needed and runs the kit's and the service's
    /// migrations. `default_schema` is the service name.
    pub async fn connect(
        config: &DatabaseConfig,
        default_schema: &str,
        migrations: Migrations,
    ) -> Result<Self, StorageError> {
        let url = config.url.expose_secret();
        let schema = config
            .schema
            .clone()
            .unwrap_or_else(|| default_schema.to_owned());
        let pools = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StorageError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit survives power loss, as PostgreSQL's does.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.clone())
                .await
                .map_err(StorageError::Connect)?;
            for migrator in [&KIT_SQLITE, migrations.sqlite] {
                let mut migrator = clone_migrator(migrator);
                migrator.set_ignore_missing(true);
                migrator.run(&writer).await?;
            }
            let reader = SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(StorageError::Connect)?;
            Pools::Sqlite { writer, reader }
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(StorageError::Connect)?
                .options([("search_path", schema.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                // Short, so that an unreachable database shows in health quickly.
                .acquire_timeout(Duration::from_secs(3))
                // No ping before each use (a round trip per query): a dead connection
                // fails its query as UNAVAILABLE and is replaced, and health watches.
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(StorageError::Connect)?;
            migrate_postgres(&pool, &schema, migrations.postgres).await?;
            Pools::Postgres(pool)
        };
        let (outbox_changes, _) = watch::channel(0);
        let (local_commits, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(DbInner {
                pools,
                schema,
                outbox_changes,
                local_commits,
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.inner.pools {
            Pools::Postgres(_) => Backend::Postgres,
            Pools::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// The PostgreSQL schema (also used to name the outbox notification channel).
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The pool for transactions that write.
    pub fn writer(&self) -> Pool {
        match &self.inner.pools {
            Pools::Postgres(p) => Pool::Postgres(p.clone()),
            Pools::Sqlite { writer, .. } => Pool::Sqlite(writer.clone()),
        }
    }

    /// The pool for reads.
    pub fn reader(&self) -> Pool {
        match &self.inner.pools {
            Pools::Postgres(p) => Pool::Postgres(p.clone()),
            Pools::Sqlite { reader, .. } => Pool::Sqlite(reader.clone()),
        }
    }

    /// Probes the database (for health). Through the readers: SQLite's single writer
    /// connection may be busy with a long batch, which is not ill health.
    pub async fn ping(&self) -> Result<(), StorageError> {
        with_pool!(self.reader(), p => {
            let mut conn = p.acquire().await?;
            conn.ping().await?;
        });
        Ok(())
    }

    /// Called by a store after committing a transaction that appended outbox events.
    pub fn outbox_committed(&self) {
        self.inner
            .local_commits
            .send_modify(|n| *n = n.wrapping_add(1));
        self.wake_outbox_readers();
    }

    /// Wakes every feed reader of this process to read the outbox again.
    pub fn wake_outbox_readers(&self) {
        self.inner
            .outbox_changes
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever outbox events may have committed (here or, on PostgreSQL, in
    /// another replica: see `outbox::relay_notifications`).
    pub fn outbox_changes(&self) -> watch::Receiver<u64> {
        self.inner.outbox_changes.subscribe()
    }

    /// Changes when this process commits outbox events.
    pub fn local_commits(&self) -> watch::Receiver<u64> {
        self.inner.local_commits.subscribe()
    }

    pub async fn close(&self) {
        match &self.inner.pools {
            Pools::Postgres(p) => p.close().await,
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
        }
    }
}

fn clone_migrator(m: &Migrator) -> Migrator {
    let mut copy = Migrator::DEFAULT;
    copy.migrations = m.migrations.clone();
    copy
}

/// Creates the schema and migrates it while holding an advisory lock, so that several
/// replicas starting at once take turns. The connection's `search_path` is the schema,
/// so sqlx's bookkeeping table lives there too.
async fn migrate_postgres(
    pool: &PgPool,
    schema: &str,
    service: &'static Migrator,
) -> Result<(), StorageError> {
    const LOCK: &str = "SELECT pg_advisory_lock(hashtextextended('custos.migrate.' || $1, 0))";
    const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended('custos.migrate.' || $1, 0))";
    let mut conn = pool.acquire().await?;
    sqlx::query(LOCK).bind(schema).execute(&mut *conn).await?;
    let result = async {
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut *conn)
            .await?;
        for migrator in [&KIT_POSTGRES, service] {
            let mut migrator = clone_migrator(migrator);
            migrator.set_ignore_missing(true);
            // Our own lock already serialises replicas; sqlx's would be per database.
            migrator.set_locking(false);
            migrator.run(&mut *conn).await?;
        }
        Ok::<_, StorageError>(())
    }
    .await;
    sqlx::query(UNLOCK).bind(schema).execute(&mut *conn).await?;
    result
}

/// A storage failure, classified once here for every store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("already exists ({constraint})")]
    Conflict { constraint: String },
    #[error("refers to something that does not exist ({constraint})")]
    MissingReference { constraint: String },
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("database error")]
    Other(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &err {
            sqlx::Error::Database(db) => {
                let constraint = db.constraint().unwrap_or_default().to_owned();
                match db.kind() {
                    ErrorKind::UniqueViolation => StorageError::Conflict { constraint },
                    ErrorKind::ForeignKeyViolation => StorageError::MissingReference { constraint },
                    // 57P01 admin shutdown, 53300 too many connections, 08xxx connection.
                    _ if db
                        .code()
                        .is_some_and(|c| c.starts_with("08") || c == "57P01" || c == "53300") =>
                    {
                        StorageError::Unavailable(err)
                    }
                    _ => StorageError::Other(err),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StorageError::Unavailable(err),
            _ => StorageError::Other(err),
        }
    }
}

impl ServiceError for StorageError {
    fn code(&self) -> Code {
        match self {
            StorageError::Conflict { .. } => Code::AlreadyExists,
            StorageError::MissingReference { .. } => Code::FailedPrecondition,
            StorageError::Unavailable(_) | StorageError::Connect(_) => Code::Unavailable,
            StorageError::Other(_) | StorageError::Migrate(_) | StorageError::Corrupt(_) => {
                Code::Internal
            }
        }
    }
}

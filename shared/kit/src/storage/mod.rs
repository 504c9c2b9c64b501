//! PostgreSQL or SQLite, chosen by the database URL. Each service owns a schema (on
//! PostgreSQL) or a file (on SQLite) and its migrations per backend, embedded and run at
//! start under an advisory lock so that replicas starting together do not race.
//!
//! How a store is written for both backends, and why, is in the kit's `DESIGN.md`: in
//! short, store functions take a [`Tx`] (or, for reads, anything [`AsConn`]) and write
//! each query once inside [`with_conn!`], which compiles it for both backends.

mod db_time;
mod error;
mod migrate;
mod probe;
mod select;
mod tx;
mod types;

pub use db_time::DbTime;
pub use error::StorageError;
pub use migrate::Migrations;
pub use select::{Select, Value};
pub use tx::{AsConn, Autocommit, Conn, Read, Tx};
pub use types::{DbEnum, JsonText};

use std::{str::FromStr, sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use sqlx::{
    PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::watch;

use crate::{config::DatabaseConfig, page::PageTokens};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// How often SQLite's planner statistics are refreshed (and once at start).
const SQLITE_ANALYZE_EVERY: Duration = Duration::from_secs(600);

/// Statements a PostgreSQL read connection keeps prepared (the least recently used goes
/// first). Enough for the filter combinations a service's callers use at once (intake's
/// ListReports alone has 512 shapes, counting page tokens and views, but few are in use
/// together) and the point reads; a statement with a long list of ids is never kept.
const READ_STATEMENT_CACHE: usize = 512;

/// Refreshes SQLite's planner statistics. Without them its planner takes any index whose
/// leading column a statement names, however unselective, and sorts what it finds
/// (measured: ListTriageQueue by kind on 100,000 entries, p99 128–198 ms at 32 callers).
/// A small `analysis_limit` (1,000) samples too little to tell (it estimated 1,001 rows
/// per kind where there were 50,000, and the plan stayed wrong); 100,000 rows per index
/// is exact for an organisation's queue and holds the one writer for about 65 ms per
/// 100,000 rows.
async fn analyze_sqlite(writer: &SqlitePool) {
    let result = async {
        let mut c = writer.acquire().await?;
        sqlx::query("PRAGMA analysis_limit = 100000")
            .execute(&mut *c)
            .await?;
        sqlx::query("ANALYZE").execute(&mut *c).await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "refreshing SQLite's planner statistics failed; lists may be slow until it succeeds");
    }
}

/// Chooses SQL by backend inside a [`with_conn!`] body: `c.pick(postgres, sqlite)`.
pub trait Dialect {
    const BACKEND: Backend;

    fn pick(&self, postgres: &'static str, sqlite: &'static str) -> &'static str {
        match Self::BACKEND {
            Backend::Postgres => postgres,
            Backend::Sqlite => sqlite,
        }
    }
}

impl Dialect for sqlx::PgConnection {
    const BACKEND: Backend = Backend::Postgres;
}

impl Dialect for sqlx::SqliteConnection {
    const BACKEND: Backend = Backend::Sqlite;
}

/// A service's database: its pools, the signal its outbox readers wait on, and the
/// key that seals its page tokens.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

#[derive(Debug)]
struct DbInner {
    pools: Pools,
    schema: String,
    probe: probe::Probe,
    page_tokens: PageTokens,
    auditor: crate::audit::Auditor,
    /// Bumped when outbox events may have committed, here or in another replica.
    outbox_changes: watch::Sender<u64>,
    /// Bumped only by this process's commits (relayed to other replicas on PostgreSQL).
    local_commits: watch::Sender<u64>,
}

#[derive(Debug, Clone)]
pub(crate) enum Pools {
    /// Transactions, the outbox, leases and the audit writer on one pool; reads outside
    /// a transaction ([`Read`]) on a smaller one of their own (see
    /// `DatabaseConfig::max_read_connections`).
    ///
    /// Lookups ([`Db::lookup`]) take main-pool connections, at most as many at once as
    /// `lookups` has permits (`max_read_connections`, and never more than half the
    /// pool), so that transactions and the audit writer always find some.
    Postgres {
        pool: PgPool,
        reads: PgPool,
        lookups: Arc<tokio::sync::Semaphore>,
    },
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
        let (pools, probe, setup) = if url.starts_with("sqlite:") {
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
            let setup = migrate::run_sqlite(&writer, migrations).await?;
            analyze_sqlite(&writer).await;
            let periodic = writer.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SQLITE_ANALYZE_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if periodic.is_closed() {
                        break;
                    }
                    analyze_sqlite(&periodic).await;
                }
            });
            let reader = SqlitePoolOptions::new()
                .max_connections(config.max_read_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options.clone())
                .await
                .map_err(StorageError::Connect)?;
            (
                Pools::Sqlite { writer, reader },
                probe::Probe::sqlite(options),
                setup,
            )
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
                .connect_with(options.clone())
                .await
                .map_err(StorageError::Connect)?;
            let setup = migrate::run_postgres(&pool, &schema, migrations).await?;
            // Connected now (one connection), so that settings the read connections
            // cannot have stop the start rather than fail every read later while health
            // (which probes on a connection of its own) stays green.
            let reads = PgPoolOptions::new()
                .max_connections(config.max_read_connections)
                .acquire_timeout(Duration::from_secs(3))
                .test_before_acquire(false)
                .connect_with(
                    options
                        .clone()
                        // Kept prepared (parsed once), but planned for each call's
                        // values: a list's filters are often skewed (a category that
                        // never has a kind), and a generic plan would read a whole index
                        // to find nothing.
                        .options([("plan_cache_mode", "force_custom_plan")])
                        .statement_cache_capacity(READ_STATEMENT_CACHE),
                )
                .await
                .map_err(StorageError::Connect)?;
            (
                Pools::Postgres {
                    pool,
                    reads,
                    // Never more than half the main pool.
                    lookups: Arc::new(tokio::sync::Semaphore::new(
                        config
                            .max_read_connections
                            .min(config.max_connections / 2)
                            .max(1) as usize,
                    )),
                },
                probe::Probe::postgres(options),
                setup,
            )
        };
        let (outbox_changes, _) = watch::channel(0);
        let (local_commits, _) = watch::channel(0);
        let auditor = crate::audit::Auditor::start(pools.clone());
        Ok(Self {
            inner: Arc::new(DbInner {
                pools,
                schema,
                probe,
                auditor,
                page_tokens: PageTokens::new(&setup.page_token_key),
                outbox_changes,
                local_commits,
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.inner.pools {
            Pools::Postgres { .. } => Backend::Postgres,
            Pools::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// The PostgreSQL schema (also used to name the outbox notification channel).
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The main pool's size (PostgreSQL); SQLite has one writer.
    pub fn max_connections(&self) -> u32 {
        match &self.inner.pools {
            Pools::Postgres { pool, .. } => pool.options().get_max_connections(),
            Pools::Sqlite { writer, .. } => writer.options().get_max_connections(),
        }
    }

    /// The connections for reads outside a transaction ([`Db::read`]).
    pub fn max_read_connections(&self) -> u32 {
        match &self.inner.pools {
            Pools::Postgres { reads, .. } => reads.options().get_max_connections(),
            Pools::Sqlite { reader, .. } => reader.options().get_max_connections(),
        }
    }

    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    /// Starts a transaction that writes. On SQLite it begins IMMEDIATE, taking the write
    /// lock at once, so that a transaction that reads and then writes cannot fail to
    /// upgrade its lock halfway. Dropping it uncommitted rolls it back.
    pub async fn begin(&self) -> Result<Tx, StorageError> {
        Tx::begin(self).await
    }

    /// On PostgreSQL, a connection for one statement that commits on its own (see
    /// [`Autocommit`]); `None` on SQLite, where every write goes through a [`Tx`].
    pub async fn autocommit(&self) -> Result<Option<Autocommit>, StorageError> {
        Autocommit::acquire(self).await
    }

    /// A connection for reads outside a transaction (SQLite: one of the WAL readers, so
    /// reads never wait for the writer).
    pub async fn read(&self) -> Result<Read, StorageError> {
        Read::acquire(self).await
    }

    /// A connection for point reads outside a transaction: statements whose plan does
    /// not depend on their values ([`Select::plan_once`], static SQL). On PostgreSQL it
    /// comes from the main pool, where such a statement is planned once and the plan
    /// reused (the read pool plans every call for its values, which costs more than a
    /// read by key). At most `database.max_read_connections` lookups (and never more
    /// than half the main pool) hold its connections at once; hold one for the lookup
    /// only. SQLite: one of the WAL readers.
    pub async fn lookup(&self) -> Result<Read, StorageError> {
        Read::acquire_lookup(self).await
    }

    /// Probes the database for health on a connection of its own: a pool busy with
    /// calls under load is not ill health, and must not take every replica out of the
    /// load balancer at once.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.inner.probe.ping().await
    }

    /// Records that `actor` read `target_ids` (personal data or evidence) with `action`
    /// (e.g. `report.read`), and returns once the record has committed: return the data
    /// only after this succeeds. Concurrent calls' records share a commit.
    pub async fn audit(
        &self,
        actor: &crate::auth::Principal,
        action: &str,
        target_type: &str,
        target_ids: &[String],
    ) -> Result<(), StorageError> {
        self.inner
            .auditor
            .record(actor, action, target_type, target_ids)
            .await
    }

    /// Seals and opens this service's page tokens (the key is kept in the database, so
    /// every replica reads the tokens of the others).
    pub fn page_tokens(&self) -> &PageTokens {
        &self.inner.page_tokens
    }

    /// Called when a transaction that appended outbox events has committed.
    pub(crate) fn outbox_committed(&self) {
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
    pub(crate) fn local_commits(&self) -> watch::Receiver<u64> {
        self.inner.local_commits.subscribe()
    }

    pub async fn close(&self) {
        self.inner.probe.close().await;
        match &self.inner.pools {
            Pools::Postgres { pool, reads, .. } => {
                reads.close().await;
                pool.close().await;
            }
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
        }
    }
}

//! The one transaction type every store, API handler and feed consumer shares, and the
//! read connection for reads outside a transaction.
//!
//! A [`Tx`] is the unit of work: store functions run inside the caller's transaction, so
//! an API call and a feed consumer use the same store code, and an effect commits with
//! the consumer's cursor. Events go into the outbox through [`Tx::append_event`] and
//! [`Tx::append_events`], and [`Tx::commit`] is the only way to commit a `Tx`: it wakes
//! the feed readers whenever the transaction appended events, so no caller can forget
//! to. The one exception is [`Autocommit`], one PostgreSQL statement for a hot path that
//! writes its own outbox rows; it wakes the feed readers when dropped.

use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection, Transaction, pool::PoolConnection};

use super::{Db, Pools, StorageError};
use crate::outbox::{self, NewEvent};

/// A connection of either backend, for one query body written once (see [`with_conn!`]).
pub enum Conn<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

/// Something queries can run on: a [`Tx`], or a [`Read`] connection.
pub trait AsConn: Send {
    fn conn(&mut self) -> Conn<'_>;

    /// Whether this connection plans every statement for the values of its call even
    /// when the statement is kept prepared (PostgreSQL's read connections), so that a
    /// built statement ([`super::Select`]) may be kept prepared on it: parsed once, one
    /// round trip per call. Elsewhere a built statement goes unprepared, planned for
    /// its values: a kept one could be given a generic plan that suits some values and
    /// reads a whole index for others.
    fn plans_each_call(&self) -> bool {
        false
    }
}

/// Runs `$body` with `$c` bound to the `&mut` connection of either backend behind `$x`
/// (a `&mut Tx`, a `&mut Read` or a `&mut impl AsConn`). The body is compiled once per
/// backend, so both get a real, type-checked implementation; inside it, `$c.pick(pg,
/// sqlite)` chooses SQL where the dialects differ.
#[macro_export]
macro_rules! with_conn {
    ($x:expr, $c:ident => $body:expr) => {
        match $crate::storage::AsConn::conn($x) {
            $crate::storage::Conn::Postgres($c) => $body,
            $crate::storage::Conn::Sqlite($c) => $body,
        }
    };
}

enum TxInner {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// A transaction that writes (see the module documentation).
pub struct Tx {
    inner: TxInner,
    db: Db,
    events: usize,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Tx {
    pub(super) async fn begin(db: &Db) -> Result<Self, StorageError> {
        let inner = match db.pools() {
            Pools::Postgres { pool, .. } => TxInner::Postgres(pool.begin().await?),
            Pools::Sqlite { writer, .. } => {
                TxInner::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?)
            }
        };
        Ok(Self {
            inner,
            db: db.clone(),
            events: 0,
        })
    }

    /// The database this transaction belongs to.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Appends an event to the outbox, to be published when this transaction commits.
    pub async fn append_event(&mut self, event: &NewEvent) -> Result<(), StorageError> {
        self.append_events(std::slice::from_ref(event)).await
    }

    /// Appends events to the outbox in one statement (PostgreSQL) or one per event
    /// (SQLite), in order.
    pub async fn append_events(&mut self, events: &[NewEvent]) -> Result<(), StorageError> {
        if events.is_empty() {
            return Ok(());
        }
        outbox::insert(self, events).await?;
        self.events += events.len();
        Ok(())
    }

    /// Commits, then wakes this process's feed readers (and, through them, the other
    /// replicas') if the transaction appended events.
    pub async fn commit(self) -> Result<(), StorageError> {
        match self.inner {
            TxInner::Postgres(t) => t.commit().await?,
            TxInner::Sqlite(t) => t.commit().await?,
        }
        if self.events > 0 {
            self.db.outbox_committed();
        }
        Ok(())
    }
}

impl AsConn for Tx {
    fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Postgres(t) => Conn::Postgres(t),
            TxInner::Sqlite(t) => Conn::Sqlite(t),
        }
    }
}

/// One PostgreSQL statement that commits on its own, for a hot path where the BEGIN and
/// COMMIT round trips of a [`Tx`] cost more than the statement (intake's group-committed
/// submissions). Such a statement may insert outbox rows itself, with the columns of
/// [`crate::outbox_columns!`]: when this is dropped the feed is woken, whatever happened
/// (an error may have an unknown outcome), unless the caller has seen that its statement
/// wrote nothing; so a statement's events can no more be forgotten than a `Tx`'s. Run one
/// statement on it, to the end, and only one: a second would be a second transaction.
pub struct Autocommit {
    conn: PoolConnection<Postgres>,
    db: Db,
    wake: bool,
}

impl std::fmt::Debug for Autocommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Autocommit")
    }
}

impl Autocommit {
    pub(super) async fn acquire(db: &Db) -> Result<Option<Self>, StorageError> {
        match db.pools() {
            Pools::Postgres { pool, .. } => Ok(Some(Self {
                conn: pool.acquire().await?,
                db: db.clone(),
                wake: true,
            })),
            Pools::Sqlite { .. } => Ok(None),
        }
    }

    /// The connection, for one statement.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The statement succeeded and wrote no rows (every one skipped by a conflict, say):
    /// there is nothing to wake the feed for.
    pub fn wrote_nothing(&mut self) {
        self.wake = false;
    }
}

impl Drop for Autocommit {
    fn drop(&mut self) {
        if self.wake {
            self.db.outbox_committed();
        }
    }
}

/// A pooled connection for reads outside a transaction.
pub enum Read {
    /// From the read pool: every statement planned for its call's values.
    Postgres(PoolConnection<Postgres>),
    /// From the main pool ([`super::Db::lookup`]): kept statements planned as
    /// PostgreSQL chooses (once, generically, when that plan costs no more). The permit
    /// is one of the lookups' share of the pool.
    PostgresLookup(PoolConnection<Postgres>, tokio::sync::OwnedSemaphorePermit),
    Sqlite(PoolConnection<Sqlite>),
}

impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Read")
    }
}

impl Read {
    pub(super) async fn acquire(db: &Db) -> Result<Self, StorageError> {
        Ok(match db.pools() {
            Pools::Postgres { reads, .. } => Read::Postgres(reads.acquire().await?),
            Pools::Sqlite { reader, .. } => Read::Sqlite(reader.acquire().await?),
        })
    }

    pub(super) async fn acquire_lookup(db: &Db) -> Result<Self, StorageError> {
        Ok(match db.pools() {
            Pools::Postgres { pool, lookups, .. } => {
                // As long as the pool itself would wait for a connection.
                let permit = tokio::time::timeout(
                    pool.options().get_acquire_timeout(),
                    lookups.clone().acquire_owned(),
                )
                .await
                .map_err(|_| StorageError::Unavailable(sqlx::Error::PoolTimedOut))?
                .map_err(|_| StorageError::Unavailable(sqlx::Error::PoolClosed))?;
                Read::PostgresLookup(pool.acquire().await?, permit)
            }
            Pools::Sqlite { reader, .. } => Read::Sqlite(reader.acquire().await?),
        })
    }
}

impl AsConn for Read {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Read::Postgres(c) | Read::PostgresLookup(c, _) => Conn::Postgres(c),
            Read::Sqlite(c) => Conn::Sqlite(c),
        }
    }

    fn plans_each_call(&self) -> bool {
        // PostgreSQL's read pool is set to (plan_cache_mode); SQLite (built with STAT4)
        // prepares a kept statement again when its bound values could change the plan.
        !matches!(self, Read::PostgresLookup(..))
    }
}

impl<T: AsConn + ?Sized> AsConn for &mut T {
    fn conn(&mut self) -> Conn<'_> {
        (**self).conn()
    }

    fn plans_each_call(&self) -> bool {
        (**self).plans_each_call()
    }
}

impl AsConn for Conn<'_> {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Conn::Postgres(c) => Conn::Postgres(c),
            Conn::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

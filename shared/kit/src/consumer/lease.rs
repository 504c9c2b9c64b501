//! The consumer's lease on PostgreSQL: a session-level advisory lock on a connection of
//! its own, detached from the pool. If the consumer dies, the connection closes with it
//! and the lock goes too (a pooled connection would keep the lock and lock everyone
//! out). SQLite is one process: the lease is always held.

use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::storage::{Db, Pools, StorageError};

pub(super) enum Lease {
    Postgres(PgConnection, String),
    Sqlite,
}

// Advisory locks are database-wide: the key names the schema too, so that services (or
// deployments) in other schemas of the same database do not share a lease.
const TRY: &str = "SELECT pg_try_advisory_lock(hashtextextended('custos.consumer.' || $1, 0))";
const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended('custos.consumer.' || $1, 0))";

impl Lease {
    pub(super) async fn acquire(db: &Db, name: &str) -> Result<Option<Lease>, StorageError> {
        match db.pools() {
            Pools::Postgres { pool, .. } => {
                let key = format!("{}.{name}", db.schema());
                let mut conn = pool.acquire().await?.detach();
                let got: bool = sqlx::query_scalar(TRY)
                    .bind(&key)
                    .fetch_one(&mut conn)
                    .await?;
                if got {
                    // Named (`custos lease <schema>.<consumer>`), so that an operator sees
                    // who holds which lease.
                    sqlx::query(
                        "SELECT set_config('application_name', 'custos lease ' || $1, false)",
                    )
                    .bind(&key)
                    .execute(&mut conn)
                    .await?;
                    Ok(Some(Lease::Postgres(conn, key)))
                } else {
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
            Pools::Sqlite { .. } => Ok(Some(Lease::Sqlite)),
        }
    }

    /// Whether the lease connection still answers (and so still holds the lock).
    pub(super) async fn alive(&mut self) -> bool {
        match self {
            Lease::Postgres(conn, _) => matches!(
                tokio::time::timeout(Duration::from_secs(5), conn.ping()).await,
                Ok(Ok(()))
            ),
            Lease::Sqlite => true,
        }
    }

    pub(super) async fn release(self) {
        if let Lease::Postgres(mut conn, name) = self {
            let _ = sqlx::query(UNLOCK).bind(&name).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}

//! The audit trail: who read or changed personal data or evidence, and when.
//!
//! A read is recorded with `Db::audit`, which returns once the entry has committed, so
//! the data is returned only after its read is recorded, and a read that cannot be
//! recorded fails instead of going unrecorded. Entries of calls that arrive together are
//! committed together (one writer, one commit for whatever is waiting): under load,
//! one commit serves many calls instead of one each. A change is recorded with
//! [`record`] in the transaction of the change itself.

use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{
    auth::Principal,
    storage::{AsConn, Conn, DbTime, Pools, StorageError, Tx},
    with_conn,
};

/// One call's entries, waiting for the writer.
struct Entries {
    actor: String,
    roles: String,
    action: String,
    target_type: String,
    target_ids: Vec<String>,
    at: DbTime,
    done: oneshot::Sender<Result<(), Failed>>,
}

/// Why a batch of entries was not written, as each of its callers hears it.
#[derive(Debug, Clone)]
struct Failed {
    /// The database was unreachable (the read may be retried), rather than refusing.
    unavailable: bool,
    message: String,
}

/// The queue in front of the audit writer.
#[derive(Debug, Clone)]
pub(crate) struct Auditor(mpsc::Sender<Entries>);

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// Most calls' entries committed together.
const MAX_BATCH: usize = 256;

impl Auditor {
    /// Starts the writer; it stops when the last sender is dropped.
    pub(crate) fn start(pools: Pools) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH);
        tokio::spawn(write_loop(pools, rx));
        Auditor(tx)
    }

    pub(crate) async fn record(
        &self,
        actor: &Principal,
        action: &str,
        target_type: &str,
        target_ids: &[String],
    ) -> Result<(), StorageError> {
        if target_ids.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        let entries = Entries {
            actor: actor.subject.clone(),
            roles: roles_of(actor),
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_ids: target_ids.to_vec(),
            at: DbTime::now(),
            done,
        };
        let stopped = || StorageError::Unavailable(sqlx::Error::PoolClosed);
        self.0.send(entries).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?.map_err(|failed| {
            let message = format!("the audit trail could not be written: {}", failed.message);
            if failed.unavailable {
                StorageError::Unavailable(sqlx::Error::Io(std::io::Error::other(message)))
            } else {
                StorageError::Corrupt(message)
            }
        })
    }
}

async fn write_loop(pools: Pools, mut rx: mpsc::Receiver<Entries>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let result = write(&pools, &batch).await;
        if let Err(error) = &result {
            tracing::error!(error = %crate::error::DisplayChain(error), calls = batch.len(), "audit entries could not be written; the reads fail");
        }
        let result = result.map_err(|e| Failed {
            unavailable: matches!(e, StorageError::Unavailable(_) | StorageError::Connect(_)),
            message: e.to_string(),
        });
        for entries in batch {
            let _ = entries.done.send(result.clone());
        }
    }
}

/// Writes every entry of `batch`, all or none.
async fn write(pools: &Pools, batch: &[Entries]) -> Result<(), StorageError> {
    let rows: Vec<Row<'_>> = batch
        .iter()
        .flat_map(|e| {
            e.target_ids.iter().map(move |target| Row {
                at: e.at,
                actor: &e.actor,
                roles: &e.roles,
                action: &e.action,
                target_type: &e.target_type,
                target_id: target,
            })
        })
        .collect();
    match pools {
        Pools::Postgres { pool, .. } => {
            // One statement (every row from arrays), committed on its own: all or none,
            // in one round trip where BEGIN and COMMIT around it would take three, and
            // every call of the batch waits on this.
            let mut conn = pool.acquire().await?;
            insert(Conn::Postgres(&mut conn), &rows).await?;
        }
        Pools::Sqlite { writer, .. } => {
            let mut conn = writer.acquire().await?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            insert(Conn::Sqlite(&mut tx), &rows).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// One audit row.
struct Row<'a> {
    at: DbTime,
    actor: &'a str,
    roles: &'a str,
    action: &'a str,
    target_type: &'a str,
    target_id: &'a str,
}

const INSERT_MANY_POSTGRES: &str = "INSERT INTO audit_log (id, at, actor, roles, action, \
     target_type, target_id) SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], \
     $4::text[], $5::text[], $6::text[], $7::text[])";

/// The actor's roles as stored: space-separated.
fn roles_of(actor: &Principal) -> String {
    let roles: Vec<&str> = actor.roles.iter().map(|r| r.as_str()).collect();
    roles.join(" ")
}

async fn insert(conn: Conn<'_>, rows: &[Row<'_>]) -> Result<(), StorageError> {
    match conn {
        Conn::Postgres(c) => {
            fn column<'a, T>(rows: &'a [Row<'a>], f: impl Fn(&'a Row<'a>) -> T) -> Vec<T> {
                rows.iter().map(f).collect()
            }
            sqlx::query(INSERT_MANY_POSTGRES)
                .bind(column(rows, |_| Uuid::now_v7()))
                .bind(column(rows, |r| r.at))
                .bind(column(rows, |r| r.actor))
                .bind(column(rows, |r| r.roles))
                .bind(column(rows, |r| r.action))
                .bind(column(rows, |r| r.target_type))
                .bind(column(rows, |r| r.target_id))
                .execute(&mut *c)
                .await?;
        }
        Conn::Sqlite(c) => {
            for r in rows {
                sqlx::query(INSERT_SQLITE)
                    .bind(Uuid::now_v7())
                    .bind(r.at)
                    .bind(r.actor)
                    .bind(r.roles)
                    .bind(r.action)
                    .bind(r.target_type)
                    .bind(r.target_id)
                    .execute(&mut *c)
                    .await?;
            }
        }
    }
    Ok(())
}

const INSERT_SQLITE: &str = "INSERT INTO audit_log (id, at, actor, roles, action, target_type, \
     target_id) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Records in the caller's transaction that `actor` did `action` (e.g.
/// `report.amend`) on each of `target_ids`.
pub async fn record(
    tx: &mut Tx,
    actor: &Principal,
    action: &str,
    target_type: &str,
    target_ids: &[String],
) -> Result<(), StorageError> {
    let roles = roles_of(actor);
    let at = DbTime::now();
    let rows: Vec<Row<'_>> = target_ids
        .iter()
        .map(|target| Row {
            at,
            actor: &actor.subject,
            roles: &roles,
            action,
            target_type,
            target_id: target,
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    insert(tx.conn(), &rows).await
}

/// `(actor, action)` of the entries about one target, oldest first.
pub async fn entries(
    mut conn: impl AsConn,
    target_id: &str,
) -> Result<Vec<(String, String)>, StorageError> {
    const SQL: &str = "SELECT actor, action FROM audit_log WHERE target_id = $1 ORDER BY at, id";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as(SQL).bind(target_id).fetch_all(&mut *c).await?
    }))
}

//! The audit trail: who read or changed personal data or evidence, and when.
//!
//! A read is recorded with `Db::audit`, which returns once the entry has committed, so
//! the data is returned only after its read is recorded, and a read that cannot be
//! recorded fails instead of going unrecorded. Entries of calls that arrive together are
//! committed together (one writer, one transaction for whatever is waiting): under load,
//! one commit serves many calls instead of one each. A change is recorded with
//! [`record`] in the transaction of the change itself. On PostgreSQL a call's entry is
//! one row naming all its targets (a list read is one row, not one per item listed);
//! [`entries`] finds a target's entries on either backend.

use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{
    auth::Principal,
    storage::{AsConn, Conn, DbTime, Dialect, Pools, StorageError, Tx},
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

/// Writes every entry of `batch` in one transaction.
async fn write(pools: &Pools, batch: &[Entries]) -> Result<(), StorageError> {
    let calls: Vec<Call<'_>> = batch
        .iter()
        .map(|e| Call {
            at: e.at,
            actor: &e.actor,
            roles: &e.roles,
            action: &e.action,
            target_type: &e.target_type,
            target_ids: &e.target_ids,
        })
        .collect();
    match pools {
        Pools::Postgres { pool, .. } => {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            insert(Conn::Postgres(&mut tx), &calls).await?;
            tx.commit().await?;
        }
        Pools::Sqlite { writer, .. } => {
            let mut conn = writer.acquire().await?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            insert(Conn::Sqlite(&mut tx), &calls).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// One call's entry: what one actor did to one or more targets at one time.
struct Call<'a> {
    at: DbTime,
    actor: &'a str,
    roles: &'a str,
    action: &'a str,
    target_type: &'a str,
    target_ids: &'a [String],
}

/// On PostgreSQL a call is one row, its targets an array (migration 0003; `target_id`
/// is left empty): a list of fifty reports read is one row, not fifty rows and a
/// hundred index entries. The
/// targets arrive as JSON arrays, one per call (a parameter cannot be an array of
/// arrays of different lengths).
const INSERT_MANY_POSTGRES: &str = "INSERT INTO audit_log (id, at, actor, roles, action, \
     target_type, target_ids) SELECT id, at, actor, roles, action, target_type, \
     ARRAY(SELECT jsonb_array_elements_text(targets::jsonb)) FROM UNNEST($1::uuid[], \
     $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
     AS u (id, at, actor, roles, action, target_type, targets)";

/// The actor's roles as stored: space-separated.
fn roles_of(actor: &Principal) -> String {
    let roles: Vec<&str> = actor.roles.iter().map(|r| r.as_str()).collect();
    roles.join(" ")
}

async fn insert(conn: Conn<'_>, calls: &[Call<'_>]) -> Result<(), StorageError> {
    match conn {
        Conn::Postgres(c) => {
            fn column<'a, T>(calls: &'a [Call<'a>], f: impl Fn(&'a Call<'a>) -> T) -> Vec<T> {
                calls.iter().map(f).collect()
            }
            sqlx::query(INSERT_MANY_POSTGRES)
                .bind(column(calls, |_| Uuid::now_v7()))
                .bind(column(calls, |r| r.at))
                .bind(column(calls, |r| r.actor))
                .bind(column(calls, |r| r.roles))
                .bind(column(calls, |r| r.action))
                .bind(column(calls, |r| r.target_type))
                .bind(column(calls, |r| {
                    serde_json::to_string(r.target_ids).expect("strings serialise")
                }))
                .execute(&mut *c)
                .await?;
        }
        // SQLite writes a local file in the same process: a row per target costs little
        // there, and keeps a target's entries on an index.
        Conn::Sqlite(c) => {
            for r in calls {
                for target in r.target_ids {
                    sqlx::query(INSERT_SQLITE)
                        .bind(Uuid::now_v7())
                        .bind(r.at)
                        .bind(r.actor)
                        .bind(r.roles)
                        .bind(r.action)
                        .bind(r.target_type)
                        .bind(target)
                        .execute(&mut *c)
                        .await?;
                }
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
    if target_ids.is_empty() {
        return Ok(());
    }
    let roles = roles_of(actor);
    let call = Call {
        at: DbTime::now(),
        actor: &actor.subject,
        roles: &roles,
        action,
        target_type,
        target_ids,
    };
    insert(tx.conn(), &[call]).await
}

/// `(actor, action)` of the entries about one target, oldest first.
pub async fn entries(
    mut conn: impl AsConn,
    target_id: &str,
) -> Result<Vec<(String, String)>, StorageError> {
    // Rows written before migration 0003 (or by a replica of the release before it)
    // name their one target in `target_id`.
    const POSTGRES: &str = "SELECT actor, action FROM audit_log \
         WHERE target_ids @> ARRAY[$1::text] OR target_id = $1 ORDER BY at, id";
    const SQLITE: &str = "SELECT actor, action FROM audit_log WHERE target_id = $1 ORDER BY at, id";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as(c.pick(POSTGRES, SQLITE)).bind(target_id).fetch_all(&mut *c).await?
    }))
}

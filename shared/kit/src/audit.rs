//! The audit trail: who read or changed personal data or evidence, and when. An entry is
//! written in the caller's transaction, which commits before the data is returned, so a
//! read that cannot be recorded fails instead of going unrecorded.

use uuid::Uuid;

use crate::{
    auth::Principal,
    storage::{AsConn, Conn, DbTime, StorageError, Tx},
    with_conn,
};

const INSERT_POSTGRES: &str = "INSERT INTO audit_log (id, at, actor, roles, action, target_type, \
     target_id) SELECT id, $2, $3, $4, $5, $6, target_id \
     FROM UNNEST($1::uuid[], $7::text[]) AS t(id, target_id)";
const INSERT_SQLITE: &str = "INSERT INTO audit_log (id, at, actor, roles, action, target_type, \
     target_id) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Records that `actor` did `action` (e.g. `report.read`) on each of `target_ids`.
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
    let roles: Vec<&str> = actor.roles.iter().map(|r| r.as_str()).collect();
    let roles = roles.join(" ");
    let at = DbTime::now();
    match tx.conn() {
        Conn::Postgres(c) => {
            let ids: Vec<Uuid> = target_ids.iter().map(|_| Uuid::now_v7()).collect();
            sqlx::query(INSERT_POSTGRES)
                .bind(ids)
                .bind(at)
                .bind(&actor.subject)
                .bind(&roles)
                .bind(action)
                .bind(target_type)
                .bind(target_ids)
                .execute(&mut *c)
                .await?;
        }
        Conn::Sqlite(c) => {
            for target in target_ids {
                sqlx::query(INSERT_SQLITE)
                    .bind(Uuid::now_v7())
                    .bind(at)
                    .bind(&actor.subject)
                    .bind(&roles)
                    .bind(action)
                    .bind(target_type)
                    .bind(target)
                    .execute(&mut *c)
                    .await?;
            }
        }
    }
    Ok(())
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

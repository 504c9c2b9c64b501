//! Feed epochs on PostgreSQL. Outbox rows sort by `(epoch, txid, id)`. If the outbox
//! holds transaction ids at or beyond the next id this cluster will hand out, the schema
//! was restored into, or moved to, another cluster whose counter is behind: new events
//! would sort before old ones, and a subscriber already past the old ones would never
//! see them. At start (under the migration lock) such a database begins a new epoch, so
//! that every new event sorts after every old one.

use sqlx::PgConnection;

use crate::storage::StorageError;

pub(crate) async fn check_epoch(conn: &mut PgConnection) -> Result<(), StorageError> {
    let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM feed_epoch")
        .fetch_one(&mut *conn)
        .await?;
    let (highest, next): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT max(txid) FROM outbox WHERE epoch = $1), \
         pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
    )
    .bind(epoch)
    .fetch_one(&mut *conn)
    .await?;
    let Some(highest) = highest.filter(|&h| h >= next) else {
        return Ok(());
    };
    let new = epoch + 1;
    tracing::warn!(
        epoch = new,
        outbox_txid = highest,
        cluster_next_txid = next,
        "the outbox holds transaction ids this PostgreSQL cluster has not reached (the \
         database was restored into or moved to another cluster): starting a new feed \
         epoch so that new events sort after the old ones"
    );
    sqlx::query("UPDATE feed_epoch SET epoch = $1")
        .bind(new)
        .execute(&mut *conn)
        .await?;
    // A column default cannot read a table; the epoch is a constant in the default.
    let default = format!("ALTER TABLE outbox ALTER COLUMN epoch SET DEFAULT {new}");
    sqlx::query(sqlx::AssertSqlSafe(default))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

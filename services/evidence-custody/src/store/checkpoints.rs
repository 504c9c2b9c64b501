//! Signed checkpoints of the custody log.

use custos_kit::{
    storage::{AsConn, DbTime, Select, StorageError, Tx},
    with_conn,
};
use sqlx::FromRow;

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct CheckpointRow {
    pub tree_size: i64,
    pub root_hash: String,
    pub signed_at: DbTime,
    pub key_id: String,
    pub note: String,
    pub signature: Vec<u8>,
}

const COLUMNS: &str =
    "SELECT tree_size, root_hash, signed_at, key_id, note, signature FROM checkpoints";

/// Stores a checkpoint (another replica's of the same size wins; both sign the same
/// tree).
pub async fn insert_checkpoint(tx: &mut Tx, c: &CheckpointRow) -> Result<bool, StorageError> {
    const SQL: &str = "INSERT INTO checkpoints (tree_size, root_hash, signed_at, key_id, note, \
         signature) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tree_size) DO NOTHING";
    let n = with_conn!(tx, conn => {
        sqlx::query(SQL).bind(c.tree_size).bind(&c.root_hash).bind(c.signed_at).bind(&c.key_id)
            .bind(&c.note).bind(&c.signature).execute(&mut *conn).await?.rows_affected()
    });
    Ok(n > 0)
}

pub async fn latest_checkpoint(conn: impl AsConn) -> Result<Option<CheckpointRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.then("ORDER BY tree_size DESC");
    select.limit(1);
    Ok(select.fetch_all(conn).await?.pop())
}

/// Every checkpoint, smallest first.
pub async fn checkpoints(conn: impl AsConn) -> Result<Vec<CheckpointRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.then("ORDER BY tree_size");
    select.fetch_all(conn).await
}

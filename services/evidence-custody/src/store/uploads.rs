//! Unary uploads in progress and their chunks.

use custos_kit::{
    storage::{AsConn, Conn, DbTime, Select, StorageError, Tx},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct UploadRow {
    pub id: Uuid,
    pub item_id: Uuid,
    pub created_by: String,
    pub file_name: String,
    pub reason: String,
    pub committed_size: i64,
    pub created_at: DbTime,
    pub updated_at: DbTime,
    pub finalized: bool,
}

const COLUMNS: &str = "SELECT id, item_id, created_by, file_name, reason, committed_size, \
     created_at, updated_at, finalized FROM uploads";

pub async fn insert_upload(tx: &mut Tx, u: &UploadRow) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO uploads (id, item_id, created_by, file_name, reason, \
         committed_size, created_at, updated_at, finalized) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    with_conn!(tx, c => {
        sqlx::query(SQL).bind(u.id).bind(u.item_id).bind(&u.created_by).bind(&u.file_name)
            .bind(&u.reason).bind(u.committed_size).bind(u.created_at).bind(u.updated_at).bind(u.finalized)
            .execute(&mut *c).await?;
    });
    Ok(())
}

pub async fn upload(conn: impl AsConn, id: Uuid) -> Result<Option<UploadRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.and("id = ?", [id.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

/// An upload, locked until the transaction ends: one chunk at a time.
pub async fn hold_upload(tx: &mut Tx, id: Uuid) -> Result<Option<UploadRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.and("id = ?", [id.into()]);
    if matches!(tx.conn(), Conn::Postgres(_)) {
        select.then("FOR UPDATE");
    }
    Ok(select.fetch_all(&mut *tx).await?.pop())
}

/// Records a chunk kept at `offset` and moves the upload's committed size past it.
pub async fn add_chunk(
    tx: &mut Tx,
    upload_id: Uuid,
    offset: i64,
    length: i64,
    key: &str,
) -> Result<(), StorageError> {
    const CHUNK: &str = "INSERT INTO upload_chunks (upload_id, \"offset\", length, content_key) VALUES ($1, $2, $3, $4)";
    const SIZE: &str = "UPDATE uploads SET committed_size = $2, updated_at = $3 WHERE id = $1";
    with_conn!(tx, c => {
        sqlx::query(CHUNK).bind(upload_id).bind(offset).bind(length).bind(key).execute(&mut *c).await?;
        sqlx::query(SIZE).bind(upload_id).bind(offset + length).bind(DbTime::now()).execute(&mut *c).await?;
    });
    Ok(())
}

/// `(offset, length, key)` of an upload's chunks, in order.
pub async fn chunks_of(
    mut conn: impl AsConn,
    upload_id: Uuid,
) -> Result<Vec<(i64, i64, String)>, StorageError> {
    const SQL: &str = "SELECT \"offset\", length, content_key FROM upload_chunks WHERE upload_id = $1 ORDER BY \"offset\"";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as(SQL).bind(upload_id).fetch_all(&mut *c).await?
    }))
}

pub async fn set_finalized(tx: &mut Tx, upload_id: Uuid) -> Result<(), StorageError> {
    with_conn!(tx, c => {
        sqlx::query("UPDATE uploads SET finalized = TRUE, updated_at = $2 WHERE id = $1").bind(upload_id).bind(DbTime::now()).execute(&mut *c).await?;
    });
    Ok(())
}

/// Uploads untouched since before `before` (to remove: unfinished ones are abandoned,
/// finalised ones need their chunks no more), oldest first, at most `limit`.
pub async fn expired_uploads(
    conn: impl AsConn,
    before: DbTime,
    limit: i64,
) -> Result<Vec<UploadRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.and("updated_at < ?", [before.into()]);
    select.then("ORDER BY updated_at");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// Removes an upload's records (its chunks' objects are removed first).
pub async fn delete_upload(tx: &mut Tx, upload_id: Uuid) -> Result<(), StorageError> {
    with_conn!(tx, c => {
        sqlx::query("DELETE FROM upload_chunks WHERE upload_id = $1").bind(upload_id).execute(&mut *c).await?;
        sqlx::query("DELETE FROM uploads WHERE id = $1").bind(upload_id).execute(&mut *c).await?;
    });
    Ok(())
}

//! Evidence items.

use custos_kit::{
    storage::{AsConn, Conn, DbTime, Dialect, JsonText, Select, StorageError, Tx, Value},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::evidence::{Collection, Hold, ItemState, Kind};

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ItemRow {
    pub id: Uuid,
    pub number: i64,
    pub reference: String,
    pub incident_id: Uuid,
    pub kind: Kind,
    pub description: String,
    pub collection: JsonText<Collection>,
    pub custodian: String,
    pub storage_location: String,
    pub state: ItemState,
    pub hold: Option<JsonText<Hold>>,
    pub content_sha256: Option<String>,
    pub content_size: Option<i64>,
    pub content_key: Option<String>,
    pub content_file_name: Option<String>,
    pub content_added_at: Option<DbTime>,
    pub content_added_by: Option<String>,
    pub parent_item_id: Option<Uuid>,
    pub parent_reference: Option<String>,
    pub parent_sha256: Option<String>,
    pub registered_by: String,
    pub registered_at: DbTime,
    pub revision: i32,
    pub entry_count: i32,
    pub head_hash: String,
}

const COLUMNS: &str = "SELECT id, number, reference, incident_id, kind, description, collection, \
     custodian, storage_location, state, hold, content_sha256, content_size, content_key, \
     content_file_name, content_added_at, content_added_by, parent_item_id, parent_reference, \
     parent_sha256, registered_by, registered_at, revision, entry_count, head_hash FROM evidence_items";

/// Inserts a new item (its number and reference given here: `<prefix><number>`, the
/// number six digits at least) and returns it as stored.
pub async fn insert_item(
    tx: &mut Tx,
    mut row: ItemRow,
    prefix: &str,
) -> Result<ItemRow, StorageError> {
    const INSERT: &str = "INSERT INTO evidence_items (id, number, reference, incident_id, kind, \
         description, collection, custodian, storage_location, state, hold, content_sha256, \
         content_size, content_key, content_file_name, content_added_at, content_added_by, \
         parent_item_id, parent_reference, parent_sha256, registered_by, registered_at, revision, \
         entry_count, head_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)";
    with_conn!(tx, c => {
        let next = c.pick(
            "SELECT nextval('evidence_number_seq')",
            "SELECT COALESCE(MAX(number), 0) + 1 FROM evidence_items",
        );
        let number: i64 = sqlx::query_scalar(next).fetch_one(&mut *c).await?;
        row.number = number;
        row.reference = format!("{prefix}{number:06}");
        sqlx::query(INSERT)
            .bind(row.id).bind(row.number).bind(&row.reference).bind(row.incident_id).bind(row.kind)
            .bind(&row.description).bind(&row.collection).bind(&row.custodian).bind(&row.storage_location)
            .bind(row.state).bind(&row.hold).bind(&row.content_sha256).bind(row.content_size)
            .bind(&row.content_key).bind(&row.content_file_name).bind(row.content_added_at)
            .bind(&row.content_added_by).bind(row.parent_item_id).bind(&row.parent_reference).bind(&row.parent_sha256)
            .bind(&row.registered_by).bind(row.registered_at).bind(row.revision).bind(row.entry_count)
            .bind(&row.head_hash)
            .execute(&mut *c).await?;
    });
    Ok(row)
}

/// Writes a held item's changing fields.
pub async fn save_item(tx: &mut Tx, row: &ItemRow) -> Result<(), StorageError> {
    const SQL: &str = "UPDATE evidence_items SET custodian = $2, storage_location = $3, state = $4, \
         hold = $5, content_sha256 = $6, content_size = $7, content_key = $8, \
         content_file_name = $9, content_added_at = $10, content_added_by = $11, revision = $12, \
         entry_count = $13, head_hash = $14 WHERE id = $1";
    with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.id).bind(&row.custodian).bind(&row.storage_location).bind(row.state)
            .bind(&row.hold).bind(&row.content_sha256).bind(row.content_size).bind(&row.content_key)
            .bind(&row.content_file_name).bind(row.content_added_at).bind(&row.content_added_by)
            .bind(row.revision).bind(row.entry_count).bind(&row.head_hash)
            .execute(&mut *c).await?;
    });
    Ok(())
}

pub async fn item(conn: impl AsConn, id: Uuid) -> Result<Option<ItemRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.and("id = ?", [id.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

pub async fn item_by_reference(
    conn: impl AsConn,
    reference: &str,
) -> Result<Option<ItemRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.and("reference = ?", [reference.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

/// An item, locked until the transaction ends (PostgreSQL; SQLite's one writer already
/// excludes the others).
pub async fn hold_item(tx: &mut Tx, id: Uuid) -> Result<Option<ItemRow>, StorageError> {
    Ok(hold_items(tx, &[id]).await?.pop())
}

/// Items, locked in id order (so that two transactions never wait on each other).
pub async fn hold_items(tx: &mut Tx, ids: &[Uuid]) -> Result<Vec<ItemRow>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = Select::new(COLUMNS);
    select.and_in("id", ids.iter().map(|id| Value::from(*id)));
    select.then("ORDER BY id");
    if matches!(tx.conn(), Conn::Postgres(_)) {
        select.then("FOR UPDATE");
    }
    select.fetch_all(&mut *tx).await
}

/// What ListEvidence narrows to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemFilter {
    pub incident_id: Option<Uuid>,
    /// The incidents the caller may see; `None`: all (internal audit).
    pub visible: Option<Vec<Uuid>>,
    pub states: Vec<ItemState>,
    pub kinds: Vec<Kind>,
    pub on_hold: Option<bool>,
}

/// A page of items, oldest first, after `(registered_at, id)`.
pub async fn list_items(
    conn: impl AsConn,
    filter: &ItemFilter,
    after: Option<(DbTime, Uuid)>,
    limit: i64,
) -> Result<Vec<ItemRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.and_eq("incident_id", filter.incident_id);
    if let Some(visible) = &filter.visible {
        if visible.is_empty() {
            return Ok(Vec::new());
        }
        select.and_in("incident_id", visible.iter().map(|id| Value::from(*id)));
    }
    select.and_in("state", filter.states.iter().map(|s| Value::of(*s)));
    select.and_in("kind", filter.kinds.iter().map(|k| Value::of(*k)));
    match filter.on_hold {
        Some(true) => select.and("hold IS NOT NULL", []),
        Some(false) => select.and("hold IS NULL", []),
        None => {}
    }
    if let Some((at, id)) = after {
        select.and("(registered_at, id) > (?, ?)", [at.into(), id.into()]);
    }
    select.then("ORDER BY registered_at, id");
    select.limit(limit);
    select.fetch_all(conn).await
}

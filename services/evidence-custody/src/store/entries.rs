//! The custody log: entries appended to items' chains, each at the next position of the
//! whole log. Nothing here changes or removes an entry.

use std::collections::BTreeMap;

use custos_kit::{
    storage::{AsConn, DbTime, Select, StorageError, Tx},
    with_conn,
};
use uuid::Uuid;

use super::ItemRow;
use crate::{
    chain::{ENTRY_FORMAT, EntryBody, StoredEntry, entry_hash, hex, parse_hash},
    evidence::Action,
    signing::Signer,
};

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub action: Action,
    pub actor: String,
    pub reason: String,
    pub details: BTreeMap<String, String>,
    pub at: DbTime,
}

impl NewEntry {
    pub fn new(action: Action, actor: &str, reason: &str, at: DbTime) -> Self {
        Self {
            action,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            details: BTreeMap::new(),
            at,
        }
    }

    /// Adds a detail (empty values are left out).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.details.insert(key.to_owned(), value);
        }
        self
    }
}

fn rfc3339(at: DbTime) -> String {
    let t = at.get();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Appends an entry to a held item's chain at the log's next position, and moves the
/// item's count and head (the caller saves the item in the same transaction).
pub async fn append(
    tx: &mut Tx,
    item: &mut ItemRow,
    e: NewEntry,
    signer: &Signer,
) -> Result<StoredEntry, StorageError> {
    const NEXT: &str = "UPDATE custody_log SET size = size + 1 WHERE id = 1 RETURNING size";
    const INSERT: &str = "INSERT INTO custody_entries (log_index, item_id, sequence, action, at, \
         previous_hash, entry_hash, signature, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let previous = parse_hash(&item.head_hash).ok_or_else(|| {
        StorageError::Corrupt(format!("item {}'s head hash is not a hash", item.id))
    })?;
    let size: i64 = with_conn!(tx, c => {
        sqlx::query_scalar(NEXT).fetch_one(&mut *c).await?
    });
    let log_index = size - 1;
    let sequence = item.entry_count + 1;
    let body = EntryBody {
        format: ENTRY_FORMAT.into(),
        item_id: item.id,
        item_reference: item.reference.clone(),
        sequence,
        log_index,
        action: e.action.name().to_owned(),
        actor: e.actor,
        at: rfc3339(e.at),
        reason: e.reason,
        details: e.details,
    }
    .to_bytes();
    let hash = entry_hash(&previous, &body);
    let stored = StoredEntry {
        log_index,
        sequence,
        previous_hash: hex(&previous),
        entry_hash: hex(&hash),
        body: String::from_utf8(body).expect("JSON is UTF-8"),
        signature: hex(&signer.sign(&crate::chain::signed_message(log_index, &hash))),
    };
    with_conn!(tx, c => {
        sqlx::query(INSERT)
            .bind(log_index).bind(item.id).bind(sequence).bind(e.action).bind(e.at)
            .bind(&stored.previous_hash).bind(&stored.entry_hash)
            .bind(&stored.signature)
            .bind(&stored.body)
            .execute(&mut *c).await?;
    });
    item.entry_count = sequence;
    item.head_hash = stored.entry_hash.clone();
    Ok(stored)
}

/// An item's entries after `after_sequence`, in order (`limit` of them; all with `None`).
pub async fn entries_of(
    conn: impl AsConn,
    item_id: Uuid,
    after_sequence: i32,
    limit: Option<i64>,
) -> Result<Vec<StoredEntry>, StorageError> {
    let mut select = Select::new(
        "SELECT log_index, sequence, previous_hash, entry_hash, body, signature FROM custody_entries",
    );
    select.and("item_id = ?", [item_id.into()]);
    select.and("sequence > ?", [after_sequence.into()]);
    select.then("ORDER BY sequence");
    if let Some(limit) = limit {
        select.limit(limit);
    }
    let rows: Vec<(i64, i32, String, String, String, String)> = select.fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .map(
            |(log_index, sequence, previous_hash, entry_hash, body, signature)| StoredEntry {
                log_index,
                sequence,
                previous_hash,
                entry_hash,
                body,
                signature,
            },
        )
        .collect())
}

/// The log's size as committed: every position below it is committed too (appenders
/// take the size row in turn and hold it until they commit).
pub async fn log_size(mut conn: impl AsConn) -> Result<i64, StorageError> {
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT size FROM custody_log WHERE id = 1").fetch_one(&mut *c).await?
    }))
}

/// `(log_index, entry_hash)` of every entry below `size`, in log order.
pub async fn log_leaves(
    mut conn: impl AsConn,
    size: i64,
) -> Result<Vec<(i64, String)>, StorageError> {
    const SQL: &str =
        "SELECT log_index, entry_hash FROM custody_entries WHERE log_index < $1 ORDER BY log_index";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as(SQL).bind(size).fetch_all(&mut *c).await?
    }))
}

/// `(log_index, entry_hash, signature)` of the entries at positions `from..to`, in order.
pub async fn signed_leaves(
    mut conn: impl AsConn,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, String, String)>, StorageError> {
    const SQL: &str = "SELECT log_index, entry_hash, signature FROM custody_entries \
         WHERE log_index >= $1 AND log_index < $2 ORDER BY log_index";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as(SQL).bind(from).bind(to).fetch_all(&mut *c).await?
    }))
}

//! The transactional outbox. Events are appended with `Tx::append_event(s)` in the
//! transaction of the write that caused them, and `Tx::commit` wakes the feed readers
//! (or, on a hot path, by the write's own statement through `storage::Autocommit`, which
//! wakes them when dropped).
//!
//! **Late commits.** On PostgreSQL an identity value is handed out at insert, not at
//! commit: a transaction holding id 41 can commit after id 42 has been read. Each row
//! therefore records the id of its transaction (`txid`), rows are read in `(epoch, txid,
//! id)` order, and a row is delivered only once its txid is below the xmin of the
//! reader's snapshot, i.e. once every transaction that could still add a smaller
//! position has ended. Rows beyond that horizon are "held back" and read again shortly.
//! SQLite has a single writer, so ids are already in commit order and `txid` is 0.
//!
//! **Other histories.** See [`cursor`]: a cursor names the event it stands on, and a
//! feed refuses a cursor whose event it does not hold (a restored or moved database)
//! instead of silently skipping what the new history holds.

pub mod cursor;
mod epoch;
mod relay;

pub use cursor::Cursor;
pub(crate) use epoch::check_epoch;
pub use relay::relay_notifications;

use std::collections::HashMap;

use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    propagation,
    storage::{AsConn, DbTime, Dialect, StorageError, Tx},
    with_conn,
};

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
    pub aggregate_id: String,
    pub aggregate_reference: String,
    /// W3C trace context as JSON (`{}` for none).
    pub trace_context: String,
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// An event about an aggregate, carrying the current trace context.
    pub fn new<M: prost::Name>(
        aggregate_id: impl ToString,
        aggregate_reference: impl Into<String>,
        occurred_at: OffsetDateTime,
        payload: &M,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: M::full_name(),
            occurred_at,
            aggregate_id: aggregate_id.to_string(),
            aggregate_reference: aggregate_reference.into(),
            trace_context: serde_json::to_string(&propagation::current_trace_context())
                .unwrap_or_else(|_| "{}".into()),
            payload: payload.encode_to_vec(),
        }
    }

    /// An event about something an anonymous caller did: no trace context, a random id
    /// (a UUIDv7 would carry the millisecond) and its time cut to the minute, so that it
    /// cannot be matched with the caller's traces or a gateway's access log.
    pub fn anonymous<M: prost::Name>(
        aggregate_id: impl ToString,
        aggregate_reference: impl Into<String>,
        occurred_at: OffsetDateTime,
        payload: &M,
    ) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            occurred_at: DbTime::new(occurred_at).to_minute().get(),
            trace_context: "{}".into(),
            ..Self::new(aggregate_id, aggregate_reference, occurred_at, payload)
        }
    }
}

/// The outbox columns a statement writes an event's fields into, in the order of
/// [`NewEvent`]'s fields (for a statement run through `storage::Autocommit`).
#[macro_export]
macro_rules! outbox_columns {
    () => {
        "event_id, event_type, occurred_at, aggregate_id, aggregate_reference, trace_context, payload"
    };
}

const INSERT_POSTGRES: &str = concat!(
    "INSERT INTO outbox (",
    outbox_columns!(),
    ") SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], \
     $5::text[], $6::text[], $7::bytea[])"
);
const INSERT_SQLITE: &str = concat!(
    "INSERT INTO outbox (",
    outbox_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
);

/// Writes events in the caller's transaction (called by `Tx::append_events`, which
/// counts them so that its commit wakes the feed).
pub(crate) async fn insert(tx: &mut Tx, events: &[NewEvent]) -> Result<(), StorageError> {
    fn column<'a, T>(events: &'a [NewEvent], f: impl Fn(&'a NewEvent) -> T) -> Vec<T> {
        events.iter().map(f).collect()
    }
    match tx.conn() {
        crate::storage::Conn::Postgres(c) => {
            sqlx::query(INSERT_POSTGRES)
                .bind(column(events, |e| e.event_id))
                .bind(column(events, |e| e.event_type.as_str()))
                .bind(column(events, |e| DbTime::new(e.occurred_at)))
                .bind(column(events, |e| e.aggregate_id.as_str()))
                .bind(column(events, |e| e.aggregate_reference.as_str()))
                .bind(column(events, |e| e.trace_context.as_str()))
                .bind(column(events, |e| e.payload.as_slice()))
                .execute(&mut *c)
                .await?;
        }
        crate::storage::Conn::Sqlite(c) => {
            for e in events {
                sqlx::query(INSERT_SQLITE)
                    .bind(e.event_id)
                    .bind(&e.event_type)
                    .bind(DbTime::new(e.occurred_at))
                    .bind(&e.aggregate_id)
                    .bind(&e.aggregate_reference)
                    .bind(&e.trace_context)
                    .bind(&e.payload)
                    .execute(&mut *c)
                    .await?;
            }
        }
    }
    Ok(())
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub cursor: Cursor,
    pub occurred_at: OffsetDateTime,
    pub event_type: String,
    pub aggregate_id: String,
    pub aggregate_reference: String,
    pub trace_context: HashMap<String, String>,
    pub payload: Vec<u8>,
}

/// One read of the outbox.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events after the cursor that are safe to deliver, in order.
    pub events: Vec<StoredEvent>,
    /// The read stopped at a committed event that must wait for an older transaction.
    pub held_back: bool,
    /// The read was cut at its limit; read again at once.
    pub full: bool,
}

const READ_POSTGRES: &str = "SELECT epoch, txid, id, event_id, event_type, occurred_at, \
     aggregate_id, aggregate_reference, trace_context, payload, \
     (epoch < (SELECT epoch FROM feed_epoch) \
      OR txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint) AS settled \
     FROM outbox WHERE (epoch, txid, id) > ($1, $2, $3) ORDER BY epoch, txid, id LIMIT $4";
const READ_SQLITE: &str = "SELECT epoch, txid, id, event_id, event_type, occurred_at, \
     aggregate_id, aggregate_reference, trace_context, payload, 1 AS settled \
     FROM outbox WHERE id > $3 AND $1 = $1 AND $2 = $2 ORDER BY id LIMIT $4";

const HEAD_POSTGRES: &str = "SELECT epoch, txid, id, event_id FROM outbox \
     WHERE epoch < (SELECT epoch FROM feed_epoch) \
     OR txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
     ORDER BY epoch DESC, txid DESC, id DESC LIMIT 1";
const HEAD_SQLITE: &str = "SELECT epoch, txid, id, event_id FROM outbox ORDER BY id DESC LIMIT 1";

/// The cursor of the last event a reader may be given now (every event after it is yet
/// to be delivered, whenever it commits): where a snapshot taken now is followed from.
/// [`Cursor::START`] when the outbox is empty.
pub async fn head(mut conn: impl AsConn) -> Result<Cursor, StorageError> {
    let row: Option<(i64, i64, i64, Uuid)> = with_conn!(&mut conn, c => {
        sqlx::query_as(c.pick(HEAD_POSTGRES, HEAD_SQLITE)).fetch_optional(&mut *c).await?
    });
    Ok(
        row.map_or(Cursor::START, |(epoch, txid, id, event_id)| Cursor {
            epoch,
            txid,
            id,
            event_id,
        }),
    )
}

/// Reads up to `limit` deliverable events after `after`.
pub async fn read_after(
    mut conn: impl AsConn,
    after: Cursor,
    limit: i64,
) -> Result<Batch, StorageError> {
    let rows = with_conn!(&mut conn, c => {
        let rows = sqlx::query(c.pick(READ_POSTGRES, READ_SQLITE))
            .bind(after.epoch)
            .bind(after.txid)
            .bind(after.id)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
        rows.iter().map(|row| {
            Ok::<_, sqlx::Error>((
                row.try_get::<bool, _>("settled")?,
                StoredEvent {
                    cursor: Cursor {
                        epoch: row.try_get("epoch")?,
                        txid: row.try_get("txid")?,
                        id: row.try_get("id")?,
                        event_id: row.try_get("event_id")?,
                    },
                    event_type: row.try_get("event_type")?,
                    occurred_at: row.try_get::<DbTime, _>("occurred_at")?.get(),
                    aggregate_id: row.try_get("aggregate_id")?,
                    aggregate_reference: row.try_get("aggregate_reference")?,
                    trace_context: serde_json::from_str(
                        &row.try_get::<String, _>("trace_context")?,
                    )
                    .unwrap_or_default(),
                    payload: row.try_get("payload")?,
                },
            ))
        }).collect::<Result<Vec<_>, _>>()?
    });
    let full = rows.len() as i64 == limit;
    let mut batch = Batch {
        full,
        ..Batch::default()
    };
    for (settled, event) in rows {
        if !settled {
            batch.held_back = true;
            batch.full = false;
            break;
        }
        batch.events.push(event);
    }
    Ok(batch)
}

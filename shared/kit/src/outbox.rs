//! The transactional outbox. A store appends events with `OutboxWriter::append_event` in
//! the transaction of the write that caused them, then calls `Db::outbox_committed`.
//!
//! **Late commits.** On PostgreSQL an identity value is handed out at insert, not at
//! commit: a transaction holding id 41 can commit after id 42 has been read. Each row
//! therefore records the id of its transaction (`txid`), rows are read in `(txid, id)`
//! order, and a row is delivered only once its txid is below the xmin of the reader's
//! snapshot, i.e. once every transaction that could still add a smaller position has
//! ended. Rows beyond that horizon are "held back" and read again shortly. SQLite has a
//! single writer, so ids are already in commit order and `txid` is always 0.

use std::{collections::HashMap, fmt, str::FromStr};

use sqlx::{PgConnection, Row, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    propagation,
    storage::{Db, Dialect, Pool, StorageError},
    with_pool,
};

/// A position in a feed. On the wire it is opaque text (`<txid>.<id>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub txid: i64,
    pub id: i64,
}

impl Cursor {
    /// Before the first event.
    pub const START: Cursor = Cursor { txid: -1, id: -1 };

    /// Parses a cursor; the empty string is the start of the feed.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        if text.is_empty() {
            return Ok(Cursor::START);
        }
        text.parse()
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Cursor::START {
            Ok(())
        } else {
            write!(f, "{}.{}", self.txid, self.id)
        }
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a cursor returned by this feed");
        let (txid, id) = s.split_once('.').ok_or_else(bad)?;
        let txid: i64 = txid.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        if txid < 0 || id < 0 {
            return Err(bad());
        }
        Ok(Cursor { txid, id })
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
    pub aggregate_id: String,
    pub aggregate_reference: String,
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
                .unwrap_or_default(),
            payload: payload.encode_to_vec(),
        }
    }
}

/// Appends events on a connection that is inside the caller's transaction.
pub trait OutboxWriter {
    fn append_event(
        &mut self,
        event: &NewEvent,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}

const APPEND: &str = "INSERT INTO outbox (event_id, event_type, occurred_at, aggregate_id, \
     aggregate_reference, trace_context, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)";

macro_rules! impl_outbox_writer {
    ($conn:ty) => {
        impl OutboxWriter for $conn {
            async fn append_event(&mut self, event: &NewEvent) -> Result<(), StorageError> {
                sqlx::query(APPEND)
                    .bind(event.event_id)
                    .bind(&event.event_type)
                    .bind(crate::db_time::DbTime::new(event.occurred_at))
                    .bind(&event.aggregate_id)
                    .bind(&event.aggregate_reference)
                    .bind(&event.trace_context)
                    .bind(&event.payload)
                    .execute(self)
                    .await?;
                Ok(())
            }
        }
    };
}

impl_outbox_writer!(PgConnection);
impl_outbox_writer!(SqliteConnection);

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub cursor: Cursor,
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
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

const READ_POSTGRES: &str = "SELECT txid, id, event_id, event_type, occurred_at, aggregate_id, \
     aggregate_reference, trace_context, payload, \
     txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS settled \
     FROM outbox WHERE (txid, id) > ($1, $2) ORDER BY txid, id LIMIT $3";
const READ_SQLITE: &str = "SELECT txid, id, event_id, event_type, occurred_at, aggregate_id, \
     aggregate_reference, trace_context, payload, 1 AS settled \
     FROM outbox WHERE txid >= $1 AND id > $2 ORDER BY id LIMIT $3";

/// Reads up to `limit` deliverable events after `after`.
pub async fn read_after(db: &Db, after: Cursor, limit: i64) -> Result<Batch, StorageError> {
    let pool: Pool = db.reader();
    let rows = with_pool!(pool, p => {
        let rows = sqlx::query(p.pick(READ_POSTGRES, READ_SQLITE))
            .bind(after.txid)
            .bind(after.id)
            .bind(limit)
            .fetch_all(&p)
            .await?;
        rows.iter().map(|row| {
            Ok::<_, sqlx::Error>((
                row.try_get::<bool, _>("settled")?,
                StoredEvent {
                    cursor: Cursor { txid: row.try_get("txid")?, id: row.try_get("id")? },
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    occurred_at: row.try_get::<crate::db_time::DbTime, _>("occurred_at")?.get(),
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

/// Shortest time between two notifications to other replicas.
const NOTIFY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// On PostgreSQL, tells other replicas' feed readers about local commits (NOTIFY, sent
/// outside the write transactions so that commits are not serialised on it) and wakes
/// local readers when other replicas commit (LISTEN). Runs until `shutdown`.
pub async fn relay_notifications(db: Db, shutdown: tokio_util::sync::CancellationToken) {
    let Pool::Postgres(pool) = db.writer() else {
        return;
    };
    let channel = format!("custos_outbox_{}", db.schema());
    let notifier = {
        let (pool, channel, shutdown) = (pool.clone(), channel.clone(), shutdown.clone());
        let mut local = db.local_commits();
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = local.changed() => if changed.is_err() { return },
                }
                if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(&channel)
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(%error, "outbox notify failed; other replicas fall back to heartbeat re-reads");
                }
                // At most one NOTIFY per interval: commits meanwhile share the next one.
                // NOTIFY commits serialise on PostgreSQL's notification queue, and local
                // readers were already woken in-process.
                tokio::time::sleep(NOTIFY_INTERVAL).await;
            }
        }
    };
    let listener = async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(error) => {
                    tracing::warn!(%error, "outbox listener cannot connect; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(error) = listener.listen(&channel).await {
                tracing::warn!(%error, "outbox LISTEN failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            // Anything may have committed while we were not listening.
            db.wake_outbox_readers();
            loop {
                match listener.recv().await {
                    Ok(_) => db.wake_outbox_readers(),
                    Err(error) => {
                        tracing::warn!(%error, "outbox listener lost its connection; reconnecting");
                        db.wake_outbox_readers();
                        break;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = notifier => {},
        _ = listener => {},
        _ = shutdown.cancelled() => {},
    }
}

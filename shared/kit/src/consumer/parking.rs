//! A consumer's bookkeeping: which events it applied, its fenced cursor, failed attempts,
//! and parked events (dead letters) with their replay.
//!
//! An event that fails `max_attempts` times (a database outage does not count) is parked
//! with its whole envelope and its last error, logged at ERROR and counted, and the
//! cursor moves past it, so that one event the handler can never apply does not block the
//! feed. Replaying applies it in one transaction with its removal from the parked list;
//! an event already applied is recognised by its id and only unparked.

use custos_proto::common::v1::Event;
use opentelemetry::KeyValue;
use prost::Message;
use uuid::Uuid;

use super::{ApplyError, Consumer, Inner};
use crate::{
    storage::{AsConn, DbTime, StorageError, Tx},
    with_conn,
};

/// The id an event is recognised by: its own, or (for an event without a valid id, which
/// no custos producer sends) one derived from its cursor, so that two such events are
/// never taken for one.
pub(super) fn event_key(event: &Event) -> Uuid {
    Uuid::try_parse(&event.event_id).unwrap_or_else(|_| {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("custos event without id\0{}", event.cursor));
        Uuid::from_bytes(digest[..16].try_into().expect("16 of 32 bytes"))
    })
}

/// Records that `consumer` applies `event_id` in this transaction; false if it already
/// had (the event then has no second effect). The time is kept to the minute: an
/// anonymous act's event must not be dated by when it was applied.
pub(super) async fn first_time(
    tx: &mut Tx,
    consumer: &str,
    event_id: Uuid,
) -> Result<bool, StorageError> {
    const SQL: &str = "INSERT INTO consumed_events (consumer, event_id, consumed_at) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    let inserted = with_conn!(tx, c => {
        sqlx::query(SQL).bind(consumer).bind(event_id).bind(DbTime::now().to_minute()).execute(&mut *c).await?.rows_affected()
    });
    Ok(inserted == 1)
}

/// Moves the cursor, only if `holder` is still the session that may: otherwise the
/// transaction must roll back (another replica took over). Its time is kept to the
/// minute, as in [`first_time`].
pub(super) async fn advance(
    tx: &mut Tx,
    consumer: &str,
    holder: &str,
    cursor: &str,
) -> Result<(), ApplyError> {
    const SQL: &str = "UPDATE consumer_cursors SET cursor = $2, updated_at = $3 \
         WHERE consumer = $1 AND holder = $4";
    let updated = with_conn!(tx, c => {
        sqlx::query(SQL).bind(consumer).bind(cursor).bind(DbTime::now().to_minute()).bind(holder).execute(&mut *c).await.map_err(StorageError::from)?.rows_affected()
    });
    if updated == 1 {
        Ok(())
    } else {
        Err(ApplyError::Fenced)
    }
}

/// Counts a failed attempt (in a transaction of its own, since the attempt's rolled
/// back) and returns the attempts so far, across restarts.
pub(super) async fn record_failure(
    inner: &Inner,
    event: &Event,
    error: &str,
) -> Result<u32, StorageError> {
    const SQL: &str = "INSERT INTO consumer_failures (consumer, event_id, attempts, last_error, updated_at) \
         VALUES ($1, $2, 1, $3, $4) ON CONFLICT (consumer, event_id) DO UPDATE \
         SET attempts = consumer_failures.attempts + 1, last_error = excluded.last_error, \
         updated_at = excluded.updated_at RETURNING attempts";
    let event_id = event_key(event);
    let mut tx = inner.db.begin().await?;
    let attempts: i32 = with_conn!(&mut tx, c => {
        sqlx::query_scalar(SQL).bind(&inner.name).bind(event_id).bind(error).bind(stamp(event)).fetch_one(&mut *c).await?
    });
    tx.commit().await?;
    Ok(attempts.max(0) as u32)
}

/// When a failure or parking is recorded: to the minute for an event about an anonymous
/// report, as everything else stored about it.
fn stamp(event: &Event) -> DbTime {
    if super::is_anonymous(event) {
        DbTime::now().to_minute()
    } else {
        DbTime::now()
    }
}

/// Forgets the failed attempts at an event that has now been applied.
pub(super) async fn forget_failures(inner: &Inner, event: &Event) -> Result<(), StorageError> {
    const SQL: &str = "DELETE FROM consumer_failures WHERE consumer = $1 AND event_id = $2";
    let event_id = event_key(event);
    let mut tx = inner.db.begin().await?;
    with_conn!(&mut tx, c => {
        sqlx::query(SQL).bind(&inner.name).bind(event_id).execute(&mut *c).await?;
    });
    tx.commit().await
}

/// Parks an event and moves the cursor past it, in one transaction.
pub(super) async fn park(
    inner: &Inner,
    event: &Event,
    holder: &str,
    error: &str,
    attempts: u32,
) -> Result<(), ApplyError> {
    const PARK: &str = "INSERT INTO parked_events (consumer, event_id, feed_cursor, event_type, \
         aggregate_reference, envelope, error, attempts, parked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (consumer, event_id) DO UPDATE \
         SET error = excluded.error, attempts = excluded.attempts, parked_at = excluded.parked_at";
    const FORGET: &str = "DELETE FROM consumer_failures WHERE consumer = $1 AND event_id = $2";
    let event_id = event_key(event);
    let mut tx = inner.db.begin().await?;
    with_conn!(&mut tx, c => {
        sqlx::query(PARK)
            .bind(&inner.name)
            .bind(event_id)
            .bind(&event.cursor)
            .bind(&event.event_type)
            .bind(&event.aggregate_reference)
            .bind(event.encode_to_vec())
            .bind(error)
            .bind(attempts as i32)
            .bind(stamp(event))
            .execute(&mut *c)
            .await
            .map_err(StorageError::from)?;
        sqlx::query(FORGET).bind(&inner.name).bind(event_id).execute(&mut *c).await.map_err(StorageError::from)?;
    });
    advance(&mut tx, &inner.name, holder, &event.cursor).await?;
    tx.commit().await?;
    inner
        .parked
        .add(1, &[KeyValue::new("consumer", inner.name.clone())]);
    if super::is_anonymous(event) {
        // The line's exact time must not be joinable with the report: no id, no reference
        // (the parked row has them, stamped to the minute).
        tracing::error!(
            consumer = %inner.name,
            event_type = %event.event_type,
            attempts,
            "an event about an anonymous report was PARKED after failing every attempt; the \
             consumer moves on. List and replay parked events with `custos feed parked` and \
             `custos feed replay`"
        );
    } else {
        tracing::error!(
            consumer = %inner.name,
            event_id = %event.event_id,
            event_type = %event.event_type,
            aggregate_reference = %event.aggregate_reference,
            attempts,
            %error,
            "event PARKED after failing every attempt; the consumer moves on. List and replay \
             parked events with `custos feed parked` and `custos feed replay`"
        );
    }
    Ok(())
}

/// A parked event as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ParkedRow {
    pub consumer: String,
    pub event_id: Uuid,
    pub feed_cursor: String,
    pub event_type: String,
    pub aggregate_reference: String,
    pub error: String,
    pub attempts: i32,
    pub parked_at: DbTime,
}

/// Parked events, oldest first, after `(parked_at, event_id)`.
pub async fn list(
    conn: impl AsConn,
    consumer: Option<&str>,
    after: Option<(DbTime, Uuid)>,
    limit: i64,
) -> Result<Vec<ParkedRow>, StorageError> {
    let mut select = crate::storage::Select::new(
        "SELECT consumer, event_id, feed_cursor, event_type, aggregate_reference, error, \
         attempts, parked_at FROM parked_events",
    );
    select.and_eq("consumer", consumer);
    if let Some((at, id)) = after {
        select.and("(parked_at, event_id) > (?, ?)", [at.into(), id.into()]);
    }
    select.then("ORDER BY parked_at, event_id");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// How many events `consumer` has parked.
pub async fn count(mut conn: impl AsConn, consumer: &str) -> Result<i64, StorageError> {
    const SQL: &str = "SELECT COUNT(*) FROM parked_events WHERE consumer = $1";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_scalar(SQL).bind(consumer).fetch_one(&mut *c).await?
    }))
}

/// How a replay went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Applied now (or found applied already) and unparked.
    Applied,
    /// The handler failed again; the event stays parked with this error.
    Failed(String),
    /// No such parked event.
    NotParked,
}

impl Consumer {
    /// Applies a parked event again (see the module documentation).
    pub async fn replay(&self, event_id: Uuid) -> Result<Replayed, StorageError> {
        const LOAD: &str =
            "SELECT envelope FROM parked_events WHERE consumer = $1 AND event_id = $2";
        const UNPARK: &str = "DELETE FROM parked_events WHERE consumer = $1 AND event_id = $2";
        const FAILED: &str = "UPDATE parked_events SET error = $3, attempts = attempts + 1 \
             WHERE consumer = $1 AND event_id = $2";
        let inner = &self.inner;
        let mut tx = inner.db.begin().await?;
        let envelope: Option<Vec<u8>> = with_conn!(&mut tx, c => {
            sqlx::query_scalar(LOAD).bind(&inner.name).bind(event_id).fetch_optional(&mut *c).await?
        });
        let Some(envelope) = envelope else {
            return Ok(Replayed::NotParked);
        };
        let event = Event::decode(envelope.as_slice())
            .map_err(|e| StorageError::Corrupt(format!("parked event {event_id}: {e}")))?;
        if first_time(&mut tx, &inner.name, event_id).await?
            && let Err(error) = inner.handler.handle(&mut tx, &event).await
        {
            drop(tx);
            let error = error.to_string();
            let mut tx = inner.db.begin().await?;
            with_conn!(&mut tx, c => {
                sqlx::query(FAILED).bind(&inner.name).bind(event_id).bind(&error).execute(&mut *c).await?;
            });
            tx.commit().await?;
            tracing::warn!(consumer = %inner.name, %event_id, %error, "replaying a parked event failed; it stays parked");
            return Ok(Replayed::Failed(error));
        }
        with_conn!(&mut tx, c => {
            sqlx::query(UNPARK).bind(&inner.name).bind(event_id).execute(&mut *c).await?;
        });
        tx.commit().await?;
        tracing::info!(consumer = %inner.name, %event_id, "parked event replayed");
        Ok(Replayed::Applied)
    }
}

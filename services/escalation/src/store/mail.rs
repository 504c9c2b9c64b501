//! The mail queue's claims: a sender takes due messages for a lease (so a sender that
//! dies leaves them to another when the lease runs out), and may mark a message sent,
//! failed or due again only while it still holds it.

use custos_kit::{
    storage::{AsConn, DbTime, Dialect, StorageError, Tx},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::escalation::MAIL_PENDING;

/// Sent: the server accepted it.
pub const MAIL_SENT: i16 = 2;
/// Failed for good.
pub const MAIL_FAILED: i16 = 3;

/// A message a sender holds.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ClaimedMail {
    pub id: Uuid,
    pub escalation_id: Uuid,
    pub contact_id: Uuid,
    pub tier: i32,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    /// Including this one.
    pub attempts: i32,
    pub message_id: String,
    pub deputy_for: Option<Uuid>,
    pub anonymous: bool,
}

/// Takes up to `limit` messages due at `now` for `claim` until `until`, counting an
/// attempt on each (PostgreSQL skips those another sender's transaction holds).
pub async fn claim_mail(
    tx: &mut Tx,
    claim: Uuid,
    now: DbTime,
    until: DbTime,
    limit: i64,
) -> Result<Vec<ClaimedMail>, StorageError> {
    const PG: &str = "UPDATE mail_queue SET claim = $1, next_attempt_at = $3, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM mail_queue WHERE state = $5 AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING id, escalation_id, contact_id, tier, to_address, subject, body, attempts, \
         message_id, deputy_for, anonymous";
    const SQLITE: &str = "UPDATE mail_queue SET claim = $1, next_attempt_at = $3, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM mail_queue WHERE state = $5 AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at, id LIMIT $4) \
         RETURNING id, escalation_id, contact_id, tier, to_address, subject, body, attempts, \
         message_id, deputy_for, anonymous";
    let mut rows: Vec<ClaimedMail> = with_conn!(tx, c => {
        sqlx::query_as(c.pick(PG, SQLITE))
            .bind(claim)
            .bind(now)
            .bind(until)
            .bind(limit)
            .bind(MAIL_PENDING)
            .fetch_all(&mut *c)
            .await?
    });
    rows.sort_by_key(|m| m.id);
    Ok(rows)
}

/// Marks a held message sent; `false` if this sender no longer holds it.
pub async fn mark_sent(
    tx: &mut Tx,
    id: Uuid,
    claim: Uuid,
    at: DbTime,
) -> Result<bool, StorageError> {
    const SQL: &str = "UPDATE mail_queue SET state = $3, sent_at = $4, claim = NULL, last_error = NULL \
         WHERE id = $1 AND claim = $2 AND state = $5";
    let n = with_conn!(tx, c => {
        sqlx::query(SQL).bind(id).bind(claim).bind(MAIL_SENT).bind(at).bind(MAIL_PENDING)
            .execute(&mut *c).await?.rows_affected()
    });
    Ok(n == 1)
}

/// Puts a held message back in the queue until `at`, with the error that delayed it;
/// `false` if this sender no longer holds it.
pub async fn retry_mail(
    tx: &mut Tx,
    id: Uuid,
    claim: Uuid,
    at: DbTime,
    error: &str,
) -> Result<bool, StorageError> {
    const SQL: &str = "UPDATE mail_queue SET next_attempt_at = $3, last_error = $4, claim = NULL \
         WHERE id = $1 AND claim = $2 AND state = $5";
    let n = with_conn!(tx, c => {
        sqlx::query(SQL).bind(id).bind(claim).bind(at).bind(error).bind(MAIL_PENDING)
            .execute(&mut *c).await?.rows_affected()
    });
    Ok(n == 1)
}

/// Marks a held message failed for good; `false` if this sender no longer holds it.
pub async fn mark_failed(
    tx: &mut Tx,
    id: Uuid,
    claim: Uuid,
    error: &str,
) -> Result<bool, StorageError> {
    const SQL: &str = "UPDATE mail_queue SET state = $3, last_error = $4, claim = NULL \
         WHERE id = $1 AND claim = $2 AND state = $5";
    let n = with_conn!(tx, c => {
        sqlx::query(SQL).bind(id).bind(claim).bind(MAIL_FAILED).bind(error).bind(MAIL_PENDING)
            .execute(&mut *c).await?.rows_affected()
    });
    Ok(n == 1)
}

/// When the next pending message is due, if any.
pub async fn next_mail_due(mut conn: impl AsConn) -> Result<Option<DbTime>, StorageError> {
    let at: Option<DbTime> = with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM mail_queue WHERE state = $1")
            .bind(MAIL_PENDING).fetch_one(&mut *c).await?
    });
    Ok(at)
}

/// The next sequence of an escalation's timeline, taken (the row is locked until the
/// transaction ends).
pub async fn take_timeline_sequence(tx: &mut Tx, escalation_id: Uuid) -> Result<i32, StorageError> {
    const SQL: &str = "UPDATE escalations SET timeline_sequence = timeline_sequence + 1 \
         WHERE id = $1 RETURNING timeline_sequence";
    let n: i32 = with_conn!(tx, c => {
        sqlx::query_scalar(SQL).bind(escalation_id).fetch_one(&mut *c).await?
    });
    Ok(n)
}

/// Renews a sender's hold on a message just before it is sent, until `until`: `false`
/// if the sender lost it (its lease ran out and another took it), and then it must not
/// be sent.
pub async fn renew_claim(
    tx: &mut Tx,
    id: Uuid,
    claim: Uuid,
    until: DbTime,
) -> Result<bool, StorageError> {
    const SQL: &str =
        "UPDATE mail_queue SET next_attempt_at = $3 WHERE id = $1 AND claim = $2 AND state = $4";
    let n = with_conn!(tx, c => {
        sqlx::query(SQL).bind(id).bind(claim).bind(until).bind(MAIL_PENDING)
            .execute(&mut *c).await?.rows_affected()
    });
    Ok(n == 1)
}

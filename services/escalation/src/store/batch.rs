//! Rows written many at a time: what applying a batch of deadlines (or one step of an
//! escalation) adds, in one multi-row INSERT per table instead of one per row.

use custos_kit::{
    storage::{DbTime, StorageError, Tx},
    with_conn,
};

use super::{DeadlineRow, NewMail, NomineeRow, TierRow, TimelineRow};
use crate::escalation::MAIL_PENDING;

/// Rows per statement (PostgreSQL takes at most 65,535 parameters).
const CHUNK: usize = 500;

pub async fn insert_timeline_many(tx: &mut Tx, rows: &[TimelineRow]) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO escalation_timeline (escalation_id, sequence, kind, at, tier, \
         contact_id, channel, detail) ";
    for chunk in rows.chunks(CHUNK) {
        with_conn!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(SQL);
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.escalation_id)
                    .push_bind(r.sequence)
                    .push_bind(r.kind)
                    .push_bind(r.at)
                    .push_bind(r.tier)
                    .push_bind(r.contact_id)
                    .push_bind(&r.channel)
                    .push_bind(&r.detail);
            });
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

pub async fn insert_tiers_many(tx: &mut Tx, rows: &[TierRow]) -> Result<(), StorageError> {
    const SQL: &str =
        "INSERT INTO escalation_tiers (escalation_id, tier, reached_at, deadline_at) ";
    for chunk in rows.chunks(CHUNK) {
        with_conn!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(SQL);
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.escalation_id).push_bind(r.tier).push_bind(r.reached_at).push_bind(r.deadline_at);
            });
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

pub async fn insert_nominees_many(tx: &mut Tx, rows: &[NomineeRow]) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO escalation_nominees (escalation_id, tier, contact_id, \
         display_name, notified_at, acknowledged_at, note, acknowledged_by, missed_deadline) ";
    for chunk in rows.chunks(CHUNK) {
        with_conn!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(SQL);
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.escalation_id)
                    .push_bind(r.tier)
                    .push_bind(r.contact_id)
                    .push_bind(&r.display_name)
                    .push_bind(r.notified_at)
                    .push_bind(r.acknowledged_at)
                    .push_bind(&r.note)
                    .push_bind(&r.acknowledged_by)
                    .push_bind(r.missed_deadline);
            });
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

pub async fn queue_mail_many(tx: &mut Tx, rows: &[NewMail]) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO mail_queue (id, escalation_id, contact_id, tier, to_address, \
         subject, body, state, attempts, next_attempt_at, queued_at, message_id, deputy_for, \
         anonymous) ";
    for chunk in rows.chunks(CHUNK) {
        with_conn!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(SQL);
            q.push_values(chunk, |mut b, m| {
                b.push_bind(m.id)
                    .push_bind(m.escalation_id)
                    .push_bind(m.contact_id)
                    .push_bind(m.tier)
                    .push_bind(&m.to_address)
                    .push_bind(&m.subject)
                    .push_bind(&m.body)
                    .push_bind(MAIL_PENDING)
                    .push_bind(0_i32)
                    .push_bind(first_attempt(m))
                    .push_bind(m.queued_at)
                    .push_bind(message_id(m))
                    .push_bind(m.deputy_for)
                    .push_bind(m.anonymous);
            });
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

pub async fn add_deadlines_many(tx: &mut Tx, rows: &[DeadlineRow]) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO deadlines (id, escalation_id, kind, tier, due_at) ";
    for chunk in rows.chunks(CHUNK) {
        with_conn!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(SQL);
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id).push_bind(r.escalation_id).push_bind(r.kind).push_bind(r.tier).push_bind(r.due_at);
            });
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

/// When a message is first tried: at once, or, about an anonymous report, not before a
/// minute after the minute it was queued in, so that no time a message bears (its Date,
/// its server's Received) is finer than the minute the report is already dated to.
pub(crate) fn first_attempt(m: &NewMail) -> DbTime {
    if m.anonymous {
        DbTime::new(m.queued_at.to_minute().get() + time::Duration::minutes(1))
    } else {
        m.queued_at
    }
}

/// The Message-ID header of a message, the same on every attempt.
pub(crate) fn message_id(m: &NewMail) -> String {
    format!("<{}@custos>", m.id)
}

/// Marks, tier by tier, the nominees who had not acknowledged as having missed its
/// deadline.
pub async fn mark_missed_many(
    tx: &mut Tx,
    tiers: &[(uuid::Uuid, i32)],
) -> Result<(), StorageError> {
    const SQL: &str = "UPDATE escalation_nominees SET missed_deadline = ";
    for chunk in tiers.chunks(CHUNK) {
        with_conn!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(SQL);
            q.push_bind(true);
            q.push(" WHERE acknowledged_at IS NULL AND (escalation_id, tier) IN (");
            q.push_values(chunk, |mut b, (id, tier)| {
                b.push_bind(*id).push_bind(*tier);
            });
            q.push(")");
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

/// Writes held escalations' changing fields, many at a time.
pub async fn save_escalations_many(
    tx: &mut Tx,
    rows: &[&super::EscalationRow],
) -> Result<(), StorageError> {
    // VALUES' columns are column1, column2, … on both backends.
    const SQL: &str = "UPDATE escalations SET facts = v.column2, state = v.column3, \
         current_tier = v.column4, next_deadline_at = v.column5, exhausted = v.column6, \
         ended_at = v.column7, stopped_reason = v.column8, revision = v.column9, \
         timeline_sequence = v.column10 FROM (";
    for chunk in rows.chunks(CHUNK) {
        with_conn!(tx, c => {
            let mut q = sqlx::QueryBuilder::new(SQL);
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(&r.facts)
                    .push_bind(r.state)
                    .push_bind(r.current_tier)
                    .push_bind(r.next_deadline_at)
                    .push_bind(r.exhausted)
                    .push_bind(r.ended_at)
                    .push_bind(&r.stopped_reason)
                    .push_bind(r.revision)
                    .push_bind(r.timeline_sequence);
            });
            q.push(") AS v WHERE escalations.id = v.column1");
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

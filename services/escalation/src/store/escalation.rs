//! Escalations, their nominees and timeline, their pending deadlines, and the messages
//! they queue. Writes take the caller's transaction; reads any connection.

use custos_kit::{
    storage::{AsConn, Conn, DbTime, Dialect, JsonText, Select, StorageError, Tx, Value},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{
    directory::{Policy, Trigger},
    escalation::{DeadlineKind, EscalationState, Facts, SubjectKind, TimelineKind},
};

/// An escalation as stored.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct EscalationRow {
    pub id: Uuid,
    pub trigger: Trigger,
    pub subject_kind: SubjectKind,
    pub subject_id: Uuid,
    pub reference: String,
    pub facts: JsonText<Facts>,
    pub state: EscalationState,
    pub chain: JsonText<Policy>,
    pub policy_revision: i32,
    pub tier_count: i32,
    pub current_tier: i32,
    pub next_deadline_at: Option<DbTime>,
    pub exhausted: bool,
    pub opened_at: DbTime,
    pub ended_at: Option<DbTime>,
    pub stopped_reason: String,
    pub revision: i32,
    pub timeline_sequence: i32,
    pub anonymous: bool,
}

const ESCALATION_COLUMNS: &str = "SELECT id, trigger, subject_kind, subject_id, reference, facts, \
     state, chain, policy_revision, tier_count, current_tier, next_deadline_at, exhausted, \
     opened_at, ended_at, stopped_reason, revision, timeline_sequence, anonymous FROM escalations";

/// Adds an escalation, unless its subject already has one of its trigger: `false` then,
/// and nothing written (a redelivered or repeated event opens nothing new).
pub async fn insert_escalation(tx: &mut Tx, row: &EscalationRow) -> Result<bool, StorageError> {
    const SQL: &str = "INSERT INTO escalations (id, trigger, subject_kind, subject_id, reference, \
         facts, state, chain, policy_revision, tier_count, current_tier, next_deadline_at, \
         exhausted, opened_at, ended_at, stopped_reason, revision, timeline_sequence, anonymous) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
         ON CONFLICT (subject_id, trigger) WHERE state = 1 DO NOTHING";
    let n = with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.id)
            .bind(row.trigger)
            .bind(row.subject_kind)
            .bind(row.subject_id)
            .bind(&row.reference)
            .bind(&row.facts)
            .bind(row.state)
            .bind(&row.chain)
            .bind(row.policy_revision)
            .bind(row.tier_count)
            .bind(row.current_tier)
            .bind(row.next_deadline_at)
            .bind(row.exhausted)
            .bind(row.opened_at)
            .bind(row.ended_at)
            .bind(&row.stopped_reason)
            .bind(row.revision)
            .bind(row.timeline_sequence)
            .bind(row.anonymous)
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// An escalation by id.
pub async fn escalation(
    conn: impl AsConn,
    id: Uuid,
) -> Result<Option<EscalationRow>, StorageError> {
    let mut select = Select::new(ESCALATION_COLUMNS);
    select.and("id = ?", [id.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

/// An escalation by id, locked until the transaction ends (PostgreSQL; SQLite's one
/// writer already excludes the others).
pub async fn hold_escalation(tx: &mut Tx, id: Uuid) -> Result<Option<EscalationRow>, StorageError> {
    let mut select = Select::new(ESCALATION_COLUMNS);
    select.and("id = ?", [id.into()]);
    if matches!(tx.conn(), Conn::Postgres(_)) {
        select.then("FOR UPDATE");
    }
    Ok(select.fetch_all(&mut *tx).await?.pop())
}

/// The open escalations about a subject, locked, oldest first.
pub async fn hold_open_for_subject(
    tx: &mut Tx,
    subject_id: Uuid,
) -> Result<Vec<EscalationRow>, StorageError> {
    let mut select = Select::new(ESCALATION_COLUMNS);
    select.and("subject_id = ?", [subject_id.into()]);
    select.and("state = ?", [Value::of(EscalationState::Open)]);
    select.then("ORDER BY opened_at, id");
    if matches!(tx.conn(), Conn::Postgres(_)) {
        select.then("FOR UPDATE");
    }
    select.fetch_all(&mut *tx).await
}

/// Writes a held escalation's changing fields.
pub async fn save_escalation(tx: &mut Tx, row: &EscalationRow) -> Result<(), StorageError> {
    const SQL: &str = "UPDATE escalations SET facts = $2, state = $3, current_tier = $4, \
         next_deadline_at = $5, exhausted = $6, ended_at = $7, stopped_reason = $8, \
         revision = $9, timeline_sequence = $10 WHERE id = $1";
    with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.id)
            .bind(&row.facts)
            .bind(row.state)
            .bind(row.current_tier)
            .bind(row.next_deadline_at)
            .bind(row.exhausted)
            .bind(row.ended_at)
            .bind(&row.stopped_reason)
            .bind(row.revision)
            .bind(row.timeline_sequence)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// One person told at one tier.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct NomineeRow {
    pub escalation_id: Uuid,
    pub tier: i32,
    pub contact_id: Uuid,
    pub display_name: String,
    pub notified_at: DbTime,
    pub acknowledged_at: Option<DbTime>,
    pub note: Option<String>,
    pub acknowledged_by: Option<String>,
    pub missed_deadline: bool,
}

pub async fn insert_nominee(tx: &mut Tx, row: &NomineeRow) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO escalation_nominees (escalation_id, tier, contact_id, \
         display_name, notified_at, acknowledged_at, note, acknowledged_by, missed_deadline) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.escalation_id)
            .bind(row.tier)
            .bind(row.contact_id)
            .bind(&row.display_name)
            .bind(row.notified_at)
            .bind(row.acknowledged_at)
            .bind(&row.note)
            .bind(&row.acknowledged_by)
            .bind(row.missed_deadline)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// Every nominee of an escalation, by tier and in the order they were told.
pub async fn nominees_of(
    conn: impl AsConn,
    escalation_id: Uuid,
) -> Result<Vec<NomineeRow>, StorageError> {
    let mut select = Select::new(
        "SELECT escalation_id, tier, contact_id, display_name, notified_at, acknowledged_at, \
         note, acknowledged_by, missed_deadline FROM escalation_nominees",
    );
    select.and("escalation_id = ?", [escalation_id.into()]);
    select.then("ORDER BY tier, notified_at, contact_id");
    select.fetch_all(conn).await
}

/// Records a nominee's acknowledgement on one tier (if not already recorded).
pub async fn acknowledge(
    tx: &mut Tx,
    escalation_id: Uuid,
    tier: i32,
    contact_id: Uuid,
    at: DbTime,
    by: &str,
    note: &str,
) -> Result<(), StorageError> {
    const SQL: &str = "UPDATE escalation_nominees SET acknowledged_at = $4, note = $5, acknowledged_by = $6 \
         WHERE escalation_id = $1 AND tier = $2 AND contact_id = $3 AND acknowledged_at IS NULL";
    with_conn!(tx, c => {
        sqlx::query(SQL).bind(escalation_id).bind(tier).bind(contact_id).bind(at).bind(note).bind(by).execute(&mut *c).await?;
    });
    Ok(())
}

/// Marks the nominees of a tier who had not acknowledged as having missed its deadline.
pub async fn mark_missed(tx: &mut Tx, escalation_id: Uuid, tier: i32) -> Result<(), StorageError> {
    const SQL: &str = "UPDATE escalation_nominees SET missed_deadline = $3 \
         WHERE escalation_id = $1 AND tier = $2 AND acknowledged_at IS NULL";
    with_conn!(tx, c => {
        sqlx::query(SQL).bind(escalation_id).bind(tier).bind(true).execute(&mut *c).await?;
    });
    Ok(())
}

/// One entry of an escalation's timeline.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct TimelineRow {
    pub escalation_id: Uuid,
    pub sequence: i32,
    pub kind: TimelineKind,
    pub at: DbTime,
    pub tier: i32,
    pub contact_id: Option<Uuid>,
    pub channel: String,
    pub detail: String,
}

pub async fn append_timeline(tx: &mut Tx, row: &TimelineRow) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO escalation_timeline (escalation_id, sequence, kind, at, tier, \
         contact_id, channel, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.escalation_id)
            .bind(row.sequence)
            .bind(row.kind)
            .bind(row.at)
            .bind(row.tier)
            .bind(row.contact_id)
            .bind(&row.channel)
            .bind(&row.detail)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// A page of an escalation's timeline, oldest first, after sequence `after`.
pub async fn timeline(
    conn: impl AsConn,
    escalation_id: Uuid,
    after: i32,
    limit: i64,
) -> Result<Vec<TimelineRow>, StorageError> {
    let mut select = Select::new(
        "SELECT escalation_id, sequence, kind, at, tier, contact_id, channel, detail \
         FROM escalation_timeline",
    );
    select.and("escalation_id = ?", [escalation_id.into()]);
    select.and("sequence > ?", [after.into()]);
    select.then("ORDER BY sequence");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// A pending deadline.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct DeadlineRow {
    pub id: Uuid,
    pub escalation_id: Uuid,
    pub kind: DeadlineKind,
    pub tier: i32,
    pub due_at: DbTime,
}

pub async fn add_deadline(tx: &mut Tx, row: &DeadlineRow) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO deadlines (id, escalation_id, kind, tier, due_at) \
         VALUES ($1, $2, $3, $4, $5)";
    with_conn!(tx, c => {
        sqlx::query(SQL).bind(row.id).bind(row.escalation_id).bind(row.kind).bind(row.tier).bind(row.due_at).execute(&mut *c).await?;
    });
    Ok(())
}

/// Removes an escalation's pending deadlines (it was satisfied or stopped).
pub async fn clear_deadlines(tx: &mut Tx, escalation_id: Uuid) -> Result<(), StorageError> {
    with_conn!(tx, c => {
        sqlx::query("DELETE FROM deadlines WHERE escalation_id = $1").bind(escalation_id).execute(&mut *c).await?;
    });
    Ok(())
}

/// Takes up to `limit` deadlines due at `now`, earliest first, out of the table, in the
/// caller's transaction: they are this transaction's to apply. On PostgreSQL rows another
/// replica's transaction holds are skipped (SKIP LOCKED), so each deadline is applied by
/// one transaction; if that transaction rolls back (its replica died, its work failed)
/// the rows are back for the next. Which is what makes a deadline fire exactly once.
pub async fn take_due(
    tx: &mut Tx,
    now: DbTime,
    limit: i64,
) -> Result<Vec<DeadlineRow>, StorageError> {
    // The escalations are locked with their deadlines, in one statement: an
    // acknowledgement (which locks the escalation, then clears its deadlines) waits for
    // this transaction instead of deadlocking with it.
    const PG: &str = "DELETE FROM deadlines WHERE id IN (SELECT d.id FROM deadlines d \
         JOIN escalations e ON e.id = d.escalation_id WHERE d.due_at <= $1 \
         ORDER BY d.due_at, d.id LIMIT $2 FOR UPDATE OF d, e SKIP LOCKED) \
         RETURNING id, escalation_id, kind, tier, due_at";
    const SQLITE: &str = "DELETE FROM deadlines WHERE id IN (SELECT id FROM deadlines \
         WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2) \
         RETURNING id, escalation_id, kind, tier, due_at";
    let mut rows: Vec<DeadlineRow> = with_conn!(tx, c => {
        sqlx::query_as(c.pick(PG, SQLITE)).bind(now).bind(limit).fetch_all(&mut *c).await?
    });
    rows.sort_by_key(|r| (r.due_at, r.id));
    Ok(rows)
}

/// When the earliest pending deadline falls, if any.
pub async fn next_due(mut conn: impl AsConn) -> Result<Option<DbTime>, StorageError> {
    let at: Option<DbTime> = with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT MIN(due_at) FROM deadlines").fetch_one(&mut *c).await?
    });
    Ok(at)
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMail {
    pub id: Uuid,
    pub escalation_id: Uuid,
    pub contact_id: Uuid,
    pub tier: i32,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub queued_at: DbTime,
    /// The failed message to another contact that this one, to their deputy, stands in for.
    pub deputy_for: Option<Uuid>,
    /// About an anonymous report (see the mail_queue table).
    pub anonymous: bool,
}

pub async fn queue_mail(tx: &mut Tx, m: &NewMail) -> Result<(), StorageError> {
    super::batch::queue_mail_many(tx, std::slice::from_ref(m)).await
}

/// A queued message, as tests and operators read it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct MailRow {
    pub id: Uuid,
    pub escalation_id: Uuid,
    pub contact_id: Uuid,
    pub tier: i32,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub state: i16,
    pub queued_at: DbTime,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub deputy_for: Option<Uuid>,
    pub next_attempt_at: DbTime,
    pub sent_at: Option<DbTime>,
}

/// The messages an escalation queued, in order.
pub async fn mail_of(conn: impl AsConn, escalation_id: Uuid) -> Result<Vec<MailRow>, StorageError> {
    let mut select = Select::new(
        "SELECT id, escalation_id, contact_id, tier, to_address, subject, body, state, queued_at, \
         attempts, last_error, deputy_for, next_attempt_at, sent_at FROM mail_queue",
    );
    select.and("escalation_id = ?", [escalation_id.into()]);
    select.then("ORDER BY queued_at, id");
    select.fetch_all(conn).await
}

/// A tier reached.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct TierRow {
    pub escalation_id: Uuid,
    pub tier: i32,
    pub reached_at: DbTime,
    pub deadline_at: DbTime,
}

pub async fn insert_tier(tx: &mut Tx, row: &TierRow) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO escalation_tiers (escalation_id, tier, reached_at, deadline_at) \
         VALUES ($1, $2, $3, $4)";
    with_conn!(tx, c => {
        sqlx::query(SQL).bind(row.escalation_id).bind(row.tier).bind(row.reached_at).bind(row.deadline_at).execute(&mut *c).await?;
    });
    Ok(())
}

/// The tiers reached of the escalations among `ids`.
pub async fn tiers_of(conn: impl AsConn, ids: &[Uuid]) -> Result<Vec<TierRow>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut select =
        Select::new("SELECT escalation_id, tier, reached_at, deadline_at FROM escalation_tiers");
    select.and_in("escalation_id", ids.iter().map(|id| Value::from(*id)));
    select.then("ORDER BY escalation_id, tier");
    select.fetch_all(conn).await
}

/// The nominees of the escalations among `ids`.
pub async fn nominees_of_many(
    conn: impl AsConn,
    ids: &[Uuid],
) -> Result<Vec<NomineeRow>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = Select::new(
        "SELECT escalation_id, tier, contact_id, display_name, notified_at, acknowledged_at, \
         note, acknowledged_by, missed_deadline FROM escalation_nominees",
    );
    select.and_in("escalation_id", ids.iter().map(|id| Value::from(*id)));
    select.then("ORDER BY escalation_id, tier, notified_at, contact_id");
    select.fetch_all(conn).await
}

/// What ListEscalations asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EscalationFilter {
    pub states: Vec<EscalationState>,
    pub triggers: Vec<Trigger>,
    pub subject_id: Option<Uuid>,
    /// Open, and past the current deadline (or the last tier) at this time.
    pub overdue_at: Option<DbTime>,
    /// Naming this contact as a nominee.
    pub nominee: Option<Uuid>,
}

/// A page of escalations, newest first, after (opened_at, id).
pub async fn list_escalations(
    conn: impl AsConn,
    filter: &EscalationFilter,
    after: Option<(DbTime, Uuid)>,
    limit: i64,
) -> Result<Vec<EscalationRow>, StorageError> {
    let mut select = Select::new(ESCALATION_COLUMNS);
    select.and_in("state", filter.states.iter().map(|s| Value::of(*s)));
    select.and_in("trigger", filter.triggers.iter().map(|t| Value::of(*t)));
    select.and_eq("subject_id", filter.subject_id);
    if let Some(now) = filter.overdue_at {
        select.and("state = ?", [Value::of(EscalationState::Open)]);
        select.and(
            "(exhausted = ? OR next_deadline_at <= ?)",
            [true.into(), now.into()],
        );
    }
    if let Some(contact) = filter.nominee {
        select.and(
            "id IN (SELECT escalation_id FROM escalation_nominees WHERE contact_id = ?)",
            [contact.into()],
        );
    }
    if let Some((at, id)) = after {
        select.and("(opened_at, id) < (?, ?)", [at.into(), id.into()]);
    }
    select.then("ORDER BY opened_at DESC, id DESC");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// Removes one deadline that cannot be applied into parked_deadlines, with its error.
pub async fn park_deadline(
    tx: &mut Tx,
    row: &DeadlineRow,
    error: &str,
    at: DbTime,
) -> Result<bool, StorageError> {
    const DELETE: &str = "DELETE FROM deadlines WHERE id = $1";
    const PARK: &str = "INSERT INTO parked_deadlines (id, escalation_id, kind, tier, due_at, error, \
         parked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let n = with_conn!(tx, c => {
        let n = sqlx::query(DELETE).bind(row.id).execute(&mut *c).await?.rows_affected();
        if n == 1 {
            sqlx::query(PARK).bind(row.id).bind(row.escalation_id).bind(row.kind).bind(row.tier)
                .bind(row.due_at).bind(error).bind(at).execute(&mut *c).await?;
        }
        n
    });
    Ok(n == 1)
}

/// The escalations among `ids`, locked until the transaction ends (PostgreSQL, in id
/// order), as (id, row).
pub async fn hold_escalations(
    tx: &mut Tx,
    ids: &[Uuid],
) -> Result<Vec<EscalationRow>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = Select::new(ESCALATION_COLUMNS);
    select.and_in("id", ids.iter().map(|id| Value::from(*id)));
    select.then("ORDER BY id");
    if matches!(tx.conn(), Conn::Postgres(_)) {
        select.then("FOR UPDATE");
    }
    select.fetch_all(&mut *tx).await
}

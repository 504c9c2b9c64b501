//! What escalation keeps about subjects beyond their escalations: provider weaknesses
//! being watched, subjects that have ended, and the facts earlier events gave.

use custos_kit::{
    storage::{AsConn, DbTime, Dialect, JsonText, Select, StorageError, Tx},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::escalation::{Facts, SubjectKind};

const WAITING: i16 = 1;
const FIXED: i16 = 2;
const OVERDUE: i16 = 3;

/// Watches a weakness reported to a provider until `due_at` (a redelivered event
/// changes nothing).
pub async fn watch_provider(
    tx: &mut Tx,
    provider_report_id: Uuid,
    report_id: Uuid,
    reference: &str,
    due_at: DbTime,
) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO provider_watches (provider_report_id, report_id, reference, \
         due_at, state) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider_report_id) DO NOTHING";
    with_conn!(tx, c => {
        sqlx::query(SQL).bind(provider_report_id).bind(report_id).bind(reference).bind(due_at).bind(WAITING).execute(&mut *c).await?;
    });
    Ok(())
}

/// The provider's fix was judged effective: the weakness is watched no more.
pub async fn provider_fixed(tx: &mut Tx, provider_report_id: Uuid) -> Result<(), StorageError> {
    with_conn!(tx, c => {
        sqlx::query("UPDATE provider_watches SET state = $2 WHERE provider_report_id = $1")
            .bind(provider_report_id).bind(FIXED).execute(&mut *c).await?;
    });
    Ok(())
}

/// A watched weakness whose fix is overdue.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct OverdueRow {
    pub provider_report_id: Uuid,
    pub report_id: Uuid,
    pub reference: String,
    pub due_at: DbTime,
}

/// Takes up to `limit` watches overdue at `now` (marked overdue in the caller's
/// transaction; skipped while another replica's transaction holds them).
pub async fn take_overdue(
    tx: &mut Tx,
    now: DbTime,
    limit: i64,
) -> Result<Vec<OverdueRow>, StorageError> {
    const PG: &str = "UPDATE provider_watches SET state = $3 WHERE provider_report_id IN \
         (SELECT provider_report_id FROM provider_watches WHERE state = $4 AND due_at <= $1 \
         ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING provider_report_id, report_id, reference, due_at";
    const SQLITE: &str = "UPDATE provider_watches SET state = $3 WHERE provider_report_id IN \
         (SELECT provider_report_id FROM provider_watches WHERE state = $4 AND due_at <= $1 \
         ORDER BY due_at LIMIT $2) RETURNING provider_report_id, report_id, reference, due_at";
    let mut rows: Vec<OverdueRow> = with_conn!(tx, c => {
        sqlx::query_as(c.pick(PG, SQLITE)).bind(now).bind(limit).bind(OVERDUE).bind(WAITING).fetch_all(&mut *c).await?
    });
    rows.sort_by_key(|r| (r.due_at, r.provider_report_id));
    Ok(rows)
}

/// When the earliest watched weakness falls overdue, if any.
pub async fn next_overdue(mut conn: impl AsConn) -> Result<Option<DbTime>, StorageError> {
    let at: Option<DbTime> = with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT MIN(due_at) FROM provider_watches WHERE state = $1").bind(WAITING).fetch_one(&mut *c).await?
    });
    Ok(at)
}

/// What escalation knows of a report or incident.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct SubjectRow {
    pub subject_id: Uuid,
    pub kind: SubjectKind,
    pub reference: String,
    pub facts: JsonText<Facts>,
    /// An anonymous report: every time escalation records about it is cut to the minute.
    pub anonymous: bool,
    pub ended_reason: Option<String>,
    pub ended_at: Option<DbTime>,
}

/// A subject by id.
pub async fn subject(
    conn: impl AsConn,
    subject_id: Uuid,
) -> Result<Option<SubjectRow>, StorageError> {
    let mut select = Select::new(
        "SELECT subject_id, kind, reference, facts, anonymous, ended_reason, ended_at FROM subjects",
    );
    select.and("subject_id = ?", [subject_id.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

/// Writes a subject as `row` has it.
pub async fn save_subject(tx: &mut Tx, row: &SubjectRow) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO subjects (subject_id, kind, reference, facts, anonymous, \
         ended_reason, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subject_id) \
         DO UPDATE SET reference = excluded.reference, facts = excluded.facts, \
         anonymous = subjects.anonymous OR excluded.anonymous, \
         ended_reason = COALESCE(subjects.ended_reason, excluded.ended_reason), \
         ended_at = COALESCE(subjects.ended_at, excluded.ended_at)";
    with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.subject_id)
            .bind(row.kind)
            .bind(&row.reference)
            .bind(&row.facts)
            .bind(row.anonymous)
            .bind(&row.ended_reason)
            .bind(row.ended_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// The subject, locked until the transaction ends (PostgreSQL; SQLite's one writer
/// already excludes the others), created from `new` if escalation knew nothing of it:
/// the two feeds' consumers, which may both write it, take turns.
pub async fn hold_subject(tx: &mut Tx, new: &SubjectRow) -> Result<SubjectRow, StorageError> {
    const CREATE: &str = "INSERT INTO subjects (subject_id, kind, reference, facts, anonymous, \
         ended_reason, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subject_id) DO NOTHING";
    with_conn!(tx, c => {
        sqlx::query(CREATE)
            .bind(new.subject_id)
            .bind(new.kind)
            .bind(&new.reference)
            .bind(&new.facts)
            .bind(new.anonymous)
            .bind(&new.ended_reason)
            .bind(new.ended_at)
            .execute(&mut *c)
            .await?;
    });
    let mut select = Select::new(
        "SELECT subject_id, kind, reference, facts, anonymous, ended_reason, ended_at FROM subjects",
    );
    select.and("subject_id = ?", [new.subject_id.into()]);
    if matches!(tx.conn(), custos_kit::storage::Conn::Postgres(_)) {
        select.then("FOR UPDATE");
    }
    select
        .fetch_all(&mut *tx)
        .await?
        .pop()
        .ok_or_else(|| StorageError::Corrupt("a subject just written is missing".into()))
}

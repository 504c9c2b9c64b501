//! Assessments as stored, and the incidents they raise: an assessment is appended in the
//! transaction that moves the report's triage entry on and (re)links it to its incident.

use custos_kit::{
    storage::{AsConn, DbTime, Dialect, JsonText, Select, StorageError, Tx},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{
    assessment::{Decision, Impact, IncidentState},
    matrix::Level,
    report::{Kind, Medium, TriageState},
};

/// What assessing needs to know of a queued report.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Assessable {
    pub reference: String,
    pub kind: Kind,
    pub medium: Medium,
    pub personal_information: bool,
    pub report_revision: i32,
    pub assessment_sequence: i32,
}

/// Reads a queued report for assessing it, and holds it (PostgreSQL: the row is locked
/// until the transaction ends; SQLite: the transaction is the only writer), so that two
/// assessments of one report are decided one after the other.
pub async fn assessable(tx: &mut Tx, report_id: Uuid) -> Result<Option<Assessable>, StorageError> {
    let row = with_conn!(tx, c => {
        let sql = c.pick(
            "SELECT reference, kind, medium, personal_information, report_revision, \
             assessment_sequence FROM triage_entries WHERE report_id = $1 FOR UPDATE",
            "SELECT reference, kind, medium, personal_information, report_revision, \
             assessment_sequence FROM triage_entries WHERE report_id = $1",
        );
        sqlx::query_as::<_, Assessable>(sql).bind(report_id).fetch_optional(&mut *c).await?
    });
    Ok(row)
}

/// An incident as an assessment declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub id: Uuid,
    pub title: String,
    pub summary: String,
    pub category: String,
    pub impact: Impact,
    pub declared_by: String,
    pub declared_at: DbTime,
    /// Personal data involved (the report concerns personal information).
    pub personal_data: bool,
    /// Paper records involved (the report concerns paper information).
    pub paper_records: bool,
}

/// Declares an incident and returns its reference, `<prefix><number>` with the number
/// six digits at least (`INC-2026-000042`). Numbers come from one sequence (PostgreSQL; a
/// number taken by a transaction that rolls back is not reused) or follow the highest
/// (SQLite, one writer).
pub async fn declare(tx: &mut Tx, i: &NewIncident, prefix: &str) -> Result<String, StorageError> {
    const INSERT: &str = "INSERT INTO incidents (id, number, reference, title, summary, category, \
         impact, overall_level, state, declared_by, declared_at, updated_at, revision, \
         personal_data, paper_records, highest_level) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1, $12, $13, $8)";
    let reference = with_conn!(tx, c => {
        let next = c.pick(
            "SELECT nextval('incident_number_seq')",
            "SELECT COALESCE(MAX(number), 0) + 1 FROM incidents",
        );
        let number: i64 = sqlx::query_scalar(next).fetch_one(&mut *c).await?;
        let reference = format!("{prefix}{number:06}");
        sqlx::query(INSERT)
            .bind(i.id)
            .bind(number)
            .bind(&reference)
            .bind(&i.title)
            .bind(&i.summary)
            .bind(&i.category)
            .bind(JsonText(&i.impact))
            .bind(i.impact.overall)
            .bind(IncidentState::Open)
            .bind(&i.declared_by)
            .bind(i.declared_at)
            .bind(i.personal_data)
            .bind(i.paper_records)
            .execute(&mut *c)
            .await?;
        reference
    });
    super::history::insert_impact(tx, i.id, 1, &i.impact, "", &i.declared_by, i.declared_at)
        .await?;
    Ok(reference)
}

/// An assessment to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAssessment {
    pub id: Uuid,
    pub report_id: Uuid,
    pub sequence: i32,
    pub report_revision: i32,
    pub category: String,
    pub impact: Impact,
    pub decision: Decision,
    pub reason: String,
    pub note: String,
    pub incident_id: Option<Uuid>,
    pub assessed_by: String,
    pub assessed_at: DbTime,
}

/// Records an assessment: moves the report's entry to `state` at this sequence (only
/// from the sequence before it), appends the assessment, and makes its incident (if any)
/// the one the report belongs to. `Ok(false)`: the entry is no longer at the sequence
/// before (another assessment came first), and nothing was written.
pub async fn record(
    tx: &mut Tx,
    a: &NewAssessment,
    state: TriageState,
) -> Result<bool, StorageError> {
    const ENTRY: &str = "UPDATE triage_entries SET state = $2, assessment_sequence = $3 \
         WHERE report_id = $1 AND assessment_sequence = $4";
    const INSERT: &str = "INSERT INTO assessments (id, report_id, sequence, report_revision, \
         category, impact, overall_level, decision, reason, note, incident_id, assessed_by, \
         assessed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    const UNLINK: &str = "DELETE FROM incident_reports WHERE report_id = $1";
    const LINK: &str = "INSERT INTO incident_reports (incident_id, report_id, assessment_id) \
         VALUES ($1, $2, $3)";
    let moved = with_conn!(tx, c => {
        let moved = sqlx::query(ENTRY)
            .bind(a.report_id)
            .bind(state)
            .bind(a.sequence)
            .bind(a.sequence - 1)
            .execute(&mut *c)
            .await?
            .rows_affected()
            > 0;
        if moved {
            sqlx::query(INSERT)
                .bind(a.id)
                .bind(a.report_id)
                .bind(a.sequence)
                .bind(a.report_revision)
                .bind(&a.category)
                .bind(JsonText(&a.impact))
                .bind(a.impact.overall)
                .bind(a.decision)
                .bind(&a.reason)
                .bind(&a.note)
                .bind(a.incident_id)
                .bind(&a.assessed_by)
                .bind(a.assessed_at)
                .execute(&mut *c)
                .await?;
            sqlx::query(UNLINK).bind(a.report_id).execute(&mut *c).await?;
            if let Some(incident_id) = a.incident_id {
                sqlx::query(LINK).bind(incident_id).bind(a.report_id).bind(a.id).execute(&mut *c).await?;
            }
        }
        moved
    });
    Ok(moved)
}

/// An assessment as stored, with its report's and incident's references.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct AssessmentRow {
    pub id: Uuid,
    pub report_id: Uuid,
    pub report_reference: String,
    pub sequence: i32,
    pub report_revision: i32,
    pub category: String,
    pub impact: JsonText<Impact>,
    pub overall_level: Level,
    pub decision: Decision,
    pub reason: String,
    pub note: String,
    pub incident_id: Option<Uuid>,
    pub incident_reference: Option<String>,
    pub assessed_by: String,
    pub assessed_at: DbTime,
}

const SELECT_ASSESSMENTS: &str = "SELECT a.id, a.report_id, t.reference AS report_reference, \
     a.sequence, a.report_revision, a.category, a.impact, a.overall_level, a.decision, a.reason, \
     a.note, a.incident_id, i.reference AS incident_reference, a.assessed_by, a.assessed_at \
     FROM assessments a JOIN triage_entries t ON t.report_id = a.report_id \
     LEFT JOIN incidents i ON i.id = a.incident_id";

/// A report's assessments, newest first, those before sequence `before` when given.
pub async fn assessments(
    conn: impl AsConn,
    report_id: Uuid,
    before: Option<i32>,
    limit: i64,
) -> Result<Vec<AssessmentRow>, StorageError> {
    let mut select = Select::new(SELECT_ASSESSMENTS);
    select.and("a.report_id = ?", [report_id.into()]);
    if let Some(sequence) = before {
        select.and("a.sequence < ?", [sequence.into()]);
    }
    select.then("ORDER BY a.sequence DESC");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// The reports an incident holds now (their latest assessments link them to it).
pub async fn incident_report_ids(
    mut conn: impl AsConn,
    incident_id: Uuid,
) -> Result<Vec<Uuid>, StorageError> {
    const SQL: &str = "SELECT report_id FROM incident_reports WHERE incident_id = $1 \
         ORDER BY report_id";
    let ids = with_conn!(&mut conn, c => {
        sqlx::query_scalar(SQL).bind(incident_id).fetch_all(&mut *c).await?
    });
    Ok(ids)
}

//! Weaknesses reported to service providers (14.1.2): the report to the provider, its
//! responses, the verdict on the fix, and which are overdue.

use custos_kit::{
    outbox::NewEvent,
    storage::{AsConn, DbTime, Select, StorageError, Tx, Value},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{
    error::IntakeError,
    report::{FixVerdict, Kind},
};

#[derive(Debug, Clone, FromRow)]
pub struct ProviderReportRow {
    pub id: Uuid,
    pub report_id: Uuid,
    pub report_reference: String,
    pub provider: String,
    pub provider_reference: String,
    pub reported_at: DbTime,
    pub recorded_by: String,
    pub recorded_at: DbTime,
    pub verdict: FixVerdict,
    pub verdict_notes: String,
    pub verdict_by: Option<String>,
    pub verdict_at: Option<DbTime>,
}

#[derive(Debug, Clone, FromRow)]
pub struct ProviderResponseRow {
    pub id: Uuid,
    pub provider_report_id: Uuid,
    pub responded_at: DbTime,
    pub summary: String,
    pub recorded_by: String,
    pub recorded_at: DbTime,
}

const SELECT_PROVIDER_REPORTS: &str = "SELECT p.id, p.report_id, r.reference AS report_reference, \
     p.provider, p.provider_reference, p.reported_at, p.recorded_by, p.recorded_at, p.verdict, \
     p.verdict_notes, p.verdict_by, p.verdict_at \
     FROM provider_reports p JOIN reports r ON r.id = p.report_id";

/// Records that a weakness was reported to a provider. Only weaknesses qualify.
pub async fn record_provider_report(
    tx: &mut Tx,
    row: &ProviderReportRow,
    event: &NewEvent,
) -> Result<(), IntakeError> {
    const KIND: &str = "SELECT kind FROM reports WHERE id = $1";
    const INSERT: &str = "INSERT INTO provider_reports (id, report_id, provider, \
         provider_reference, reported_at, recorded_by, recorded_at, verdict, verdict_notes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '')";
    let kind: Kind = with_conn!(&mut *tx, c => {
        sqlx::query_scalar(KIND).bind(row.report_id).fetch_optional(&mut *c).await?
    })
    .ok_or(IntakeError::NotFound)?;
    if kind != Kind::Weakness {
        return Err(IntakeError::NotAWeakness);
    }
    with_conn!(&mut *tx, c => {
        sqlx::query(INSERT)
            .bind(row.id)
            .bind(row.report_id)
            .bind(&row.provider)
            .bind(&row.provider_reference)
            .bind(row.reported_at)
            .bind(&row.recorded_by)
            .bind(row.recorded_at)
            .bind(FixVerdict::Pending)
            .execute(&mut *c)
            .await?;
    });
    tx.append_event(event).await?;
    Ok(())
}

/// Records a provider's response; the first response stops the overdue clock.
pub async fn record_provider_response(
    tx: &mut Tx,
    response: &ProviderResponseRow,
    event: impl FnOnce(&ProviderReportRow) -> NewEvent,
) -> Result<(), IntakeError> {
    const INSERT: &str = "INSERT INTO provider_responses (id, provider_report_id, \
         responded_at, summary, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)";
    const FIRST: &str = "UPDATE provider_reports SET first_response_at = $2 \
         WHERE id = $1 AND (first_response_at IS NULL OR first_response_at > $2)";
    let report = provider_report(&mut *tx, response.provider_report_id)
        .await?
        .ok_or(IntakeError::ProviderReportNotFound)?;
    if response.responded_at < report.reported_at {
        let mut v = custos_kit::error::Violations::new();
        v.add(
            "responded_at",
            "must not be before the weakness was reported to the provider",
        );
        return Err(v.finish().unwrap_err().into());
    }
    with_conn!(&mut *tx, c => {
        sqlx::query(INSERT)
            .bind(response.id)
            .bind(response.provider_report_id)
            .bind(response.responded_at)
            .bind(&response.summary)
            .bind(&response.recorded_by)
            .bind(response.recorded_at)
            .execute(&mut *c)
            .await?;
        sqlx::query(FIRST)
            .bind(response.provider_report_id)
            .bind(response.responded_at)
            .execute(&mut *c)
            .await?;
    });
    tx.append_event(&event(&report)).await?;
    Ok(())
}

/// Records the verdict on the provider's fix (it may be revised later).
pub async fn record_fix_verdict(
    tx: &mut Tx,
    provider_report_id: Uuid,
    verdict: FixVerdict,
    notes: &str,
    by: &str,
    at: DbTime,
    event: impl FnOnce(&ProviderReportRow) -> NewEvent,
) -> Result<(), IntakeError> {
    const UPDATE: &str = "UPDATE provider_reports SET verdict = $2, verdict_notes = $3, \
         verdict_by = $4, verdict_at = $5 WHERE id = $1";
    let report = provider_report(&mut *tx, provider_report_id)
        .await?
        .ok_or(IntakeError::ProviderReportNotFound)?;
    with_conn!(&mut *tx, c => {
        sqlx::query(UPDATE)
            .bind(provider_report_id)
            .bind(verdict)
            .bind(notes)
            .bind(by)
            .bind(at)
            .execute(&mut *c)
            .await?;
    });
    tx.append_event(&event(&report)).await?;
    Ok(())
}

pub async fn provider_report(
    conn: impl AsConn,
    id: Uuid,
) -> Result<Option<ProviderReportRow>, StorageError> {
    let mut select = Select::new(SELECT_PROVIDER_REPORTS);
    select.and("p.id = ?", [id.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

pub async fn provider_reports_for(
    conn: impl AsConn,
    report_id: Uuid,
) -> Result<Vec<ProviderReportRow>, StorageError> {
    let mut select = Select::new(SELECT_PROVIDER_REPORTS);
    select.and("p.report_id = ?", [report_id.into()]);
    select.then("ORDER BY p.reported_at, p.id");
    select.fetch_all(conn).await
}

pub async fn provider_responses(
    mut conn: impl AsConn,
    provider_report_id: Uuid,
) -> Result<Vec<ProviderResponseRow>, StorageError> {
    const SQL: &str = "SELECT id, provider_report_id, responded_at, summary, recorded_by, \
         recorded_at FROM provider_responses WHERE provider_report_id = $1 \
         ORDER BY responded_at, id";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as::<_, ProviderResponseRow>(SQL).bind(provider_report_id).fetch_all(&mut *c).await?
    }))
}

/// Provider reports with no response that were reported before `cutoff` and whose fix
/// is not recorded as effective; oldest first, after `after`.
pub async fn overdue_provider_reports(
    conn: impl AsConn,
    cutoff: DbTime,
    after: Option<(DbTime, Uuid)>,
    limit: i64,
) -> Result<Vec<ProviderReportRow>, StorageError> {
    let mut select = Select::new(SELECT_PROVIDER_REPORTS);
    select.and(
        "p.first_response_at IS NULL AND p.verdict <> ? AND p.reported_at < ?",
        [Value::of(FixVerdict::Effective), cutoff.into()],
    );
    if let Some((at, id)) = after {
        select.and("(p.reported_at, p.id) > (?, ?)", [at.into(), id.into()]);
    }
    select.then("ORDER BY p.reported_at, p.id");
    select.limit(limit);
    select.fetch_all(conn).await
}

//! Weaknesses reported to service providers (14.1.2): the report to the provider, its
//! responses, the verdict on the fix, and which are overdue.

use custos_kit::{
    db_time::DbTime,
    outbox::{NewEvent, OutboxWriter},
    with_pool,
};
use sqlx::FromRow;
use uuid::Uuid;

use super::Store;
use crate::{error::IntakeError, report::Kind};

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
    pub verdict: i16,
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

/// Verdict values as stored (the wire's FixVerdict numbers).
pub const VERDICT_PENDING: i16 = 1;
pub const VERDICT_EFFECTIVE: i16 = 2;

macro_rules! select_provider_reports {
    ($rest:literal) => {
        concat!(
            "SELECT p.id, p.report_id, r.reference AS report_reference, p.provider, ",
            "p.provider_reference, p.reported_at, p.recorded_by, p.recorded_at, p.verdict, ",
            "p.verdict_notes, p.verdict_by, p.verdict_at ",
            "FROM provider_reports p JOIN reports r ON r.id = p.report_id ",
            $rest
        )
    };
}

impl Store {
    /// Records that a weakness was reported to a provider. Only weaknesses qualify.
    pub async fn record_provider_report(
        &self,
        row: &ProviderReportRow,
        event: &NewEvent,
    ) -> Result<(), IntakeError> {
        const KIND: &str = "SELECT kind FROM reports WHERE id = $1";
        const INSERT: &str = "INSERT INTO provider_reports (id, report_id, provider, \
             provider_reference, reported_at, recorded_by, recorded_at, verdict, verdict_notes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '')";
        with_pool!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let kind: i16 = sqlx::query_scalar(KIND)
                .bind(row.report_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(IntakeError::NotFound)?;
            if Kind::from_db(kind) != Some(Kind::Weakness) {
                return Err(IntakeError::FailedPrecondition(
                    "only a weakness can be reported to a service provider".into(),
                ));
            }
            sqlx::query(INSERT)
                .bind(row.id)
                .bind(row.report_id)
                .bind(&row.provider)
                .bind(&row.provider_reference)
                .bind(row.reported_at)
                .bind(&row.recorded_by)
                .bind(row.recorded_at)
                .bind(VERDICT_PENDING)
                .execute(&mut *tx)
                .await?;
            tx.append_event(event).await?;
            tx.commit().await?;
        });
        self.db.outbox_committed();
        Ok(())
    }

    /// Records a provider's response; the first response stops the overdue clock.
    pub async fn record_provider_response(
        &self,
        response: &ProviderResponseRow,
        event: impl FnOnce(&ProviderReportRow) -> NewEvent,
    ) -> Result<(), IntakeError> {
        const INSERT: &str = "INSERT INTO provider_responses (id, provider_report_id, \
             responded_at, summary, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)";
        const FIRST: &str = "UPDATE provider_reports SET first_response_at = $2 \
             WHERE id = $1 AND (first_response_at IS NULL OR first_response_at > $2)";
        with_pool!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let report = sqlx::query_as::<_, ProviderReportRow>(select_provider_reports!("WHERE p.id = $1"))
                .bind(response.provider_report_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(IntakeError::ProviderReportNotFound)?;
            sqlx::query(INSERT)
                .bind(response.id)
                .bind(response.provider_report_id)
                .bind(response.responded_at)
                .bind(&response.summary)
                .bind(&response.recorded_by)
                .bind(response.recorded_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(FIRST)
                .bind(response.provider_report_id)
                .bind(response.responded_at)
                .execute(&mut *tx)
                .await?;
            tx.append_event(&event(&report)).await?;
            tx.commit().await?;
        });
        self.db.outbox_committed();
        Ok(())
    }

    /// Records the verdict on the provider's fix (it may be revised later).
    pub async fn record_fix_verdict(
        &self,
        provider_report_id: Uuid,
        verdict: i16,
        notes: &str,
        by: &str,
        at: DbTime,
        event: impl FnOnce(&ProviderReportRow) -> NewEvent,
    ) -> Result<(), IntakeError> {
        const UPDATE: &str = "UPDATE provider_reports SET verdict = $2, verdict_notes = $3, \
             verdict_by = $4, verdict_at = $5 WHERE id = $1";
        with_pool!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let report = sqlx::query_as::<_, ProviderReportRow>(select_provider_reports!("WHERE p.id = $1"))
                .bind(provider_report_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(IntakeError::ProviderReportNotFound)?;
            sqlx::query(UPDATE)
                .bind(provider_report_id)
                .bind(verdict)
                .bind(notes)
                .bind(by)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            tx.append_event(&event(&report)).await?;
            tx.commit().await?;
        });
        self.db.outbox_committed();
        Ok(())
    }

    pub async fn provider_report(
        &self,
        id: Uuid,
    ) -> Result<Option<ProviderReportRow>, IntakeError> {
        Ok(with_pool!(self.db.reader(), p => {
            sqlx::query_as::<_, ProviderReportRow>(select_provider_reports!("WHERE p.id = $1"))
                .bind(id)
                .fetch_optional(&p)
                .await?
        }))
    }

    pub async fn provider_reports_for(
        &self,
        report_id: Uuid,
    ) -> Result<Vec<ProviderReportRow>, IntakeError> {
        Ok(with_pool!(self.db.reader(), p => {
            sqlx::query_as::<_, ProviderReportRow>(select_provider_reports!(
                "WHERE p.report_id = $1 ORDER BY p.reported_at, p.id"
            ))
            .bind(report_id)
            .fetch_all(&p)
            .await?
        }))
    }

    pub async fn provider_responses(
        &self,
        provider_report_id: Uuid,
    ) -> Result<Vec<ProviderResponseRow>, IntakeError> {
        const SQL: &str = "SELECT id, provider_report_id, responded_at, summary, recorded_by, \
             recorded_at FROM provider_responses WHERE provider_report_id = $1 \
             ORDER BY responded_at, id";
        Ok(with_pool!(self.db.reader(), p => {
            sqlx::query_as::<_, ProviderResponseRow>(SQL).bind(provider_report_id).fetch_all(&p).await?
        }))
    }

    /// Provider reports with no response that were reported before `cutoff` and whose fix
    /// is not recorded as effective; oldest first, after `after`.
    pub async fn overdue_provider_reports(
        &self,
        cutoff: DbTime,
        after: Option<(DbTime, Uuid)>,
        limit: i64,
    ) -> Result<Vec<ProviderReportRow>, IntakeError> {
        const SQL: &str = select_provider_reports!(
            "WHERE p.first_response_at IS NULL AND p.verdict <> $1 AND p.reported_at < $2 \
             AND ($3 IS NULL OR p.reported_at > $3 OR (p.reported_at = $3 AND p.id > $4)) \
             ORDER BY p.reported_at, p.id LIMIT $5"
        );
        Ok(with_pool!(self.db.reader(), p => {
            sqlx::query_as::<_, ProviderReportRow>(SQL)
                .bind(VERDICT_EFFECTIVE)
                .bind(cutoff)
                .bind(after.map(|a| a.0))
                .bind(after.map(|a| a.1))
                .bind(limit)
                .fetch_all(&p)
                .await?
        }))
    }
}

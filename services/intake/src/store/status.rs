//! A report's status as classification's assessments move it (under assessment,
//! escalated to incident, closed).

use custos_kit::{
    storage::{StorageError, Tx},
    with_conn,
};
use uuid::Uuid;

use crate::report::Status;

/// Sets the status a report's assessment `sequence` gives it, unless a later assessment
/// is already applied. `None` (an outcome this version does not know) changes nothing:
/// neither the status nor the latest sequence, so a later assessment it does know still
/// applies. `Ok(false)`: intake has no such report.
pub async fn apply_assessment(
    tx: &mut Tx,
    report_id: Uuid,
    sequence: i32,
    status: Option<Status>,
) -> Result<bool, StorageError> {
    const UPDATE: &str = "UPDATE reports SET status = $2, assessment_sequence = $3 \
         WHERE id = $1 AND assessment_sequence < $3 AND $2 IS NOT NULL";
    const EXISTS: &str = "SELECT COUNT(*) FROM reports WHERE id = $1";
    let found = with_conn!(tx, c => {
        let updated = sqlx::query(UPDATE)
            .bind(report_id)
            .bind(status)
            .bind(sequence)
            .execute(&mut *c)
            .await?
            .rows_affected();
        updated > 0 || sqlx::query_scalar::<_, i64>(EXISTS).bind(report_id).fetch_one(&mut *c).await? > 0
    });
    Ok(found)
}

/// Puts a report under assessment again because classification put it back in its
/// triage queue after assessment `sequence`, unless a later assessment is already
/// applied. It takes that sequence as its own, so that assessment `sequence` arriving
/// after it (parked and replayed, or committed out of order) no longer closes the report.
/// `Ok(false)`: intake has no such report.
pub async fn reopen(tx: &mut Tx, report_id: Uuid, sequence: i32) -> Result<bool, StorageError> {
    const UPDATE: &str = "UPDATE reports SET status = $2, assessment_sequence = $3 \
         WHERE id = $1 AND assessment_sequence <= $3";
    const EXISTS: &str = "SELECT COUNT(*) FROM reports WHERE id = $1";
    let found = with_conn!(tx, c => {
        sqlx::query(UPDATE)
            .bind(report_id)
            .bind(Status::UnderAssessment)
            .bind(sequence)
            .execute(&mut *c)
            .await?;
        sqlx::query_scalar::<_, i64>(EXISTS).bind(report_id).fetch_one(&mut *c).await? > 0
    });
    Ok(found)
}

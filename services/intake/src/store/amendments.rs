//! Amendments (the original is never overwritten: each change is a new revision with who,
//! when, why and what), follow-ups, and the listing of reports.

use custos_kit::{
    db_time::DbTime,
    outbox::{NewEvent, OutboxWriter},
    storage::Dialect,
    with_pool,
};
use uuid::Uuid;

use super::{
    Store,
    reports::{FollowUpRow, ListFilter, Page, ReportRow, RevisionRow, select_reports},
};
use crate::{
    error::IntakeError,
    report::{Contact, Details},
};

/// One amendment, built from the report as it stands inside the amending transaction.
#[derive(Debug)]
pub struct Amendment {
    pub details: Details,
    pub contact: Option<Contact>,
    /// `(field, old, new)` for each changed field.
    pub changes: Vec<(String, String, String)>,
    pub reason: String,
    pub changed_by: String,
    pub at: DbTime,
    pub event: NewEvent,
}

impl Store {
    /// Amends a report under a row lock: `build` sees the current row and says what
    /// changes. Refused with ABORTED when `expected_revision` is given and stale.
    pub async fn amend(
        &self,
        id: Uuid,
        expected_revision: Option<i32>,
        build: impl FnOnce(&ReportRow) -> Result<Amendment, IntakeError>,
    ) -> Result<(ReportRow, RevisionRow), IntakeError> {
        const UPDATE: &str = "UPDATE reports SET details = $2, contact = $3, category = $4, \
             medium = $5, senior_notice = $6, revision = revision + 1, updated_at = $7 \
             WHERE id = $1";
        const REVISION: &str = "INSERT INTO report_revisions (report_id, number, changed_at, \
             changed_by, reason, changes) VALUES ($1, $2, $3, $4, $5, $6)";
        let revision = with_pool!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let sql = p.pick(
                select_reports!("WHERE id = $1 FOR UPDATE"),
                select_reports!("WHERE id = $1"),
            );
            let row = sqlx::query_as::<_, ReportRow>(sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(IntakeError::NotFound)?;
            if let Some(expected) = expected_revision
                && expected != row.revision
            {
                return Err(IntakeError::RevisionMismatch { expected, actual: row.revision });
            }
            let a = build(&row)?;
            let details = serde_json::to_string(&a.details).expect("details serialise");
            let contact = a.contact.as_ref().map(|c| serde_json::to_string(c).expect("contact serialises"));
            sqlx::query(UPDATE)
                .bind(id)
                .bind(&details)
                .bind(&contact)
                .bind(&a.details.category)
                .bind(a.details.medium.to_db())
                .bind(a.details.senior_notice())
                .bind(a.at)
                .execute(&mut *tx)
                .await?;
            let revision = RevisionRow {
                number: row.revision + 1,
                changed_at: a.at,
                changed_by: a.changed_by,
                reason: a.reason,
                changes: serde_json::to_string(&a.changes).expect("changes serialise"),
            };
            sqlx::query(REVISION)
                .bind(id)
                .bind(revision.number)
                .bind(revision.changed_at)
                .bind(&revision.changed_by)
                .bind(&revision.reason)
                .bind(&revision.changes)
                .execute(&mut *tx)
                .await?;
            tx.append_event(&a.event).await?;
            tx.commit().await?;
            revision
        });
        self.db.outbox_committed();
        let row = self.report(id).await?.ok_or(IntakeError::NotFound)?;
        Ok((row, revision))
    }

    /// The amendments of a report, oldest first (the original is the report's `original`).
    pub async fn revisions(&self, report_id: Uuid) -> Result<Vec<RevisionRow>, IntakeError> {
        const SQL: &str = "SELECT number, changed_at, changed_by, reason, changes \
             FROM report_revisions WHERE report_id = $1 ORDER BY number";
        Ok(with_pool!(self.db.reader(), p => {
            sqlx::query_as::<_, RevisionRow>(SQL).bind(report_id).fetch_all(&p).await?
        }))
    }

    /// Adds a follow-up and its event.
    pub async fn add_follow_up(
        &self,
        report_id: Uuid,
        follow_up: &FollowUpRow,
        event: &NewEvent,
    ) -> Result<(), IntakeError> {
        const SQL: &str = "INSERT INTO follow_ups (id, report_id, added_at, source, added_by, text) \
             VALUES ($1, $2, $3, $4, $5, $6)";
        with_pool!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            sqlx::query(SQL)
                .bind(follow_up.id)
                .bind(report_id)
                .bind(follow_up.added_at)
                .bind(follow_up.source)
                .bind(&follow_up.added_by)
                .bind(&follow_up.text)
                .execute(&mut *tx)
                .await?;
            tx.append_event(event).await?;
            tx.commit().await?;
        });
        self.db.outbox_committed();
        Ok(())
    }

    pub async fn follow_ups(&self, report_id: Uuid) -> Result<Vec<FollowUpRow>, IntakeError> {
        const SQL: &str = "SELECT id, added_at, source, added_by, text FROM follow_ups \
             WHERE report_id = $1 ORDER BY added_at, id";
        Ok(with_pool!(self.db.reader(), p => {
            sqlx::query_as::<_, FollowUpRow>(SQL).bind(report_id).fetch_all(&p).await?
        }))
    }

    /// Reports matching `filter`, newest first, strictly after `after`, at most `limit`.
    pub async fn list(
        &self,
        filter: &ListFilter,
        after: Option<Page>,
        limit: i64,
    ) -> Result<Vec<ReportRow>, IntakeError> {
        const SQL: &str = select_reports!(
            "WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR category = $2) \
             AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR medium = $4) \
             AND ($5 IS NULL OR submitted_at >= $5) AND ($6 IS NULL OR submitted_at < $6) \
             AND ($7 IS NULL OR submitted_by = $7) \
             AND ($8 IS NULL OR submitted_at < $8 OR (submitted_at = $8 AND id < $9)) \
             ORDER BY submitted_at DESC, id DESC LIMIT $10"
        );
        Ok(with_pool!(self.db.reader(), p => {
            sqlx::query_as::<_, ReportRow>(SQL)
                .bind(filter.kind.map(|k| k.to_db()))
                .bind(&filter.category)
                .bind(filter.status.map(|s| s.to_db()))
                .bind(filter.medium.map(|m| m.to_db()))
                .bind(filter.submitted_after)
                .bind(filter.submitted_before)
                .bind(&filter.submitted_by)
                .bind(after.map(|a| a.submitted_at))
                .bind(after.map(|a| a.id))
                .bind(limit)
                .fetch_all(&p)
                .await?
        }))
    }
}

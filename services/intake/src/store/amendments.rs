//! Amendments (the original is never overwritten: each change is a new revision with who,
//! when, why and what) and follow-ups.

use custos_kit::{
    outbox::NewEvent,
    storage::{AsConn, DbTime, Dialect, JsonText, Tx},
    with_conn,
};
use uuid::Uuid;

use super::{
    ReportRow,
    reports::{Change, FollowUpRow, RevisionRow, select_reports},
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
    pub changes: Vec<Change>,
    pub reason: String,
    pub changed_by: String,
    pub at: DbTime,
    pub event: NewEvent,
}

/// Amends a report under a row lock: `build` sees the current row and says what
/// changes. Refused with ABORTED when `expected_revision` is given and stale.
pub async fn amend(
    tx: &mut Tx,
    id: Uuid,
    expected_revision: Option<i32>,
    build: impl FnOnce(&ReportRow) -> Result<Amendment, IntakeError>,
) -> Result<(ReportRow, RevisionRow), IntakeError> {
    const UPDATE: &str = "UPDATE reports SET details = $2, contact = $3, category = $4, \
         medium = $5, senior_notice = $6, revision = revision + 1, updated_at = $7 \
         WHERE id = $1";
    const REVISION: &str = "INSERT INTO report_revisions (report_id, number, changed_at, \
         changed_by, reason, changes) VALUES ($1, $2, $3, $4, $5, $6)";
    let row = with_conn!(&mut *tx, c => {
        let sql = c.pick(
            select_reports!(" WHERE id = $1 FOR UPDATE"),
            select_reports!(" WHERE id = $1"),
        );
        sqlx::query_as::<_, ReportRow>(sql).bind(id).fetch_optional(&mut *c).await?
    })
    .ok_or(IntakeError::NotFound)?;
    if let Some(expected) = expected_revision
        && expected != row.revision
    {
        return Err(IntakeError::RevisionMismatch {
            expected,
            actual: row.revision,
        });
    }
    let a = build(&row)?;
    let revision = RevisionRow {
        number: row.revision + 1,
        changed_at: a.at,
        changed_by: a.changed_by,
        reason: a.reason,
        changes: JsonText(a.changes),
    };
    let senior_notice = a.details.senior_notice();
    let category = a.details.category.clone();
    let medium = a.details.medium;
    with_conn!(&mut *tx, c => {
        sqlx::query(UPDATE)
            .bind(id)
            .bind(JsonText(&a.details))
            .bind(a.contact.as_ref().map(JsonText))
            .bind(&category)
            .bind(medium)
            .bind(senior_notice)
            .bind(a.at)
            .execute(&mut *c)
            .await?;
        sqlx::query(REVISION)
            .bind(id)
            .bind(revision.number)
            .bind(revision.changed_at)
            .bind(&revision.changed_by)
            .bind(&revision.reason)
            .bind(&revision.changes)
            .execute(&mut *c)
            .await?;
    });
    tx.append_event(&a.event).await?;
    let amended = super::report(&mut *tx, id)
        .await?
        .ok_or(IntakeError::NotFound)?;
    Ok((amended, revision))
}

/// The amendments of a report, oldest first (the original is the report's `original`).
pub async fn revisions(
    mut conn: impl AsConn,
    report_id: Uuid,
) -> Result<Vec<RevisionRow>, IntakeError> {
    const SQL: &str = "SELECT number, changed_at, changed_by, reason, changes \
         FROM report_revisions WHERE report_id = $1 ORDER BY number";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as::<_, RevisionRow>(SQL).bind(report_id).fetch_all(&mut *c).await?
    }))
}

/// Adds a follow-up and its event.
pub async fn add_follow_up(
    tx: &mut Tx,
    report_id: Uuid,
    follow_up: &FollowUpRow,
    event: &NewEvent,
) -> Result<(), IntakeError> {
    const SQL: &str = "INSERT INTO follow_ups (id, report_id, added_at, source, added_by, text) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    with_conn!(&mut *tx, c => {
        sqlx::query(SQL)
            .bind(follow_up.id)
            .bind(report_id)
            .bind(follow_up.added_at)
            .bind(follow_up.source)
            .bind(&follow_up.added_by)
            .bind(&follow_up.text)
            .execute(&mut *c)
            .await?;
    });
    tx.append_event(event).await?;
    Ok(())
}

pub async fn follow_ups(
    mut conn: impl AsConn,
    report_id: Uuid,
) -> Result<Vec<FollowUpRow>, IntakeError> {
    const SQL: &str = "SELECT id, added_at, source, added_by, text FROM follow_ups \
         WHERE report_id = $1 ORDER BY added_at, id";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as::<_, FollowUpRow>(SQL).bind(report_id).fetch_all(&mut *c).await?
    }))
}

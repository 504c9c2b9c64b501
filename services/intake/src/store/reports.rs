//! Reports as stored: typed rows, reads, and the listing built from the filters given.

use custos_kit::storage::{AsConn, DbTime, JsonText, Select, StorageError, Value};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use uuid::Uuid;

use crate::report::{Contact, Details, FollowUpSource, Kind, Medium, Status};

/// A report row as stored (without the original submission, which only the history
/// needs: see [`original`]).
#[derive(Debug, Clone, FromRow)]
pub struct ReportRow {
    pub id: Uuid,
    pub reference: String,
    pub kind: Kind,
    pub status: Status,
    pub details: JsonText<Details>,
    pub contact: Option<JsonText<Contact>>,
    pub anonymous: bool,
    pub submitted_by: Option<String>,
    pub submitted_at: DbTime,
    pub updated_at: DbTime,
    pub revision: i32,
    pub senior_notice: bool,
    pub request_hash: Option<Vec<u8>>,
}

impl ReportRow {
    pub fn contact(&self) -> Option<&Contact> {
        self.contact.as_ref().map(|c| &c.0)
    }
}

/// A report as a triage list shows it: no personal data (no contact, no submitter, no
/// free text), and nothing to decode but plain columns.
#[derive(Debug, Clone, FromRow)]
pub struct ReportSummaryRow {
    pub id: Uuid,
    pub reference: String,
    pub kind: Kind,
    pub status: Status,
    pub category: String,
    pub medium: Medium,
    pub anonymous: bool,
    pub submitted_at: DbTime,
    pub updated_at: DbTime,
    pub revision: i32,
    pub senior_notice: bool,
}

const SELECT_SUMMARIES: &str = "SELECT id, reference, kind, status, category, medium, anonymous, \
     submitted_at, updated_at, revision, senior_notice FROM reports";

/// `SELECT <every ReportRow column> FROM reports <rest>`, as one static string.
macro_rules! select_reports {
    ($rest:literal) => {
        concat!(
            "SELECT id, reference, kind, status, details, contact, anonymous, ",
            "submitted_by, submitted_at, updated_at, revision, senior_notice, request_hash ",
            "FROM reports",
            $rest
        )
    };
}
pub(super) use select_reports;

/// The submission as received, kept unchanged beside the current state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Original {
    pub details: Details,
    pub contact: Option<Contact>,
}

/// One changed field of an amendment: `(field, old, new)`.
pub type Change = (String, String, String);

/// A history entry as stored.
#[derive(Debug, Clone, FromRow)]
pub struct RevisionRow {
    pub number: i32,
    pub changed_at: DbTime,
    pub changed_by: String,
    pub reason: String,
    pub changes: JsonText<Vec<Change>>,
}

#[derive(Debug, Clone, FromRow)]
pub struct FollowUpRow {
    pub id: Uuid,
    pub added_at: DbTime,
    pub source: FollowUpSource,
    pub added_by: Option<String>,
    pub text: String,
}

/// Filters of ListReports; `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub kind: Option<Kind>,
    pub category: Option<String>,
    pub status: Option<Status>,
    pub medium: Option<Medium>,
    pub submitted_after: Option<DbTime>,
    pub submitted_before: Option<DbTime>,
    /// Only reports this subject submitted (for callers who may see only their own).
    pub submitted_by: Option<String>,
}

/// Keyset position: reports strictly older than this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub submitted_at: DbTime,
    pub id: Uuid,
}

async fn report_by(
    conn: impl AsConn,
    column: &'static str,
    value: Value,
) -> Result<Option<ReportRow>, StorageError> {
    let mut select = Select::new(select_reports!(""));
    select.and(column, [value]);
    Ok(select.fetch_all(conn).await?.pop())
}

pub async fn report(conn: impl AsConn, id: Uuid) -> Result<Option<ReportRow>, StorageError> {
    report_by(conn, "id = ?", id.into()).await
}

pub async fn report_by_reference(
    conn: impl AsConn,
    reference: &str,
) -> Result<Option<ReportRow>, StorageError> {
    report_by(conn, "reference = ?", reference.into()).await
}

pub async fn report_by_receipt(
    conn: impl AsConn,
    receipt_hash: Vec<u8>,
) -> Result<Option<ReportRow>, StorageError> {
    report_by(conn, "receipt_hash = ?", receipt_hash.into()).await
}

pub(super) async fn report_by_idempotency(
    conn: impl AsConn,
    hash: Vec<u8>,
) -> Result<Option<ReportRow>, StorageError> {
    report_by(conn, "idempotency_hash = ?", hash.into()).await
}

/// The submission as first received.
pub async fn original(mut conn: impl AsConn, id: Uuid) -> Result<Option<Original>, StorageError> {
    const SQL: &str = "SELECT original FROM reports WHERE id = $1";
    let original: Option<JsonText<Original>> = custos_kit::with_conn!(&mut conn, c => {
        sqlx::query_scalar(SQL).bind(id).fetch_optional(&mut *c).await?
    });
    Ok(original.map(JsonText::into_inner))
}

/// The statement for a page of reports matching `filter`, newest first, strictly after
/// `after`, at most `limit`. It holds only the filters given, so each combination is
/// planned on its own (see the kit's `Select`) and served by the indexes of migrations
/// 1001, 1002 and 1004.
fn list_statement(
    base: &'static str,
    filter: &ListFilter,
    after: Option<Page>,
    limit: i64,
) -> Select {
    let mut select = Select::new(base);
    select.and_eq("kind", filter.kind.map(Value::of));
    select.and_eq("category", filter.category.as_deref());
    select.and_eq("status", filter.status.map(Value::of));
    select.and_eq("medium", filter.medium.map(Value::of));
    select.and_eq("submitted_by", filter.submitted_by.as_deref());
    if let Some(at) = filter.submitted_after {
        select.and("submitted_at >= ?", [at.into()]);
    }
    if let Some(at) = filter.submitted_before {
        select.and("submitted_at < ?", [at.into()]);
    }
    if let Some(page) = after {
        select.and(
            "(submitted_at, id) < (?, ?)",
            [page.submitted_at.into(), page.id.into()],
        );
    }
    select.then("ORDER BY submitted_at DESC, id DESC");
    select.limit(limit);
    select
}

/// A page of whole reports (see [`list_statement`]).
pub async fn list(
    conn: impl AsConn,
    filter: &ListFilter,
    after: Option<Page>,
    limit: i64,
) -> Result<Vec<ReportRow>, StorageError> {
    list_statement(select_reports!(""), filter, after, limit)
        .fetch_all(conn)
        .await
}

/// A page of summaries (see [`list_statement`]).
pub async fn list_summaries(
    conn: impl AsConn,
    filter: &ListFilter,
    after: Option<Page>,
    limit: i64,
) -> Result<Vec<ReportSummaryRow>, StorageError> {
    list_statement(SELECT_SUMMARIES, filter, after, limit)
        .fetch_all(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_kit::storage::DbEnum;

    #[test]
    fn enums_keep_their_stored_values() {
        assert_eq!(Kind::Weakness.to_db(), 2);
        assert_eq!(Status::from_db(4), Some(Status::Closed));
        assert!(Kind::decode_db(9).unwrap_err().to_string().contains("Kind"));
    }
}

//! Reports: submission (idempotent), reads, listing, amendments and follow-ups.

use custos_kit::{db_time::DbTime, with_pool};
use sqlx::FromRow;
use uuid::Uuid;

use super::Store;
use crate::{
    error::IntakeError,
    report::{Contact, Details, Kind, Medium, Status},
};

/// A report row as stored.
#[derive(Debug, Clone, FromRow)]
pub struct ReportRow {
    pub id: Uuid,
    pub reference: String,
    pub kind: i16,
    pub status: i16,
    pub details: String,
    pub original: String,
    pub contact: Option<String>,
    pub anonymous: bool,
    pub submitted_by: Option<String>,
    pub submitted_at: DbTime,
    pub updated_at: DbTime,
    pub revision: i32,
    pub senior_notice: bool,
    pub request_hash: Option<Vec<u8>>,
}

/// `SELECT <every ReportRow column> FROM reports <rest>`, as one static string.
macro_rules! select_reports {
    ($rest:literal) => {
        concat!(
            "SELECT id, reference, kind, status, details, original, contact, anonymous, ",
            "submitted_by, submitted_at, updated_at, revision, senior_notice, request_hash ",
            "FROM reports ",
            $rest
        )
    };
}
pub(super) use select_reports;

impl ReportRow {
    pub fn kind(&self) -> Result<Kind, IntakeError> {
        Kind::from_db(self.kind).ok_or_else(|| IntakeError::Corrupt(format!("kind {}", self.kind)))
    }

    pub fn status(&self) -> Result<Status, IntakeError> {
        Status::from_db(self.status)
            .ok_or_else(|| IntakeError::Corrupt(format!("status {}", self.status)))
    }

    pub fn details(&self) -> Result<Details, IntakeError> {
        serde_json::from_str(&self.details).map_err(|e| IntakeError::Corrupt(e.to_string()))
    }

    pub fn original(&self) -> Result<Original, IntakeError> {
        serde_json::from_str(&self.original).map_err(|e| IntakeError::Corrupt(e.to_string()))
    }

    pub fn contact(&self) -> Result<Option<Contact>, IntakeError> {
        self.contact
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| IntakeError::Corrupt(e.to_string()))
    }
}

/// The submission as received, kept unchanged beside the current state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Original {
    pub details: Details,
    pub contact: Option<Contact>,
}

/// A history entry as stored.
#[derive(Debug, Clone, FromRow)]
pub struct RevisionRow {
    pub number: i32,
    pub changed_at: DbTime,
    pub changed_by: String,
    pub reason: String,
    /// JSON list of `[field, old, new]`.
    pub changes: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct FollowUpRow {
    pub id: Uuid,
    pub added_at: DbTime,
    pub source: i16,
    pub added_by: Option<String>,
    pub text: String,
}

/// Filters of ListReports; `None` does not filter.
#[derive(Debug, Clone, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub submitted_at: DbTime,
    pub id: Uuid,
}

impl Store {
    pub async fn report(&self, id: Uuid) -> Result<Option<ReportRow>, IntakeError> {
        self.report_by(select_reports!("WHERE id = $1"), Key::Id(id))
            .await
    }

    pub async fn report_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<ReportRow>, IntakeError> {
        self.report_by(
            select_reports!("WHERE reference = $1"),
            Key::Text(reference.to_owned()),
        )
        .await
    }

    pub async fn report_by_receipt(
        &self,
        receipt_hash: Vec<u8>,
    ) -> Result<Option<ReportRow>, IntakeError> {
        self.report_by(
            select_reports!("WHERE receipt_hash = $1"),
            Key::Bytes(receipt_hash),
        )
        .await
    }

    pub(super) async fn report_by_idempotency(
        &self,
        hash: Vec<u8>,
    ) -> Result<Option<ReportRow>, IntakeError> {
        self.report_by(
            select_reports!("WHERE idempotency_hash = $1"),
            Key::Bytes(hash),
        )
        .await
    }

    async fn report_by(
        &self,
        sql: &'static str,
        key: Key,
    ) -> Result<Option<ReportRow>, IntakeError> {
        Ok(with_pool!(self.db.reader(), p => {
            let query = sqlx::query_as::<_, ReportRow>(sql);
            let query = match key {
                Key::Id(id) => query.bind(id),
                Key::Text(text) => query.bind(text),
                Key::Bytes(bytes) => query.bind(bytes),
            };
            query.fetch_optional(&p).await?
        }))
    }
}

/// The value a report is looked up by.
enum Key {
    Id(Uuid),
    Text(String),
    Bytes(Vec<u8>),
}

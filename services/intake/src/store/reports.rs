//! Reports: submission (idempotent), reads, listing, amendments and follow-ups.

use custos_kit::{
    db_time::DbTime,
    outbox::{NewEvent, OutboxWriter},
    storage::Pool,
    with_pool,
};
use sqlx::FromRow;
use uuid::Uuid;

use super::Store;
use crate::{
    error::IntakeError,
    report::{Contact, Details, Kind, Medium, NewReport, Status},
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

/// A new report with everything the store needs to write it and its event.
#[derive(Debug)]
pub struct Submission<'a> {
    pub id: Uuid,
    pub report: &'a NewReport,
    /// The account that submitted a named report; `None` when anonymous.
    pub submitted_by: Option<&'a str>,
    pub submitted_at: DbTime,
    /// `SIR-2026-`: the number is appended.
    pub reference_prefix: String,
    pub idempotency_hash: Option<Vec<u8>>,
    pub request_hash: Option<Vec<u8>>,
    pub receipt_hash: Option<Vec<u8>>,
    /// The `ReportSubmitted` event; the store fills in its aggregate reference.
    pub event: NewEvent,
}

#[derive(Debug)]
pub enum Submitted {
    Created(ReportRow),
    /// The idempotency key had been used: this is the report it created.
    Existing(ReportRow),
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

/// A retry whose key is already stored takes no number (only racing duplicates can leave
/// a gap in the sequence, which references tolerate: they are unique, not gap-free).
const INSERT_POSTGRES: &str = "WITH n AS (SELECT nextval('report_number_seq') AS number \
       WHERE NOT EXISTS (SELECT 1 FROM reports WHERE idempotency_hash = $13)), \
     r AS ( \
       INSERT INTO reports (id, number, reference, kind, status, category, medium, details, \
         original, contact, anonymous, submitted_by, submitted_at, updated_at, revision, \
         senior_notice, idempotency_hash, request_hash, receipt_hash) \
       SELECT $1, n.number, $2 || CASE WHEN n.number < 1000000 \
           THEN lpad(n.number::text, 6, '0') ELSE n.number::text END, \
         $3, $4, $5, $6, $7, $20, $8, $9, $10, $11, $11, 1, $12, $13, $14, $15 FROM n \
       ON CONFLICT (idempotency_hash) DO NOTHING \
       RETURNING id, reference), \
     o AS ( \
       INSERT INTO outbox (event_id, event_type, occurred_at, aggregate_id, \
         aggregate_reference, trace_context, payload) \
       SELECT $16, $17, $11, r.id::text, r.reference, $18, $19 FROM r) \
     SELECT reference FROM r";

const INSERT_SQLITE: &str = "INSERT INTO reports (id, number, reference, kind, status, category, \
     medium, details, original, contact, anonymous, submitted_by, submitted_at, updated_at, \
     revision, senior_notice, idempotency_hash, request_hash, receipt_hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $17, $9, $10, $11, $12, $12, 1, $13, $14, $15, $16) \
     ON CONFLICT (idempotency_hash) DO NOTHING";

impl Store {
    /// Stores a new report and its `ReportSubmitted` event in one transaction. With an
    /// idempotency key that was already used, stores nothing and returns that report.
    pub async fn submit(&self, s: Submission<'_>) -> Result<Submitted, IntakeError> {
        let r = s.report;
        let details = serde_json::to_string(&r.details).expect("details serialise");
        let contact = r
            .contact
            .as_ref()
            .map(|c| serde_json::to_string(c).expect("contact serialises"));
        let original = serde_json::to_string(&Original {
            details: r.details.clone(),
            contact: r.contact.clone(),
        })
        .expect("original serialises");
        let inserted = match self.db.writer() {
            // One statement: the report, its reference and its outbox row commit together
            // in a single round trip.
            Pool::Postgres(p) => sqlx::query_scalar::<_, String>(INSERT_POSTGRES)
                .bind(s.id)
                .bind(&s.reference_prefix)
                .bind(r.kind.to_db())
                .bind(Status::Received.to_db())
                .bind(&r.details.category)
                .bind(r.details.medium.to_db())
                .bind(&details)
                .bind(&contact)
                .bind(r.contact.is_none())
                .bind(s.submitted_by)
                .bind(s.submitted_at)
                .bind(r.senior_notice())
                .bind(&s.idempotency_hash)
                .bind(&s.request_hash)
                .bind(&s.receipt_hash)
                .bind(s.event.event_id)
                .bind(&s.event.event_type)
                .bind(&s.event.trace_context)
                .bind(&s.event.payload)
                .bind(&original)
                .fetch_optional(&p)
                .await?
                .is_some(),
            // One writer at a time: the next number cannot be taken by anyone else.
            Pool::Sqlite(p) => {
                let mut tx = p.begin().await?;
                let number: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM reports")
                        .fetch_one(&mut *tx)
                        .await?;
                let reference = format!("{}{number:06}", s.reference_prefix);
                let done = sqlx::query(INSERT_SQLITE)
                    .bind(s.id)
                    .bind(number)
                    .bind(&reference)
                    .bind(r.kind.to_db())
                    .bind(Status::Received.to_db())
                    .bind(&r.details.category)
                    .bind(r.details.medium.to_db())
                    .bind(&details)
                    .bind(&contact)
                    .bind(r.contact.is_none())
                    .bind(s.submitted_by)
                    .bind(s.submitted_at)
                    .bind(r.senior_notice())
                    .bind(&s.idempotency_hash)
                    .bind(&s.request_hash)
                    .bind(&s.receipt_hash)
                    .bind(&original)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 1 {
                    let event = NewEvent {
                        aggregate_reference: reference,
                        ..s.event.clone()
                    };
                    tx.append_event(&event).await?;
                    tx.commit().await?;
                    true
                } else {
                    false
                }
            }
        };
        if inserted {
            self.db.outbox_committed();
            let row = self
                .report(s.id)
                .await?
                .ok_or_else(|| IntakeError::Corrupt("report vanished".into()))?;
            return Ok(Submitted::Created(row));
        }
        let hash = s.idempotency_hash.as_ref().ok_or_else(|| {
            IntakeError::Corrupt("insert ignored without an idempotency key".into())
        })?;
        let row = self
            .report_by_idempotency(hash.clone())
            .await?
            .ok_or_else(|| IntakeError::Corrupt("idempotent report not found".into()))?;
        Ok(Submitted::Existing(row))
    }

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

    async fn report_by_idempotency(&self, hash: Vec<u8>) -> Result<Option<ReportRow>, IntakeError> {
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

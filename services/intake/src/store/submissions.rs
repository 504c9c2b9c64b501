//! Submissions, written with group commit. Each submission waits in a queue; a writer
//! takes everything that is waiting (up to a limit) and writes it in one go: on
//! PostgreSQL one multi-row statement (reports, references and outbox rows together, a
//! few writers in parallel), on SQLite one transaction with a single fsync (one writer,
//! as SQLite has). Nothing is delayed to form a batch: a lone submission is written at
//! once, and batches grow only while the database is busy. Every submission in a batch
//! commits or fails together, and each caller hears its own outcome.

use std::sync::Arc;

use custos_kit::{
    db_time::DbTime,
    outbox::{NewEvent, OutboxWriter},
    storage::{Db, Pool},
};
use sqlx::{PgPool, SqlitePool};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::{Original, ReportRow, Store};
use crate::{
    error::IntakeError,
    report::{NewReport, Status},
};

/// Most submissions written in one batch.
const MAX_BATCH: usize = 64;
/// Concurrent batch writers on PostgreSQL.
const POSTGRES_WRITERS: usize = 4;

/// A new report with everything the store needs to write it and its event.
#[derive(Debug, Clone)]
pub struct Submission {
    pub id: Uuid,
    pub report: NewReport,
    /// The account that submitted a named report; `None` when anonymous.
    pub submitted_by: Option<String>,
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

/// A submission serialised for storage.
struct Row {
    s: Submission,
    details: String,
    original: String,
    contact: Option<String>,
}

impl Row {
    fn new(s: Submission) -> Self {
        let r = &s.report;
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
        Self {
            s,
            details,
            original,
            contact,
        }
    }
}

struct Job {
    row: Row,
    reply: oneshot::Sender<Result<Option<ReportRow>, IntakeError>>,
}

/// The queue in front of the writers.
#[derive(Debug, Clone)]
pub(super) struct SubmitQueue {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("id", &self.row.s.id).finish()
    }
}

impl SubmitQueue {
    /// Starts the writers; they stop when the last `Store` clone is dropped.
    pub(super) fn start(db: &Db) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        match db.writer() {
            Pool::Postgres(pool) => {
                for _ in 0..POSTGRES_WRITERS {
                    let pool = pool.clone();
                    tokio::spawn(write_loop(rx.clone(), db.clone(), move |batch| {
                        let pool = pool.clone();
                        async move { write_postgres(&pool, batch).await }
                    }));
                }
            }
            Pool::Sqlite(pool) => {
                tokio::spawn(write_loop(rx, db.clone(), move |batch| {
                    let pool = pool.clone();
                    async move { write_sqlite(&pool, batch).await }
                }));
            }
        }
        Self { jobs }
    }
}

/// Takes what is waiting, writes it, answers each caller.
async fn write_loop<F, Fut>(rx: Arc<Mutex<mpsc::Receiver<Job>>>, db: Db, write: F)
where
    F: Fn(Vec<Row>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<ReportRow>>, IntakeError>>,
{
    loop {
        let jobs = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        let (rows, replies): (Vec<Row>, Vec<_>) =
            jobs.into_iter().map(|j| (j.row, j.reply)).unzip();
        match write(rows).await {
            Ok(results) => {
                if results.iter().any(Option::is_some) {
                    db.outbox_committed();
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(error) => {
                // Nothing of the batch was written: every caller hears why.
                let message = custos_kit::error::DisplayChain(&error).to_string();
                tracing::error!(error = %message, "submission batch failed");
                let code = custos_kit::error::ServiceError::code(&error);
                for reply in replies {
                    let _ = reply.send(Err(IntakeError::BatchFailed(code)));
                }
            }
        }
    }
}

/// One statement for the whole batch. A key already stored takes no number; rows whose
/// key repeats one stored earlier (or earlier in the batch) are skipped by ON CONFLICT.
const INSERT_POSTGRES: &str = "WITH input AS ( \
       SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int2[], $4::text[], $5::int2[], \
         $6::text[], $7::text[], $8::text[], $9::bool[], $10::text[], $11::timestamptz[], \
         $12::bool[], $13::bytea[], $14::bytea[], $15::bytea[], $16::uuid[], $17::text[], \
         $18::text[], $19::bytea[]) WITH ORDINALITY AS t(id, prefix, kind, category, medium, \
         details, original, contact, anonymous, submitted_by, submitted_at, senior_notice, \
         idempotency_hash, request_hash, receipt_hash, event_id, event_type, trace_context, \
         payload, ord)), \
     numbered AS ( \
       SELECT i.*, nextval('report_number_seq') AS number FROM ( \
         SELECT * FROM input WHERE NOT EXISTS ( \
           SELECT 1 FROM reports r WHERE r.idempotency_hash = input.idempotency_hash) \
         ORDER BY ord) i), \
     r AS ( \
       INSERT INTO reports (id, number, reference, kind, status, category, medium, details, \
         original, contact, anonymous, submitted_by, submitted_at, updated_at, revision, \
         senior_notice, idempotency_hash, request_hash, receipt_hash) \
       SELECT id, number, prefix || CASE WHEN number < 1000000 \
           THEN lpad(number::text, 6, '0') ELSE number::text END, \
         kind, $20, category, medium, details, original, contact, anonymous, submitted_by, \
         submitted_at, submitted_at, 1, senior_notice, idempotency_hash, request_hash, \
         receipt_hash FROM numbered ORDER BY ord \
       ON CONFLICT (idempotency_hash) DO NOTHING \
       RETURNING id, reference, kind, status, details, original, contact, anonymous, \
         submitted_by, submitted_at, updated_at, revision, senior_notice, request_hash), \
     o AS ( \
       INSERT INTO outbox (event_id, event_type, occurred_at, aggregate_id, \
         aggregate_reference, trace_context, payload) \
       SELECT i.event_id, i.event_type, i.submitted_at, r.id::text, r.reference, \
         i.trace_context, i.payload FROM r JOIN input i ON i.id = r.id ORDER BY i.ord) \
     SELECT * FROM r";

async fn write_postgres(
    pool: &PgPool,
    rows: Vec<Row>,
) -> Result<Vec<Option<ReportRow>>, IntakeError> {
    let inserted = sqlx::query_as::<_, ReportRow>(INSERT_POSTGRES)
        .bind(rows.iter().map(|r| r.s.id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.s.reference_prefix.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.report.kind.to_db())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.report.details.category.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.report.details.medium.to_db())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.details.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.original.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.contact.clone()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.s.report.contact.is_none())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.submitted_by.clone())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.s.submitted_at).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.s.report.senior_notice())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.idempotency_hash.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.request_hash.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.receipt_hash.clone())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.s.event.event_id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.s.event.event_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.event.trace_context.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.s.event.payload.clone())
                .collect::<Vec<_>>(),
        )
        .bind(Status::Received.to_db())
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| inserted.iter().find(|i| i.id == r.s.id).cloned())
        .collect())
}

async fn write_sqlite(
    pool: &SqlitePool,
    rows: Vec<Row>,
) -> Result<Vec<Option<ReportRow>>, IntakeError> {
    const INSERT: &str = "INSERT INTO reports (id, number, reference, kind, status, category, \
         medium, details, original, contact, anonymous, submitted_by, submitted_at, updated_at, \
         revision, senior_notice, idempotency_hash, request_hash, receipt_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, 1, $14, $15, $16, $17) \
         ON CONFLICT (idempotency_hash) DO NOTHING \
         RETURNING id, reference, kind, status, details, original, contact, anonymous, \
         submitted_by, submitted_at, updated_at, revision, senior_notice, request_hash";
    // The only writer: numbers cannot be taken by anyone else meanwhile.
    let mut tx = pool.begin().await?;
    let mut number: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM reports")
        .fetch_one(&mut *tx)
        .await?;
    let mut results = Vec::with_capacity(rows.len());
    for r in &rows {
        let reference = format!("{}{number:06}", r.s.reference_prefix);
        let inserted = sqlx::query_as::<_, ReportRow>(INSERT)
            .bind(r.s.id)
            .bind(number)
            .bind(&reference)
            .bind(r.s.report.kind.to_db())
            .bind(Status::Received.to_db())
            .bind(&r.s.report.details.category)
            .bind(r.s.report.details.medium.to_db())
            .bind(&r.details)
            .bind(&r.original)
            .bind(&r.contact)
            .bind(r.s.report.contact.is_none())
            .bind(&r.s.submitted_by)
            .bind(r.s.submitted_at)
            .bind(r.s.report.senior_notice())
            .bind(&r.s.idempotency_hash)
            .bind(&r.s.request_hash)
            .bind(&r.s.receipt_hash)
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_some() {
            let event = NewEvent {
                aggregate_reference: reference,
                ..r.s.event.clone()
            };
            tx.append_event(&event).await?;
            number += 1;
        }
        results.push(inserted);
    }
    tx.commit().await?;
    Ok(results)
}

impl Store {
    /// Stores a new report and its `ReportSubmitted` event atomically. With an
    /// idempotency key that was already used, stores nothing and returns that report.
    pub async fn submit(&self, s: Submission) -> Result<Submitted, IntakeError> {
        let hash = s.idempotency_hash.clone();
        let (reply, outcome) = oneshot::channel();
        let job = Job {
            row: Row::new(s),
            reply,
        };
        let unavailable = || {
            IntakeError::Storage(custos_kit::storage::StorageError::Unavailable(
                sqlx::Error::PoolClosed,
            ))
        };
        self.queue.jobs.send(job).await.map_err(|_| unavailable())?;
        match outcome.await.map_err(|_| unavailable())?? {
            Some(row) => Ok(Submitted::Created(row)),
            None => {
                let hash = hash.ok_or_else(|| {
                    IntakeError::Corrupt("insert ignored without an idempotency key".into())
                })?;
                let row = self
                    .report_by_idempotency(hash)
                    .await?
                    .ok_or_else(|| IntakeError::Corrupt("idempotent report not found".into()))?;
                Ok(Submitted::Existing(row))
            }
        }
    }
}

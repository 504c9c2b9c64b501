//! Intake's store, written as the kit's design note says: functions that take the
//! caller's transaction (`&mut Tx`) to write, or any connection (`impl AsConn`) to read,
//! with each query written once and compiled for both backends by `with_conn!`. Writes
//! that others must hear of append their event to the outbox in the same transaction.
//! Submissions are the exception that proves the rule: they are group-committed by
//! [`Store`]'s writers, each batch one transaction.

mod amendments;
mod providers;
mod reports;
mod status;
mod submissions;

pub use amendments::{Amendment, add_follow_up, amend, follow_ups, revisions};
pub use providers::{
    ProviderReportRow, ProviderResponseRow, overdue_provider_reports, provider_report,
    provider_reports_for, provider_responses, record_fix_verdict, record_provider_report,
    record_provider_response,
};
pub use reports::{
    Change, FollowUpRow, ListFilter, Original, Page, ReportRow, ReportSummaryRow, RevisionRow,
    list, list_summaries, original, report, report_by_receipt, report_by_reference,
};
pub use status::{apply_assessment, reopen};
pub use submissions::{Submission, Submitted};

use custos_kit::storage::Db;

/// Holds the submission writers (group commit); everything else is a plain function.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    submit_queue: submissions::SubmitQueue,
}

impl Store {
    /// Needs a Tokio runtime: it starts the submission writers.
    pub fn new(db: Db) -> Self {
        let submit_queue = submissions::SubmitQueue::start(&db);
        Self { db, submit_queue }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Submissions waiting for a writer (for tests that must see a batch form).
    pub fn queued_submissions(&self) -> usize {
        self.submit_queue.queued()
    }
}

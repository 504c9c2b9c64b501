//! Intake's store: one implementation of every query, run on PostgreSQL or SQLite with
//! the kit's `with_pool!` (each body is compiled for both backends). Writes that others
//! must hear of append their event to the outbox in the same transaction.

mod amendments;
mod providers;
mod reports;
mod submissions;

pub use amendments::Amendment;
pub use providers::{ProviderReportRow, ProviderResponseRow};
pub use reports::{FollowUpRow, ListFilter, Original, Page, ReportRow, RevisionRow};
pub use submissions::{Submission, Submitted};

use custos_kit::{auth::Principal, db_time::DbTime, storage::Db, with_pool};
use uuid::Uuid;

use crate::error::IntakeError;

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

    /// Records that `actor` read `target_type` records `ids` (personal data is audited).
    pub async fn audit_reads(
        &self,
        actor: &Principal,
        action: &str,
        target_type: &str,
        ids: &[Uuid],
    ) -> Result<(), IntakeError> {
        if ids.is_empty() {
            return Ok(());
        }
        const INSERT: &str = "INSERT INTO audit_log (id, at, actor, roles, action, target_type, target_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let roles: Vec<&str> = actor.roles.iter().map(|r| r.as_str()).collect();
        let roles = roles.join(" ");
        let at = DbTime::now();
        with_pool!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            for id in ids {
                sqlx::query(INSERT)
                    .bind(Uuid::now_v7())
                    .bind(at)
                    .bind(&actor.subject)
                    .bind(&roles)
                    .bind(action)
                    .bind(target_type)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Audit entries for one target, oldest first (for tests and audit reports).
    pub async fn audit_entries(
        &self,
        target_id: &Uuid,
    ) -> Result<Vec<(String, String)>, IntakeError> {
        const SELECT: &str =
            "SELECT actor, action FROM audit_log WHERE target_id = $1 ORDER BY at, id";
        let rows = with_pool!(self.db.reader(), p => {
            sqlx::query_as::<_, (String, String)>(SELECT)
                .bind(target_id.to_string())
                .fetch_all(&p)
                .await?
        });
        Ok(rows)
    }
}

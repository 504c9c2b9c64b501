//! A series of events (policy 6, 14.2): the match keys of queued reports, the reports and
//! incidents related to one (sharing an inventory number, a location or the category,
//! within a window either side of its submission), and the "possible incident" flag.

use custos_kit::{
    storage::{AsConn, DbTime, Select, StorageError, Tx},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{assessment::IncidentState, report::TriageState};

/// What a related report shares with the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelatedBy {
    InventoryNumber,
    Location,
    Category,
}

/// The prefix of a stored key says what it is a digest of.
pub const INVENTORY_KEY: &str = "i:";
pub const LOCATION_KEY: &str = "l:";

/// Replaces a report's match keys (prefixed with [`INVENTORY_KEY`] or [`LOCATION_KEY`]).
/// An anonymous report keeps none, whatever an event carries (intake sends none for it;
/// this holds for events of any version, replayed or parked).
pub(super) async fn set_match_keys(
    tx: &mut Tx,
    report_id: Uuid,
    keys: &[String],
) -> Result<(), StorageError> {
    const CLEAR: &str = "DELETE FROM triage_match_keys WHERE report_id = $1";
    const ADD: &str = "INSERT INTO triage_match_keys (report_id, match_key, submitted_at) \
         SELECT report_id, $2, submitted_at FROM triage_entries \
         WHERE report_id = $1 AND NOT anonymous \
         ON CONFLICT (report_id, match_key) DO NOTHING";
    with_conn!(tx, c => {
        sqlx::query(CLEAR).bind(report_id).execute(&mut *c).await?;
        for key in keys {
            sqlx::query(ADD).bind(report_id).bind(key).execute(&mut *c).await?;
        }
    });
    Ok(())
}

/// A report found related to another, with the incident that holds it, if any.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct RelatedRow {
    pub report_id: Uuid,
    pub reference: String,
    pub category: String,
    pub submitted_at: DbTime,
    pub state: TriageState,
    /// The shared key (None: related by category).
    pub match_key: Option<String>,
    pub incident_id: Option<Uuid>,
    pub incident_reference: Option<String>,
    pub incident_title: Option<String>,
    pub incident_state: Option<IncidentState>,
}

/// An incident of the category declared within the window.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct IncidentRow {
    pub id: Uuid,
    pub reference: String,
    pub title: String,
    pub declared_at: DbTime,
}

/// The report's own category, time and incident, to look around.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Anchor {
    pub category: String,
    pub submitted_at: DbTime,
    pub own_incident: Option<Uuid>,
}

/// At most this many of a report's keys are looked up (intake sends one per inventory
/// number and location).
const MOST_KEYS: i64 = 16;

/// What is related to a report within `window` either side of its submission:
/// reports (not dismissed: the constant `state <> 3` matches migration 1003's partial
/// index) sharing a key or the category, newest first, at most `limit` rows per key and
/// for the category; and incidents (not closed, not the report's own) of the category
/// declared in the window. Each key is read on its own, newest first straight from the
/// key index, so that a key shared by thousands of reports costs a page, not a sort.
/// `None`: the report is not queued.
pub async fn related(
    mut conn: impl AsConn,
    report_id: Uuid,
    window: time::Duration,
    limit: i64,
    open_only: bool,
) -> Result<Option<(Anchor, Vec<RelatedRow>, Vec<IncidentRow>)>, StorageError> {
    // Open only (waiting or monitored): what a threshold counts, without rows of reports
    // in incidents using up the limit. `state <> 3` stays, for the partial index.
    let open = if open_only { " AND o.state <> 4" } else { "" };
    const ANCHOR: &str = "SELECT t.category, t.submitted_at, ir.incident_id AS own_incident \
         FROM triage_entries t LEFT JOIN incident_reports ir ON ir.report_id = t.report_id \
         WHERE t.report_id = $1";
    // Locations ("l:") first: at most two, and never crowded out by many inventory numbers.
    const KEYS: &str = "SELECT match_key FROM triage_match_keys WHERE report_id = $1 \
         ORDER BY match_key DESC LIMIT $2";
    const COLUMNS: &str = "o.report_id, o.reference, o.category, o.submitted_at, o.state";
    const JOINS: &str = "LEFT JOIN incident_reports ir ON ir.report_id = o.report_id \
         LEFT JOIN incidents i ON i.id = ir.incident_id";
    const INCIDENT: &str = "ir.incident_id, i.reference AS incident_reference, \
         i.title AS incident_title, i.state AS incident_state";
    let by_key = format!(
        "SELECT {COLUMNS}, k.match_key, {INCIDENT} FROM triage_match_keys k \
         JOIN triage_entries o ON o.report_id = k.report_id {JOINS} \
         WHERE k.match_key = $1 AND k.submitted_at >= $2 AND k.submitted_at <= $3 \
         AND k.report_id <> $4 AND o.state <> 3{open} \
         ORDER BY k.submitted_at DESC, k.report_id DESC LIMIT $5"
    );
    let by_category = format!(
        "SELECT {COLUMNS}, NULL AS match_key, {INCIDENT} FROM triage_entries o {JOINS} \
         WHERE o.category = $1 AND o.submitted_at >= $2 AND o.submitted_at <= $3 AND o.state <> 3{open} \
         AND o.report_id <> $4 ORDER BY o.submitted_at DESC, o.report_id DESC LIMIT $5"
    );
    const INCIDENTS: &str = "SELECT id, reference, title, declared_at FROM incidents \
         WHERE category = $1 AND declared_at >= $2 AND declared_at <= $3 AND state <> $4 \
         AND id NOT IN (SELECT incident_id FROM incident_reports WHERE report_id = $6) \
         ORDER BY declared_at DESC, id DESC LIMIT $5";
    let found = with_conn!(&mut conn, c => {
        let anchor: Option<Anchor> = sqlx::query_as(ANCHOR).bind(report_id).fetch_optional(&mut *c).await?;
        match anchor {
            None => None,
            Some(a) => {
                let from = DbTime::new(a.submitted_at.get() - window);
                let to = DbTime::new(a.submitted_at.get() + window);
                let keys: Vec<String> = sqlx::query_scalar(KEYS).bind(report_id).bind(MOST_KEYS).fetch_all(&mut *c).await?;
                let mut rows: Vec<RelatedRow> = Vec::new();
                for key in &keys {
                    rows.extend(sqlx::query_as::<_, RelatedRow>(sqlx::AssertSqlSafe(by_key.as_str()))
                        .bind(key).bind(from).bind(to).bind(report_id).bind(limit)
                        .fetch_all(&mut *c).await?);
                }
                rows.extend(sqlx::query_as::<_, RelatedRow>(sqlx::AssertSqlSafe(by_category.as_str()))
                    .bind(&a.category).bind(from).bind(to).bind(report_id).bind(limit)
                    .fetch_all(&mut *c).await?);
                let incidents: Vec<IncidentRow> = sqlx::query_as(INCIDENTS)
                    .bind(&a.category).bind(from).bind(to).bind(IncidentState::Closed).bind(limit).bind(report_id)
                    .fetch_all(&mut *c).await?;
                Some((a, rows, incidents))
            }
        }
    });
    Ok(found)
}

/// Raises the "possible incident" flag on these reports, in one statement (never lowers
/// it: the decision is the advisor's).
pub async fn flag_possible_incident(tx: &mut Tx, report_ids: &[Uuid]) -> Result<(), StorageError> {
    if report_ids.is_empty() {
        return Ok(());
    }
    let mut update = Select::new("UPDATE triage_entries SET possible_incident = TRUE");
    update.and_in("report_id", report_ids.iter().map(|&id| id.into()));
    update.and("NOT possible_incident", []);
    update.execute(tx).await?;
    Ok(())
}

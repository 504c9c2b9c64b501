//! The incident register as stored: incidents with their flags and officer, the access
//! list (need to know, 14.2.2) and the append-only actions log. Changes take the caller's
//! transaction and hold the incident's row while they decide.

use custos_kit::{
    storage::{AsConn, Conn, DbTime, JsonText, Select, StorageError, Tx, Value},
    with_conn,
};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{
    assessment::Impact,
    incident::{ActionKind, Breach, Flags, IncidentState, Review},
    matrix::Level,
};

/// An incident named by a caller: its id, or its reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IncidentKey {
    Id(Uuid),
    Reference(String),
}

/// An incident as stored, with the number of reports it holds.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct IncidentRow {
    pub id: Uuid,
    pub reference: String,
    pub title: String,
    pub summary: String,
    pub category: String,
    pub impact: JsonText<Impact>,
    pub overall_level: Level,
    pub state: IncidentState,
    pub officer: Option<String>,
    pub service_affecting: bool,
    pub business_services: JsonText<Vec<String>>,
    pub personal_data: bool,
    pub paper_records: bool,
    pub evidence_required: bool,
    pub expected_recovery_at: Option<DbTime>,
    pub declared_by: String,
    pub declared_at: DbTime,
    pub updated_at: DbTime,
    pub revision: i32,
    pub breach: Option<JsonText<Breach>>,
    pub review: Option<JsonText<Review>>,
    pub closed_at: Option<DbTime>,
    /// The title business continuity is shown.
    pub continuity_title: String,
    /// What business continuity is told is being done.
    pub continuity_statement: String,
    /// Service affecting at some time: every change of its public state is a notice.
    pub continuity_published: bool,
    pub ever_affected_services: JsonText<Vec<String>>,
    pub highest_level: Level,
    /// Kept by the database (a trigger on `incident_reports`, migration 1010).
    pub report_count: i32,
}

impl IncidentRow {
    pub fn flags(&self) -> Flags {
        Flags {
            service_affecting: self.service_affecting,
            business_services: self.business_services.0.clone(),
            personal_data: self.personal_data,
            paper_records: self.paper_records,
            evidence_required: self.evidence_required,
        }
    }

    pub fn set_flags(&mut self, f: Flags) {
        self.service_affecting = f.service_affecting;
        self.business_services = JsonText(f.business_services);
        self.personal_data = f.personal_data;
        self.paper_records = f.paper_records;
        self.evidence_required = f.evidence_required;
    }
}

/// The columns of an incident row (a macro, so that statements can be put together from
/// it at compile time).
macro_rules! incident_columns {
    () => {
        "i.id, i.reference, i.title, i.summary, i.category, i.impact, i.overall_level, \
         i.state, i.officer, i.service_affecting, i.business_services, i.personal_data, \
         i.paper_records, i.evidence_required, i.expected_recovery_at, i.declared_by, \
         i.declared_at, i.updated_at, i.revision, i.breach, i.review, i.closed_at, \
         i.continuity_title, i.continuity_statement, i.continuity_published, \
         i.ever_affected_services, \
         i.highest_level, i.report_count"
    };
}

const SELECT_INCIDENTS: &str = concat!("SELECT ", incident_columns!(), " FROM incidents i");

/// An incident and whether `$1` (a subject) is on its access list, in one statement:
/// deciding who may see it costs the same whether it exists or not.
const SELECT_SEEN: &str = concat!(
    "SELECT ",
    incident_columns!(),
    ", EXISTS (SELECT 1 FROM incident_access a WHERE a.incident_id = i.id \
     AND a.subject = $1) AS listed FROM incidents i"
);

/// An incident as a caller asks for it: the row, and whether they are on its list.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct SeenRow {
    #[sqlx(flatten)]
    pub row: IncidentRow,
    pub listed: bool,
}

/// One incident by its id or its reference (both unique): planned once.
fn by_key(select: &mut Select, key: &IncidentKey) {
    match key {
        IncidentKey::Id(id) => select.and("i.id = ?", [(*id).into()]),
        IncidentKey::Reference(r) => select.and("i.reference = ?", [r.as_str().into()]),
    }
    select.plan_once();
}

/// An incident by id or reference, and whether `subject` is on its access list.
pub async fn incident_for(
    conn: impl AsConn,
    key: &IncidentKey,
    subject: &str,
) -> Result<Option<SeenRow>, StorageError> {
    let mut select = Select::with_values(SELECT_SEEN, [subject.into()]);
    by_key(&mut select, key);
    Ok(select.fetch_all(conn).await?.pop())
}

/// As [`incident_for`], and held until the transaction ends (PostgreSQL: its row is
/// locked; SQLite: the transaction is the only writer), so that what a change decides
/// from it still holds when it is written.
pub async fn hold_incident_for(
    tx: &mut Tx,
    key: &IncidentKey,
    subject: &str,
) -> Result<Option<SeenRow>, StorageError> {
    let mut select = Select::with_values(SELECT_SEEN, [subject.into()]);
    by_key(&mut select, key);
    if matches!(tx.conn(), Conn::Postgres(_)) {
        select.then("FOR UPDATE OF i");
    }
    Ok(select.fetch_all(&mut *tx).await?.pop())
}

/// An incident by id or reference, held (as [`hold_incident_for`]).
pub async fn hold_incident(
    tx: &mut Tx,
    key: &IncidentKey,
) -> Result<Option<IncidentRow>, StorageError> {
    let mut select = Select::new(SELECT_INCIDENTS);
    by_key(&mut select, key);
    if matches!(tx.conn(), Conn::Postgres(_)) {
        select.then("FOR UPDATE OF i");
    }
    Ok(select.fetch_all(&mut *tx).await?.pop())
}

/// Holds the incident `key` names and the one `report_id` is linked to now (if any), in
/// id order (PostgreSQL: their rows locked; SQLite: the transaction is the only writer).
/// Moving a report changes both incidents' report counts (the database's trigger,
/// migration 1010): taken in one order, two opposite moves wait for each other instead of
/// deadlocking.
pub async fn hold_for_move(
    tx: &mut Tx,
    key: &IncidentKey,
    report_id: Uuid,
) -> Result<(), StorageError> {
    if !matches!(tx.conn(), Conn::Postgres(_)) {
        return Ok(());
    }
    let mut select = Select::new("SELECT i.id FROM incidents i");
    match key {
        IncidentKey::Id(id) => select.and(
            "(i.id = ? OR i.id = \
             (SELECT r.incident_id FROM incident_reports r WHERE r.report_id = ?))",
            [(*id).into(), report_id.into()],
        ),
        IncidentKey::Reference(r) => select.and(
            "(i.reference = ? OR i.id = \
             (SELECT r.incident_id FROM incident_reports r WHERE r.report_id = ?))",
            [r.as_str().into(), report_id.into()],
        ),
    }
    select.then("ORDER BY i.id FOR UPDATE OF i");
    select.plan_once();
    select.fetch_all::<(Uuid,)>(&mut *tx).await?;
    Ok(())
}

/// Writes an incident's changeable fields as `row` has them, at the next revision, if it
/// is still at `row.revision`. `Ok(false)`: it was not, and nothing was written.
pub async fn save(tx: &mut Tx, row: &IncidentRow) -> Result<bool, StorageError> {
    const SQL: &str = "UPDATE incidents SET title = $3, summary = $4, state = $5, officer = $6, \
         service_affecting = $7, business_services = $8, personal_data = $9, \
         paper_records = $10, evidence_required = $11, expected_recovery_at = $12, \
         updated_at = $13, impact = $14, overall_level = $15, breach = $16, review = $17, \
         closed_at = $18, continuity_statement = $19, continuity_published = $20, \
         ever_affected_services = $21, highest_level = $22, continuity_title = $23, \
         revision = revision + 1 \
         WHERE id = $1 AND revision = $2";
    let saved = with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.id)
            .bind(row.revision)
            .bind(&row.title)
            .bind(&row.summary)
            .bind(row.state)
            .bind(&row.officer)
            .bind(row.service_affecting)
            .bind(&row.business_services)
            .bind(row.personal_data)
            .bind(row.paper_records)
            .bind(row.evidence_required)
            .bind(row.expected_recovery_at)
            .bind(row.updated_at)
            .bind(&row.impact)
            .bind(row.overall_level)
            .bind(&row.breach)
            .bind(&row.review)
            .bind(row.closed_at)
            .bind(&row.continuity_statement)
            .bind(row.continuity_published)
            .bind(&row.ever_affected_services)
            .bind(row.highest_level)
            .bind(&row.continuity_title)
            .execute(&mut *c)
            .await?
            .rows_affected()
            == 1
    });
    Ok(saved)
}

/// Whether `subject` is on the incident's access list.
pub async fn is_listed(
    mut conn: impl AsConn,
    incident_id: Uuid,
    subject: &str,
) -> Result<bool, StorageError> {
    const SQL: &str = "SELECT 1 FROM incident_access WHERE incident_id = $1 AND subject = $2";
    let found: Option<i32> = with_conn!(&mut conn, c => {
        sqlx::query_scalar(SQL).bind(incident_id).bind(subject).fetch_optional(&mut *c).await?
    });
    Ok(found.is_some())
}

/// One person on an access list.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct AccessRow {
    pub subject: String,
    pub granted_by: String,
    pub granted_at: DbTime,
}

/// Puts `subject` on the access list. `Ok(Some(sequence))`: they were added, and this is
/// the incident's access sequence now; `Ok(None)`: they were on it already.
pub async fn grant(
    tx: &mut Tx,
    incident_id: Uuid,
    access: &AccessRow,
) -> Result<Option<i32>, StorageError> {
    const INSERT: &str = "INSERT INTO incident_access (incident_id, subject, granted_by, \
         granted_at) VALUES ($1, $2, $3, $4) ON CONFLICT (incident_id, subject) DO NOTHING";
    let added = with_conn!(tx, c => {
        sqlx::query(INSERT)
            .bind(incident_id)
            .bind(&access.subject)
            .bind(&access.granted_by)
            .bind(access.granted_at)
            .execute(&mut *c)
            .await?
            .rows_affected()
            == 1
    });
    if !added {
        return Ok(None);
    }
    Ok(Some(next_access_sequence(tx, incident_id).await?))
}

/// Takes `subject` off the access list. `Ok(Some(sequence))`: they were on it.
pub async fn revoke(
    tx: &mut Tx,
    incident_id: Uuid,
    subject: &str,
) -> Result<Option<i32>, StorageError> {
    const DELETE: &str = "DELETE FROM incident_access WHERE incident_id = $1 AND subject = $2";
    let removed = with_conn!(tx, c => {
        sqlx::query(DELETE).bind(incident_id).bind(subject).execute(&mut *c).await?.rows_affected()
            == 1
    });
    if !removed {
        return Ok(None);
    }
    Ok(Some(next_access_sequence(tx, incident_id).await?))
}

async fn next_access_sequence(tx: &mut Tx, incident_id: Uuid) -> Result<i32, StorageError> {
    const SQL: &str = "UPDATE incidents SET access_sequence = access_sequence + 1 WHERE id = $1 \
         RETURNING access_sequence";
    Ok(with_conn!(tx, c => {
        sqlx::query_scalar(SQL).bind(incident_id).fetch_one(&mut *c).await?
    }))
}

/// One person's entry on an access list.
pub async fn access_entry(
    mut conn: impl AsConn,
    incident_id: Uuid,
    subject: &str,
) -> Result<Option<AccessRow>, StorageError> {
    const SQL: &str = "SELECT subject, granted_by, granted_at FROM incident_access \
         WHERE incident_id = $1 AND subject = $2";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as(SQL).bind(incident_id).bind(subject).fetch_optional(&mut *c).await?
    }))
}

/// Keyset position in an access list: entries strictly after this, in the order access
/// was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPage {
    pub granted_at: DbTime,
    pub subject: String,
}

/// A page of the access list, in the order access was given.
pub async fn access_list(
    conn: impl AsConn,
    incident_id: Uuid,
    after: Option<AccessPage>,
    limit: i64,
) -> Result<Vec<AccessRow>, StorageError> {
    let mut select = Select::new("SELECT subject, granted_by, granted_at FROM incident_access");
    select.and("incident_id = ?", [incident_id.into()]);
    if let Some(p) = after {
        select.and(
            "(granted_at, subject) > (?, ?)",
            [p.granted_at.into(), p.subject.into()],
        );
    }
    select.then("ORDER BY granted_at, subject");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// An entry of the actions log.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ActionRow {
    pub id: Uuid,
    pub sequence: i32,
    pub kind: ActionKind,
    pub detail: String,
    pub subject: Option<String>,
    pub actor: String,
    pub recorded_at: DbTime,
}

/// Appends an entry to the incident's actions log, at the incident's next sequence.
pub async fn append_action(
    tx: &mut Tx,
    incident_id: Uuid,
    kind: ActionKind,
    detail: &str,
    subject: Option<&str>,
    actor: &str,
    at: DbTime,
) -> Result<ActionRow, StorageError> {
    const NEXT: &str = "UPDATE incidents SET action_sequence = action_sequence + 1 WHERE id = $1 \
         RETURNING action_sequence";
    const INSERT: &str = "INSERT INTO incident_actions (id, incident_id, sequence, kind, detail, \
         subject, actor, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    let row = ActionRow {
        id: Uuid::now_v7(),
        sequence: 0,
        kind,
        detail: detail.to_owned(),
        subject: subject.map(str::to_owned),
        actor: actor.to_owned(),
        recorded_at: at,
    };
    let sequence: i32 = with_conn!(tx, c => {
        let sequence: i32 = sqlx::query_scalar(NEXT).bind(incident_id).fetch_one(&mut *c).await?;
        sqlx::query(INSERT)
            .bind(row.id)
            .bind(incident_id)
            .bind(sequence)
            .bind(row.kind)
            .bind(&row.detail)
            .bind(&row.subject)
            .bind(&row.actor)
            .bind(row.recorded_at)
            .execute(&mut *c)
            .await?;
        sequence
    });
    Ok(ActionRow { sequence, ..row })
}

/// A page of the actions log, oldest first: entries after sequence `after`, of any of
/// `kinds` (none: all).
pub async fn actions(
    conn: impl AsConn,
    incident_id: Uuid,
    kinds: &[ActionKind],
    after: Option<i32>,
    limit: i64,
) -> Result<Vec<ActionRow>, StorageError> {
    let mut select = Select::new(
        "SELECT id, sequence, kind, detail, subject, actor, recorded_at FROM incident_actions",
    );
    select.and("incident_id = ?", [incident_id.into()]);
    select.and_in("kind", kinds.iter().map(|k| Value::of(*k)));
    if let Some(sequence) = after {
        select.and("sequence > ?", [sequence.into()]);
    }
    select.then("ORDER BY sequence");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// ListIncidents' filter, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    pub states: Vec<IncidentState>,
    pub levels: Vec<Level>,
    pub categories: Vec<String>,
    pub service_affecting: Option<bool>,
    pub personal_data: Option<bool>,
    pub officer: Option<String>,
    pub declared_after: Option<DbTime>,
    pub declared_before: Option<DbTime>,
}

/// Keyset position: incidents strictly after this, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentPage {
    pub declared_at: DbTime,
    pub id: Uuid,
}

/// A page of the register, newest first, built from the filters given. `viewer`: only
/// the incidents whose access list holds this subject (anyone but advisors and services).
pub async fn list_incidents(
    mut conn: impl AsConn,
    filter: &IncidentFilter,
    viewer: Option<&str>,
    after: Option<IncidentPage>,
    limit: i64,
) -> Result<Vec<IncidentRow>, StorageError> {
    // With two filters or more (the time window aside: every index orders by time), the
    // index range the scan follows serves at most one of them and the others are checked
    // on each row it reaches: a combination that one incident in a hundred passes would
    // read a hundred rows for each it returned. Then, on PostgreSQL, the page's keys come
    // first, from an index that holds every filtered column (1008: an index-only scan,
    // where autovacuum has marked the pages all-visible), and only the page's rows are
    // read, by id. With one filter or none, the rows the scan reaches are mostly returned
    // and the second step would cost more than it saves; SQLite's indexes hold no extra
    // columns, so it reads the same rows either way and takes one step.
    let filters = [
        viewer.is_some(),
        !filter.states.is_empty(),
        !filter.levels.is_empty(),
        !filter.categories.is_empty(),
        filter.service_affecting.is_some(),
        filter.personal_data.is_some(),
        filter.officer.is_some(),
    ];
    let keys_first = matches!(conn.conn(), Conn::Postgres(_))
        && filters.iter().filter(|given| **given).count() >= 2;
    let mut select = Select::new(if keys_first {
        "SELECT i.id FROM incidents i"
    } else {
        SELECT_INCIDENTS
    });
    if let Some(subject) = viewer {
        select.and(
            "i.id IN (SELECT a.incident_id FROM incident_access a WHERE a.subject = ?)",
            [subject.into()],
        );
    }
    // One statement, whatever the states: measured on a million incidents, one ordered
    // range per state (a UNION of them) was slower for most combinations than the plan
    // PostgreSQL chooses (it can start from the category or time index instead).
    select.and_in("i.state", filter.states.iter().map(|s| Value::of(*s)));
    select.and_in(
        "i.overall_level",
        filter.levels.iter().map(|l| Value::of(*l)),
    );
    select.and_in(
        "i.category",
        filter.categories.iter().map(|c| Value::from(c.as_str())),
    );
    // Constants, not parameters: the partial indexes are for `true`.
    match filter.service_affecting {
        Some(true) => select.and("i.service_affecting", []),
        Some(false) => select.and("NOT i.service_affecting", []),
        None => {}
    }
    match filter.personal_data {
        Some(true) => select.and("i.personal_data", []),
        Some(false) => select.and("NOT i.personal_data", []),
        None => {}
    }
    select.and_eq("i.officer", filter.officer.as_deref());
    if let Some(at) = filter.declared_after {
        select.and("i.declared_at >= ?", [at.into()]);
    }
    if let Some(at) = filter.declared_before {
        select.and("i.declared_at < ?", [at.into()]);
    }
    if let Some(p) = after {
        select.and(
            "(i.declared_at, i.id) < (?, ?)",
            [p.declared_at.into(), p.id.into()],
        );
    }
    select.then("ORDER BY i.declared_at DESC, i.id DESC");
    select.limit(limit);
    if keys_first {
        select = select.within(
            concat!("SELECT ", incident_columns!(), " FROM incidents i JOIN "),
            " AS k ON k.id = i.id ORDER BY i.declared_at DESC, i.id DESC",
        );
    }
    select.fetch_all(conn).await
}

/// Incidents that are or were service affecting (published to business continuity),
/// newest first: those that reached `minimum_level` (0: any) and, if `services` are
/// given, affected any of them.
pub async fn published_incidents(
    conn: impl AsConn,
    minimum_level: i16,
    services: &[String],
    after: Option<IncidentPage>,
    limit: i64,
) -> Result<Vec<IncidentRow>, StorageError> {
    let mut select = Select::new(SELECT_INCIDENTS);
    select.and("i.continuity_published", []);
    if minimum_level > 0 {
        select.and("i.highest_level >= ?", [minimum_level.into()]);
    }
    // The JSON array holds each code quoted; codes may hold `_`, LIKE's wildcard
    // (`!` escapes: a backslash means different things to PostgreSQL as
    // standard_conforming_strings is set, and codes hold no `!`.)
    select.and_any(
        "i.ever_affected_services LIKE ? ESCAPE '!'",
        services
            .iter()
            .map(|s| Value::from(format!("%\"{}\"%", s.replace('_', "!_")))),
    );
    if let Some(p) = after {
        select.and(
            "(i.declared_at, i.id) < (?, ?)",
            [p.declared_at.into(), p.id.into()],
        );
    }
    select.then("ORDER BY i.declared_at DESC, i.id DESC");
    select.limit(limit);
    select.fetch_all(conn).await
}

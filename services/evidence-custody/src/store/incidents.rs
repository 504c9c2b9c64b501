//! The local copy of classification's incidents: reference, officer, the evidence flag,
//! and the access list (who may see the incident's evidence).

use custos_kit::{
    storage::{AsConn, Select, StorageError, Tx},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct IncidentRow {
    pub id: Uuid,
    pub reference: String,
    pub officer: String,
    pub evidence_required: bool,
    pub officer_revision: i32,
    pub flags_revision: i32,
}

const COLUMNS: &str = "SELECT id, reference, officer, evidence_required, officer_revision, flags_revision FROM incidents";

/// Records a declared incident (a redelivered declaration changes nothing). Events
/// other than the declaration call it with `false` to make sure the row exists.
pub async fn declare_incident(
    tx: &mut Tx,
    id: Uuid,
    reference: &str,
    evidence_required: bool,
) -> Result<(), StorageError> {
    // An access or officer event applied before the declaration (parked, then applied)
    // created the row with no flags: the declaration's flag applies unless a later
    // flags event already did.
    const SQL: &str = "INSERT INTO incidents (id, reference, officer, evidence_required, \
         officer_revision, flags_revision) VALUES ($1, $2, '', $3, 0, 0) ON CONFLICT (id) DO UPDATE \
         SET evidence_required = excluded.evidence_required WHERE incidents.flags_revision = 0";
    with_conn!(tx, c => {
        sqlx::query(SQL).bind(id).bind(reference).bind(evidence_required).execute(&mut *c).await?;
    });
    Ok(())
}

/// Sets the officer as of `revision`, if newer than what was applied; false when the
/// incident is unknown or the change is older.
pub async fn set_officer(
    tx: &mut Tx,
    id: Uuid,
    officer: &str,
    revision: i32,
) -> Result<bool, StorageError> {
    const SQL: &str = "UPDATE incidents SET officer = $2, officer_revision = $3 \
         WHERE id = $1 AND officer_revision < $3";
    let n = with_conn!(tx, c => {
        sqlx::query(SQL).bind(id).bind(officer).bind(revision).execute(&mut *c).await?.rows_affected()
    });
    Ok(n > 0)
}

/// Sets the evidence flag as of `revision`, if newer than what was applied.
pub async fn set_flags(
    tx: &mut Tx,
    id: Uuid,
    evidence_required: bool,
    revision: i32,
) -> Result<bool, StorageError> {
    const SQL: &str = "UPDATE incidents SET evidence_required = $2, flags_revision = $3 \
         WHERE id = $1 AND flags_revision < $3";
    let n = with_conn!(tx, c => {
        sqlx::query(SQL).bind(id).bind(evidence_required).bind(revision).execute(&mut *c).await?.rows_affected()
    });
    Ok(n > 0)
}

/// Grants or revokes `subject`'s access as of `sequence`, if newer than the last change
/// applied for that subject.
pub async fn set_access(
    tx: &mut Tx,
    incident_id: Uuid,
    subject: &str,
    granted: bool,
    sequence: i32,
) -> Result<bool, StorageError> {
    const SQL: &str = "INSERT INTO incident_access (incident_id, subject, granted, access_sequence) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (incident_id, subject) DO UPDATE \
         SET granted = excluded.granted, access_sequence = excluded.access_sequence \
         WHERE incident_access.access_sequence < excluded.access_sequence";
    let n = with_conn!(tx, c => {
        sqlx::query(SQL).bind(incident_id).bind(subject).bind(granted).bind(sequence).execute(&mut *c).await?.rows_affected()
    });
    Ok(n > 0)
}

pub async fn incident(conn: impl AsConn, id: Uuid) -> Result<Option<IncidentRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.and("id = ?", [id.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

pub async fn incident_by_reference(
    conn: impl AsConn,
    reference: &str,
) -> Result<Option<IncidentRow>, StorageError> {
    let mut select = Select::new(COLUMNS);
    select.and("reference = ?", [reference.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

/// Whether `subject` is on the incident's access list.
pub async fn can_see(
    mut conn: impl AsConn,
    incident_id: Uuid,
    subject: &str,
) -> Result<bool, StorageError> {
    const SQL: &str =
        "SELECT COUNT(*) FROM incident_access WHERE incident_id = $1 AND subject = $2 AND granted";
    let n: i64 = with_conn!(&mut conn, c => {
        sqlx::query_scalar(SQL).bind(incident_id).bind(subject).fetch_one(&mut *c).await?
    });
    Ok(n > 0)
}

/// The incidents whose access lists name `subject`.
pub async fn visible_incidents(
    mut conn: impl AsConn,
    subject: &str,
) -> Result<Vec<Uuid>, StorageError> {
    const SQL: &str = "SELECT incident_id FROM incident_access WHERE subject = $1 AND granted ORDER BY incident_id";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_scalar(SQL).bind(subject).fetch_all(&mut *c).await?
    }))
}

//! An incident's history beside its row: every assessment of its impact, and its costs.
//! Both are appended, never changed (the database refuses to).

use custos_kit::{
    storage::{AsConn, DbTime, JsonText, Select, StorageError, Tx},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::assessment::Impact;

/// One assessment of an incident's impact.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ImpactRow {
    pub sequence: i32,
    pub impact: JsonText<Impact>,
    pub reason: String,
    pub assessed_by: String,
    pub assessed_at: DbTime,
}

/// Records an assessment of the incident's impact at its next sequence (1 is the one it
/// was declared with); returns the sequence.
pub async fn append_impact(
    tx: &mut Tx,
    incident_id: Uuid,
    impact: &Impact,
    reason: &str,
    assessed_by: &str,
    at: DbTime,
) -> Result<i32, StorageError> {
    const NEXT: &str = "UPDATE incidents SET impact_sequence = impact_sequence + 1 WHERE id = $1 \
         RETURNING impact_sequence";
    let sequence: i32 = with_conn!(tx, c => {
        sqlx::query_scalar(NEXT).bind(incident_id).fetch_one(&mut *c).await?
    });
    insert_impact(tx, incident_id, sequence, impact, reason, assessed_by, at).await?;
    Ok(sequence)
}

/// Writes one row of the impact history.
pub(super) async fn insert_impact(
    tx: &mut Tx,
    incident_id: Uuid,
    sequence: i32,
    impact: &Impact,
    reason: &str,
    assessed_by: &str,
    at: DbTime,
) -> Result<(), StorageError> {
    const INSERT: &str = "INSERT INTO incident_impacts (incident_id, sequence, impact, \
         overall_level, reason, assessed_by, assessed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    with_conn!(tx, c => {
        sqlx::query(INSERT)
            .bind(incident_id)
            .bind(sequence)
            .bind(JsonText(impact))
            .bind(impact.overall)
            .bind(reason)
            .bind(assessed_by)
            .bind(at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// A page of the impact history, oldest first, after sequence `after`.
pub async fn impacts(
    conn: impl AsConn,
    incident_id: Uuid,
    after: Option<i32>,
    limit: i64,
) -> Result<Vec<ImpactRow>, StorageError> {
    let mut select = Select::new(
        "SELECT sequence, impact, reason, assessed_by, assessed_at FROM incident_impacts",
    );
    select.and("incident_id = ?", [incident_id.into()]);
    if let Some(sequence) = after {
        select.and("sequence > ?", [sequence.into()]);
    }
    select.then("ORDER BY sequence");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// One item of an incident's costs.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct CostRow {
    pub id: Uuid,
    pub category: String,
    /// In minor units of `currency` (pence).
    pub amount_minor: i64,
    pub currency: String,
    /// The currency's minor unit digits when recorded (2 for GBP).
    pub minor_digits: i16,
    pub description: String,
    pub recorded_by: String,
    pub recorded_at: DbTime,
}

/// Adds an item to the incident's costs.
pub async fn add_cost(tx: &mut Tx, incident_id: Uuid, cost: &CostRow) -> Result<(), StorageError> {
    const INSERT: &str = "INSERT INTO incident_costs (id, incident_id, category, amount_minor, \
         currency, minor_digits, description, recorded_by, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    with_conn!(tx, c => {
        sqlx::query(INSERT)
            .bind(cost.id)
            .bind(incident_id)
            .bind(&cost.category)
            .bind(cost.amount_minor)
            .bind(&cost.currency)
            .bind(cost.minor_digits)
            .bind(&cost.description)
            .bind(&cost.recorded_by)
            .bind(cost.recorded_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// A page of the incident's costs, oldest first (ids are time-ordered), after `after`.
pub async fn costs(
    conn: impl AsConn,
    incident_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CostRow>, StorageError> {
    let mut select = Select::new(
        "SELECT id, category, amount_minor, currency, minor_digits, description, recorded_by, \
         recorded_at FROM incident_costs",
    );
    select.and("incident_id = ?", [incident_id.into()]);
    if let Some(id) = after {
        select.and("id > ?", [id.into()]);
    }
    select.then("ORDER BY id");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// The sum of the incident's costs in each currency: `(currency, minor digits, sum)`.
pub async fn cost_totals(
    mut conn: impl AsConn,
    incident_id: Uuid,
) -> Result<Vec<(String, i16, i64)>, StorageError> {
    const SQL: &str = "SELECT currency, minor_digits, CAST(SUM(amount_minor) AS BIGINT) \
         FROM incident_costs WHERE incident_id = $1 GROUP BY currency, minor_digits \
         ORDER BY currency, minor_digits";
    Ok(with_conn!(&mut conn, c => {
        sqlx::query_as(SQL).bind(incident_id).fetch_all(&mut *c).await?
    }))
}

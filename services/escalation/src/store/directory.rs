//! The directory's tables: contacts, the policy's lists, and each trigger's policy.
//! Writes take the caller's transaction; reads any connection.

use custos_kit::{
    storage::{AsConn, Conn, DbTime, JsonText, Select, StorageError, Tx, Value},
    with_conn,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::directory::{ListKind, Policy, Tier, Trigger};

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ContactRow {
    pub id: Uuid,
    pub display_name: String,
    pub job_title: String,
    pub email: String,
    pub deputy_id: Option<Uuid>,
    pub token_subject: Option<String>,
    pub active: bool,
    pub revision: i32,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

const CONTACT_COLUMNS: &str = "SELECT id, display_name, job_title, email, deputy_id, token_subject, \
     active, revision, created_at, updated_at FROM contacts";

/// Adds a contact.
pub async fn insert_contact(tx: &mut Tx, row: &ContactRow) -> Result<(), StorageError> {
    const SQL: &str = "INSERT INTO contacts (id, display_name, job_title, email, deputy_id, \
         token_subject, active, revision, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.id)
            .bind(&row.display_name)
            .bind(&row.job_title)
            .bind(&row.email)
            .bind(row.deputy_id)
            .bind(&row.token_subject)
            .bind(row.active)
            .bind(row.revision)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// A contact by id.
pub async fn contact(conn: impl AsConn, id: Uuid) -> Result<Option<ContactRow>, StorageError> {
    let mut select = Select::new(CONTACT_COLUMNS);
    select.and("id = ?", [id.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

/// A contact by id, locked until the transaction ends (PostgreSQL; SQLite's one writer
/// already excludes the others).
pub async fn hold_contact(tx: &mut Tx, id: Uuid) -> Result<Option<ContactRow>, StorageError> {
    let mut select = Select::new(CONTACT_COLUMNS);
    select.and("id = ?", [id.into()]);
    if matches!(tx.conn(), Conn::Postgres(_)) {
        select.then("FOR UPDATE");
    }
    Ok(select.fetch_all(&mut *tx).await?.pop())
}

/// The contact whose identity-provider subject is `subject`.
pub async fn contact_by_subject(
    conn: impl AsConn,
    subject: &str,
) -> Result<Option<ContactRow>, StorageError> {
    let mut select = Select::new(CONTACT_COLUMNS);
    select.and("token_subject = ?", [subject.into()]);
    Ok(select.fetch_all(conn).await?.pop())
}

/// The contacts among `ids` (any order; missing ones left out).
pub async fn contacts_among(
    conn: impl AsConn,
    ids: &[Uuid],
) -> Result<Vec<ContactRow>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = Select::new(CONTACT_COLUMNS);
    select.and_in("id", ids.iter().map(|id| Value::from(*id)));
    select.fetch_all(conn).await
}

/// A page of contacts by display name, after `after` (name, id).
pub async fn list_contacts(
    conn: impl AsConn,
    include_inactive: bool,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<ContactRow>, StorageError> {
    let mut select = Select::new(CONTACT_COLUMNS);
    if !include_inactive {
        select.and("active = ?", [true.into()]);
    }
    if let Some((name, id)) = after {
        select.and("(display_name, id) > (?, ?)", [name.into(), id.into()]);
    }
    select.then("ORDER BY display_name, id");
    select.limit(limit);
    select.fetch_all(conn).await
}

/// Writes a held contact's fields at the next revision (the caller checked the revision
/// it was sent against the held row).
pub async fn save_contact(tx: &mut Tx, row: &ContactRow) -> Result<(), StorageError> {
    const SQL: &str = "UPDATE contacts SET display_name = $2, job_title = $3, email = $4, \
         deputy_id = $5, token_subject = $6, active = $7, revision = $8, updated_at = $9 WHERE id = $1";
    with_conn!(tx, c => {
        sqlx::query(SQL)
            .bind(row.id)
            .bind(&row.display_name)
            .bind(&row.job_title)
            .bind(&row.email)
            .bind(row.deputy_id)
            .bind(&row.token_subject)
            .bind(row.active)
            .bind(row.revision)
            .bind(row.updated_at)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// Active contacts whose deputy is `id`.
pub async fn deputising_for(conn: impl AsConn, id: Uuid) -> Result<Vec<Uuid>, StorageError> {
    let mut select = Select::new("SELECT id FROM contacts");
    select.and("deputy_id = ?", [id.into()]);
    select.and("active = ?", [true.into()]);
    let rows: Vec<(Uuid,)> = select.fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// A list's revision and members.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRow {
    pub kind: ListKind,
    pub revision: i32,
    pub updated_at: Option<DbTime>,
    pub contact_ids: Vec<Uuid>,
}

/// Every list (those never set empty, at revision 0), in the order of [`ListKind::ALL`],
/// read in one statement (one snapshot).
pub async fn lists(mut conn: impl AsConn) -> Result<Vec<ListRow>, StorageError> {
    const SQL: &str = "SELECT l.kind, l.revision, l.updated_at, m.contact_id FROM contact_lists l \
         LEFT JOIN contact_list_members m ON m.kind = l.kind ORDER BY l.kind, m.position";
    type Row = (ListKind, i32, DbTime, Option<Uuid>);
    let rows: Vec<Row> = with_conn!(&mut conn, c => {
        sqlx::query_as(SQL).fetch_all(&mut *c).await?
    });
    Ok(ListKind::ALL
        .iter()
        .map(|kind| {
            let of: Vec<&Row> = rows.iter().filter(|r| r.0 == *kind).collect();
            ListRow {
                kind: *kind,
                revision: of.first().map_or(0, |h| h.1),
                updated_at: of.first().map(|h| h.2),
                contact_ids: of.iter().filter_map(|r| r.3).collect(),
            }
        })
        .collect())
}

/// The new revision after `expected`, if there is one.
fn next(expected: i32) -> Option<i32> {
    expected.checked_add(1)
}

/// Replaces a list's members if it is still at `expected` (0: never set); returns the
/// new revision, or `None` if it was not, and then nothing was written.
pub async fn set_list(
    tx: &mut Tx,
    kind: ListKind,
    expected: i32,
    contact_ids: &[Uuid],
    at: DbTime,
) -> Result<Option<i32>, StorageError> {
    const CREATE: &str = "INSERT INTO contact_lists (kind, revision, updated_at) VALUES ($1, 1, $2) \
         ON CONFLICT (kind) DO NOTHING RETURNING revision";
    const BUMP: &str = "UPDATE contact_lists SET revision = $3, updated_at = $2 \
         WHERE kind = $1 AND revision = $4 RETURNING revision";
    const CLEAR: &str = "DELETE FROM contact_list_members WHERE kind = $1";
    const ADD: &str =
        "INSERT INTO contact_list_members (kind, position, contact_id) VALUES ($1, $2, $3)";
    let Some(new) = next(expected) else {
        return Ok(None);
    };
    let revision: Option<i32> = with_conn!(tx, c => {
        if expected == 0 {
            sqlx::query_scalar(CREATE).bind(kind).bind(at).fetch_optional(&mut *c).await?
        } else {
            sqlx::query_scalar(BUMP).bind(kind).bind(at).bind(new).bind(expected).fetch_optional(&mut *c).await?
        }
    });
    if revision.is_none() {
        return Ok(None);
    }
    with_conn!(tx, c => {
        sqlx::query(CLEAR).bind(kind).execute(&mut *c).await?;
        for (position, id) in contact_ids.iter().enumerate() {
            let position = i32::try_from(position).unwrap_or(i32::MAX);
            sqlx::query(ADD).bind(kind).bind(position).bind(*id).execute(&mut *c).await?;
        }
    });
    Ok(revision)
}

/// Takes a contact off every list (bumping those lists' revisions).
pub async fn remove_from_lists(tx: &mut Tx, id: Uuid, at: DbTime) -> Result<(), StorageError> {
    const BUMP: &str = "UPDATE contact_lists SET revision = revision + 1, updated_at = $2 \
         WHERE kind IN (SELECT kind FROM contact_list_members WHERE contact_id = $1)";
    const REMOVE: &str = "DELETE FROM contact_list_members WHERE contact_id = $1";
    with_conn!(tx, c => {
        sqlx::query(BUMP).bind(id).bind(at).execute(&mut *c).await?;
        sqlx::query(REMOVE).bind(id).execute(&mut *c).await?;
    });
    Ok(())
}

/// A trigger's stored policy.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct PolicyRow {
    pub trigger: Trigger,
    pub policy: JsonText<Policy>,
    pub revision: i32,
    pub updated_at: DbTime,
    pub updated_by: String,
}

/// Every stored policy.
pub async fn policies(conn: impl AsConn) -> Result<Vec<PolicyRow>, StorageError> {
    let mut select = Select::new(
        "SELECT trigger, policy, revision, updated_at, updated_by FROM escalation_policies",
    );
    select.then("ORDER BY trigger");
    select.fetch_all(conn).await
}

/// A trigger's stored policy, if one was set.
pub async fn policy(
    conn: impl AsConn,
    trigger: Trigger,
) -> Result<Option<PolicyRow>, StorageError> {
    let mut select = Select::new(
        "SELECT trigger, policy, revision, updated_at, updated_by FROM escalation_policies",
    );
    select.and("trigger = ?", [Value::of(trigger)]);
    Ok(select.fetch_all(conn).await?.pop())
}

/// Replaces a trigger's policy if it is still at `expected` (0: the shipped default);
/// returns the new revision, or `None` if it was not, and then nothing was written.
pub async fn set_policy(
    tx: &mut Tx,
    trigger: Trigger,
    expected: i32,
    policy: &Policy,
    at: DbTime,
    by: &str,
) -> Result<Option<i32>, StorageError> {
    const CREATE: &str = "INSERT INTO escalation_policies (trigger, policy, revision, updated_at, \
         updated_by) VALUES ($1, $2, 1, $3, $4) ON CONFLICT (trigger) DO NOTHING RETURNING revision";
    const REPLACE: &str = "UPDATE escalation_policies SET policy = $2, revision = $5, \
         updated_at = $3, updated_by = $4 WHERE trigger = $1 AND revision = $6 RETURNING revision";
    let Some(new) = next(expected) else {
        return Ok(None);
    };
    let revision: Option<i32> = with_conn!(tx, c => {
        if expected == 0 {
            sqlx::query_scalar(CREATE).bind(trigger).bind(JsonText(policy)).bind(at).bind(by)
                .fetch_optional(&mut *c).await?
        } else {
            sqlx::query_scalar(REPLACE).bind(trigger).bind(JsonText(policy)).bind(at).bind(by)
                .bind(new).bind(expected).fetch_optional(&mut *c).await?
        }
    });
    Ok(revision)
}

/// A person a tier names, once, in the order the tier names them: its contacts first,
/// then each list's members. Deactivated contacts are left out; `can_act` is false for
/// a contact without a token subject (told, but never a nominee who must act).
#[derive(Debug, Clone, PartialEq)]
pub struct NomineeContact {
    pub id: Uuid,
    pub display_name: String,
    pub email: String,
    pub can_act: bool,
}

/// Who a tier names now.
pub async fn nominees(
    mut conn: impl AsConn,
    tier: &Tier,
) -> Result<Vec<NomineeContact>, StorageError> {
    let mut ids: Vec<Uuid> = tier.contacts.clone();
    if !tier.lists.is_empty() {
        let mut select = Select::new("SELECT contact_id, kind, position FROM contact_list_members");
        select.and_in("kind", tier.lists.iter().map(|k| Value::of(*k)));
        let members: Vec<(Uuid, ListKind, i32)> = select.fetch_all(&mut conn).await?;
        for kind in &tier.lists {
            let mut of_list: Vec<_> = members.iter().filter(|m| m.1 == *kind).collect();
            of_list.sort_by_key(|m| m.2);
            ids.extend(of_list.into_iter().map(|m| m.0));
        }
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    let rows = contacts_among(&mut conn, &ids).await?;
    Ok(ids
        .iter()
        .filter_map(|id| rows.iter().find(|r| r.id == *id && r.active))
        .map(|r| NomineeContact {
            id: r.id,
            display_name: r.display_name.clone(),
            email: r.email.clone(),
            can_act: r.token_subject.is_some(),
        })
        .collect())
}

/// Whether the directory holds no contact yet (a seed file applies only then).
pub async fn is_empty(mut conn: impl AsConn) -> Result<bool, StorageError> {
    let n: i64 = with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT COUNT(*) FROM contacts").fetch_one(&mut *c).await?
    });
    Ok(n == 0)
}

/// Serialises the directory's writers (PostgreSQL: a transaction-scoped advisory lock;
/// SQLite's one writer already does): a change checks the policies against the
/// directory, and no other change may slip in between the check and the commit.
pub async fn lock_directory(tx: &mut Tx) -> Result<(), StorageError> {
    /// "esc.dir" in ASCII: the lock's key, unique within escalation's database.
    const KEY: i64 = 0x0065_7363_2e64_6972;
    if let Conn::Postgres(c) = tx.conn() {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEY)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

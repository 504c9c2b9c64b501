//! Contacts and the policy's lists (DirectoryService).

use custos_kit::{
    auth::require_any,
    error::{Violations, text},
    idempotency::{self, Claim, Key},
    page,
    storage::{DbTime, StorageError},
    time_fmt::to_timestamp,
};
use custos_proto::escalation::v1 as pb;
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{DIRECTORY_READ, DIRECTORY_WRITE, DirectoryApi, parse_id};
use crate::{
    directory::{ListKind, MAX_NOMINEES},
    error::EscalationError,
    store::{self, ContactRow},
};

pub(crate) fn contact_to_wire(row: &ContactRow) -> pb::Contact {
    pb::Contact {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        job_title: row.job_title.clone(),
        email: row.email.clone(),
        deputy_contact_id: row.deputy_id.map(|d| d.to_string()).unwrap_or_default(),
        token_subject: row.token_subject.clone().unwrap_or_default(),
        active: row.active,
        revision: row.revision,
        created_at: Some(to_timestamp(row.created_at.get())),
        updated_at: Some(to_timestamp(row.updated_at.get())),
    }
}

/// A contact's details as sent, checked field by field (`prefix` is `contact`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Details {
    pub display_name: String,
    pub job_title: String,
    pub email: String,
    pub deputy_id: Option<Uuid>,
    pub token_subject: Option<String>,
}

/// An email address as messages are sent to it: the bare address (no display name, no
/// IP-address domain, a dotted domain), at most 254 characters.
pub(crate) fn email(v: &mut Violations, field: &str, value: &str) -> String {
    let value = value.trim();
    if value.is_empty() {
        v.add(field, "is required");
    } else if !is_address(value) {
        v.add(
            field,
            "is not an email address (a bare address such as someone@example.org)",
        );
    }
    value.to_owned()
}

pub(crate) fn is_address(value: &str) -> bool {
    use email_address::{EmailAddress, Options};
    let options = Options::default()
        .without_display_text()
        .without_domain_literal()
        .with_minimum_sub_domains(2);
    value.len() <= 254
        && EmailAddress::parse_with_options(value, options).is_ok_and(|a| a.as_str() == value)
}

/// A one-line text field (it goes into message headers and lists): as the kit's `text`,
/// and no line breaks or tabs.
fn line(v: &mut Violations, field: &str, value: &str, max: usize, required: bool) -> String {
    if value.contains(['\n', '\r', '\t']) {
        v.add(field, "must be one line");
        return String::new();
    }
    text(v, field, value, max, required)
}

fn details(v: &mut Violations, c: &pb::Contact, only: Option<&[String]>) -> Details {
    let wanted = |f: &str| only.is_none_or(|paths| paths.iter().any(|p| p == f));
    let mut d = Details {
        display_name: String::new(),
        job_title: String::new(),
        email: String::new(),
        deputy_id: None,
        token_subject: None,
    };
    if wanted("display_name") {
        d.display_name = line(v, "contact.display_name", &c.display_name, 200, true);
    }
    if wanted("job_title") {
        d.job_title = line(v, "contact.job_title", &c.job_title, 200, false);
    }
    if wanted("email") {
        d.email = email(v, "contact.email", &c.email);
    }
    if wanted("deputy_contact_id") && !c.deputy_contact_id.is_empty() {
        d.deputy_id = parse_id(v, "contact.deputy_contact_id", &c.deputy_contact_id);
    }
    if wanted("token_subject") {
        let s = line(v, "contact.token_subject", &c.token_subject, 255, false);
        d.token_subject = (!s.is_empty()).then_some(s);
    }
    d
}

/// The deputy must be another, active contact.
async fn check_deputy(
    tx: &mut custos_kit::storage::Tx,
    id: Uuid,
    deputy: Option<Uuid>,
) -> Result<(), EscalationError> {
    let Some(deputy) = deputy else { return Ok(()) };
    let mut v = Violations::new();
    if deputy == id {
        v.add("contact.deputy_contact_id", "must be another contact");
    } else {
        match store::contact(&mut *tx, deputy).await? {
            None => v.add("contact.deputy_contact_id", "no such contact"),
            Some(d) if !d.active => v.add("contact.deputy_contact_id", "is deactivated"),
            Some(_) => {}
        }
    }
    v.finish().map_err(EscalationError::Invalid)
}

/// A unique constraint refusing a contact write can only be the subject's (ids are new).
fn subject_taken(e: StorageError) -> EscalationError {
    match e {
        StorageError::Conflict { .. } => EscalationError::SubjectTaken,
        e => e.into(),
    }
}

impl DirectoryApi {
    pub(crate) async fn create_contact(
        &self,
        r: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        let caller = require_any(&r, DIRECTORY_WRITE)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        let d = match &req.contact {
            Some(c) => details(&mut v, c, None),
            None => {
                v.add("contact", "is required");
                details(&mut Violations::new(), &pb::Contact::default(), None)
            }
        };
        v.finish().map_err(EscalationError::Invalid)?;
        let key = Key::new(&caller.subject, "CreateContact", &req.idempotency_key);
        let fingerprint = idempotency::fingerprint(&d);
        let mut tx = self.db.begin().await.map_err(EscalationError::from)?;
        let pending = match idempotency::claim(&mut tx, &key, &fingerprint)
            .await
            .map_err(EscalationError::from)?
        {
            Claim::Replay(bytes) => {
                let response = pb::CreateContactResponse::decode(bytes.as_slice())
                    .map_err(|e| EscalationError::Corrupt(e.to_string()))?;
                return Ok(Response::new(response));
            }
            Claim::New(pending) => pending,
        };
        store::lock_directory(&mut tx)
            .await
            .map_err(EscalationError::from)?;
        let id = Uuid::now_v7();
        check_deputy(&mut tx, id, d.deputy_id).await?;
        let now = DbTime::now();
        let row = ContactRow {
            id,
            display_name: d.display_name,
            job_title: d.job_title,
            email: d.email,
            deputy_id: d.deputy_id,
            token_subject: d.token_subject,
            active: true,
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        store::insert_contact(&mut tx, &row)
            .await
            .map_err(subject_taken)?;
        let response = pb::CreateContactResponse {
            contact: Some(contact_to_wire(&row)),
        };
        idempotency::complete(&mut tx, pending, &response)
            .await
            .map_err(EscalationError::from)?;
        tx.commit().await.map_err(subject_taken)?;
        self.audit_change(&caller, "CreateContact", row.id).await;
        tracing::info!(contact_id = %row.id, by = %caller.subject, "contact created");
        Ok(Response::new(response))
    }

    pub(crate) async fn get_contact(
        &self,
        r: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        let caller = require_any(&r, DIRECTORY_READ)?.clone();
        let mut v = Violations::new();
        let id = parse_id(&mut v, "contact_id", &r.get_ref().contact_id);
        v.finish().map_err(EscalationError::Invalid)?;
        let mut conn = self.db.read().await.map_err(EscalationError::from)?;
        let row = store::contact(&mut conn, id.unwrap_or_default())
            .await
            .map_err(EscalationError::from)?
            .ok_or(EscalationError::ContactNotFound)?;
        drop(conn);
        self.audit_read(&caller, "GetContact", &[row.id]).await?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(contact_to_wire(&row)),
        }))
    }

    pub(crate) async fn list_contacts(
        &self,
        r: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let caller = require_any(&r, DIRECTORY_READ)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let limit = page::size(&mut v, "page_size", req.page_size);
        let scope = format!("ListContacts:{}", req.include_inactive);
        let after: Option<(String, Uuid)> = self
            .db
            .page_tokens()
            .open(scope.as_bytes(), &req.page_token)
            .unwrap_or_else(|e| {
                v.add("page_token", e);
                None
            });
        v.finish().map_err(EscalationError::Invalid)?;
        let mut conn = self.db.read().await.map_err(EscalationError::from)?;
        let mut rows = store::list_contacts(&mut conn, req.include_inactive, after, limit + 1)
            .await
            .map_err(EscalationError::from)?;
        drop(conn);
        let next_page_token = page::cut(&mut rows, limit, |r| {
            self.db
                .page_tokens()
                .seal(scope.as_bytes(), &(r.display_name.clone(), r.id))
        });
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        self.audit_read(&caller, "ListContacts", &ids).await?;
        Ok(Response::new(pb::ListContactsResponse {
            contacts: rows.iter().map(contact_to_wire).collect(),
            next_page_token,
        }))
    }

    pub(crate) async fn update_contact(
        &self,
        r: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::UpdateContactResponse>, Status> {
        let caller = require_any(&r, DIRECTORY_WRITE)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let id = parse_id(&mut v, "contact_id", &req.contact_id);
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            v.add("update_mask", "is required: name the fields to change");
        }
        const FIELDS: [&str; 5] = [
            "display_name",
            "job_title",
            "email",
            "deputy_contact_id",
            "token_subject",
        ];
        for (i, p) in paths.iter().enumerate() {
            if !FIELDS.contains(&p.as_str()) {
                v.add(
                    format!("update_mask.paths[{i}]"),
                    format!("`{p}` cannot be updated: one of {}", FIELDS.join(", ")),
                );
            }
        }
        if req.revision < 0 {
            v.add("revision", "must not be negative");
        }
        if req.contact.is_none() {
            v.add("contact", "is required");
        }
        let d = details(&mut v, &req.contact.unwrap_or_default(), Some(&paths));
        v.finish().map_err(EscalationError::Invalid)?;
        let id = id.unwrap_or_default();
        let (mut tx, mut row) = self.hold(id).await?;
        at_revision(&row, req.revision)?;
        let has = |f: &str| paths.iter().any(|p| p == f);
        if has("deputy_contact_id") {
            check_deputy(&mut tx, id, d.deputy_id).await?;
            row.deputy_id = d.deputy_id;
        }
        if has("display_name") {
            row.display_name = d.display_name;
        }
        if has("job_title") {
            row.job_title = d.job_title;
        }
        if has("email") {
            row.email = d.email;
        }
        if has("token_subject") {
            row.token_subject = d.token_subject;
        }
        row.revision += 1;
        row.updated_at = DbTime::now();
        store::save_contact(&mut tx, &row)
            .await
            .map_err(subject_taken)?;
        super::policies::check_stored_policies(&mut tx).await?;
        tx.commit().await.map_err(subject_taken)?;
        self.audit_change(&caller, "UpdateContact", row.id).await;
        tracing::info!(contact_id = %row.id, by = %caller.subject, fields = ?paths, "contact updated");
        Ok(Response::new(pb::UpdateContactResponse {
            contact: Some(contact_to_wire(&row)),
        }))
    }

    pub(crate) async fn deactivate_contact(
        &self,
        r: Request<pb::DeactivateContactRequest>,
    ) -> Result<Response<pb::DeactivateContactResponse>, Status> {
        let caller = require_any(&r, DIRECTORY_WRITE)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let id = parse_id(&mut v, "contact_id", &req.contact_id);
        if req.revision < 0 {
            v.add("revision", "must not be negative");
        }
        v.finish().map_err(EscalationError::Invalid)?;
        let id = id.unwrap_or_default();
        let (mut tx, mut row) = self.hold(id).await?;
        if !row.active {
            return Ok(Response::new(pb::DeactivateContactResponse {
                contact: Some(contact_to_wire(&row)),
            }));
        }
        at_revision(&row, req.revision)?;
        let now = DbTime::now();
        row.active = false;
        row.revision += 1;
        row.updated_at = now;
        store::save_contact(&mut tx, &row)
            .await
            .map_err(EscalationError::from)?;
        store::remove_from_lists(&mut tx, id, now)
            .await
            .map_err(EscalationError::from)?;
        super::policies::check_stored_policies(&mut tx).await?;
        let deputised = store::deputising_for(&mut tx, id)
            .await
            .map_err(EscalationError::from)?;
        tx.commit().await.map_err(EscalationError::from)?;
        self.audit_change(&caller, "DeactivateContact", id).await;
        if !deputised.is_empty() {
            tracing::warn!(contact_id = %id, contacts = deputised.len(),
                "a deactivated contact is still the deputy of active contacts: their failed messages will reach nobody until a new deputy is set");
        }
        tracing::info!(contact_id = %id, by = %caller.subject, "contact deactivated");
        Ok(Response::new(pb::DeactivateContactResponse {
            contact: Some(contact_to_wire(&row)),
        }))
    }

    pub(crate) async fn set_contact_list(
        &self,
        r: Request<pb::SetContactListRequest>,
    ) -> Result<Response<pb::SetContactListResponse>, Status> {
        let caller = require_any(&r, DIRECTORY_WRITE)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let kind = v.check("kind", ListKind::from_wire(req.kind));
        if req.revision < 0 {
            v.add("revision", "must not be negative");
        }
        if req.contact_ids.len() > MAX_NOMINEES {
            v.add(
                "contact_ids",
                format!("must name at most {MAX_NOMINEES} contacts"),
            );
        }
        let mut ids = Vec::new();
        for (i, raw) in req.contact_ids.iter().take(MAX_NOMINEES + 1).enumerate() {
            let field = format!("contact_ids[{i}]");
            if let Some(id) = parse_id(&mut v, &field, raw) {
                if ids.contains(&id) {
                    v.add(field, "is listed twice");
                } else {
                    ids.push(id);
                }
            }
        }
        v.finish().map_err(EscalationError::Invalid)?;
        let kind = kind.expect("checked");
        let mut tx = self.db.begin().await.map_err(EscalationError::from)?;
        store::lock_directory(&mut tx)
            .await
            .map_err(EscalationError::from)?;
        check_active(&mut tx, &ids, |i| format!("contact_ids[{i}]")).await?;
        let now = DbTime::now();
        let Some(revision) = store::set_list(&mut tx, kind, req.revision, &ids, now)
            .await
            .map_err(EscalationError::from)?
        else {
            drop(tx);
            let mut conn = self.db.read().await.map_err(EscalationError::from)?;
            let lists = store::lists(&mut conn)
                .await
                .map_err(EscalationError::from)?;
            let current = lists
                .iter()
                .find(|l| l.kind == kind)
                .map_or(0, |l| l.revision);
            return Err(EscalationError::ListChanged {
                expected: req.revision,
                current,
            }
            .into());
        };
        super::policies::check_stored_policies(&mut tx).await?;
        tx.commit().await.map_err(EscalationError::from)?;
        self.audit_list_change(&caller, kind).await;
        tracing::info!(list = kind.name(), by = %caller.subject, members = ids.len(), "contact list set");
        Ok(Response::new(pb::SetContactListResponse {
            list: Some(pb::ContactList {
                kind: kind.to_wire(),
                contact_ids: ids.iter().map(Uuid::to_string).collect(),
                revision,
                updated_at: Some(to_timestamp(now.get())),
            }),
        }))
    }

    pub(crate) async fn list_contact_lists(
        &self,
        r: Request<pb::ListContactListsRequest>,
    ) -> Result<Response<pb::ListContactListsResponse>, Status> {
        require_any(&r, DIRECTORY_READ)?;
        let mut conn = self.db.read().await.map_err(EscalationError::from)?;
        let lists = store::lists(&mut conn)
            .await
            .map_err(EscalationError::from)?;
        Ok(Response::new(pb::ListContactListsResponse {
            lists: lists
                .into_iter()
                .map(|l| pb::ContactList {
                    kind: l.kind.to_wire(),
                    contact_ids: l.contact_ids.iter().map(Uuid::to_string).collect(),
                    revision: l.revision,
                    updated_at: l.updated_at.map(|t| to_timestamp(t.get())),
                })
                .collect(),
        }))
    }
}

/// Every id names an active contact; otherwise the fields (by `field(i)`) that do not.
pub(crate) async fn check_active(
    tx: &mut custos_kit::storage::Tx,
    ids: &[Uuid],
    field: impl Fn(usize) -> String,
) -> Result<(), EscalationError> {
    let rows = store::contacts_among(&mut *tx, ids).await?;
    let mut v = Violations::new();
    for (i, id) in ids.iter().enumerate() {
        match rows.iter().find(|r| r.id == *id) {
            None => v.add(field(i), "no such contact"),
            Some(r) if !r.active => v.add(field(i), "is deactivated"),
            Some(_) => {}
        }
    }
    v.finish().map_err(EscalationError::Invalid)
}

/// The contact is at the revision the caller read, or CONTACT_CHANGED.
fn at_revision(row: &ContactRow, expected: i32) -> Result<(), EscalationError> {
    if row.revision == expected {
        Ok(())
    } else {
        Err(EscalationError::ContactChanged {
            expected,
            current: row.revision,
        })
    }
}

impl DirectoryApi {
    /// A change of a contact: a transaction with the directory locked (see
    /// `store::lock_directory`) and the contact held.
    async fn hold(
        &self,
        id: Uuid,
    ) -> Result<(custos_kit::storage::Tx, ContactRow), EscalationError> {
        let mut tx = self.db.begin().await?;
        store::lock_directory(&mut tx).await?;
        let row = store::hold_contact(&mut tx, id)
            .await?
            .ok_or(EscalationError::ContactNotFound)?;
        Ok((tx, row))
    }

    /// Reads of contacts are reads of personal data: recorded before they are returned
    /// (if the record cannot be written, the read fails).
    async fn audit_read(
        &self,
        caller: &custos_kit::auth::Principal,
        action: &str,
        ids: &[Uuid],
    ) -> Result<(), EscalationError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        Ok(self.db.audit(caller, action, "contact", &ids).await?)
    }

    /// A change, recorded after it committed: if the record cannot be written the
    /// change stands, and the failure is logged at ERROR with what it was.
    async fn audit_change(&self, caller: &custos_kit::auth::Principal, action: &str, id: Uuid) {
        if let Err(e) = self
            .db
            .audit(caller, action, "contact", &[id.to_string()])
            .await
        {
            tracing::error!(action, contact_id = %id, by = %caller.subject, error = %custos_kit::error::DisplayChain(&e),
                "a directory change was made but could not be written to the audit trail");
        }
    }

    async fn audit_list_change(&self, caller: &custos_kit::auth::Principal, kind: ListKind) {
        if let Err(e) = self
            .db
            .audit(
                caller,
                "SetContactList",
                "contact_list",
                &[kind.name().to_owned()],
            )
            .await
        {
            tracing::error!(list = kind.name(), by = %caller.subject, error = %custos_kit::error::DisplayChain(&e),
                "a directory change was made but could not be written to the audit trail");
        }
    }
}

//! Changes of an incident by its officer or a security advisor: the lifecycle's moves,
//! its details and flags (UpdateIncident), and its responsible officer. Each is made in
//! one transaction with its entry in the actions log and its events, against the
//! revision the caller read, and is idempotent by its key.

use custos_kit::{
    auth::{self, Principal},
    error::{Violations, text},
    idempotency::{self, Key},
    outbox::NewEvent,
    storage::DbTime,
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1 as pb;
use prost::Message;
use time::OffsetDateTime;
use tonic::{Request, Status};

use super::{
    Changing, IncidentApi, Needs, Opened, at_revision, incident_to_wire, not_closed, parse_key,
    parse_subject,
};
use crate::{
    error::ClassificationError,
    incident::{ActionKind, IncidentState},
    store::{self, AccessRow, IncidentKey, RegisterRow},
};

/// A lifecycle move as requested: which incident, at which revision, with a note.
#[derive(Debug)]
pub(super) struct Move {
    pub(super) key: IncidentKey,
    pub(super) revision: i32,
    pub(super) note: String,
    pub(super) idempotency_key: String,
}

impl Move {
    /// `parts` takes the request apart: (incident_id, revision, note, idempotency_key).
    pub(super) fn from_request<T>(
        request: Request<T>,
        parts: impl FnOnce(T) -> (String, i32, String, String),
    ) -> Result<(Principal, Move), Status> {
        let caller = auth::require_authenticated(&request)?.clone();
        let (id, revision, note, idempotency_key) = parts(request.into_inner());
        let mut v = Violations::new();
        let key = parse_key(&mut v, "incident_id", &id);
        check_revision(&mut v, revision);
        let note = text(&mut v, "note", &note, 2_000, false);
        idempotency::check(&mut v, "idempotency_key", &idempotency_key, true);
        v.finish().map_err(ClassificationError::from)?;
        Ok((
            caller,
            Move {
                key: key.expect("checked"),
                revision,
                note,
                idempotency_key,
            },
        ))
    }
}

pub(super) fn check_revision(v: &mut Violations, revision: i32) {
    if revision < 1 {
        v.add(
            "revision",
            "is required: the incident's revision you read (Incident.revision)",
        );
    }
}

/// A stored response (the incident as the first call returned it).
pub(super) fn replayed(bytes: Vec<u8>) -> Result<pb::Incident, ClassificationError> {
    pb::Incident::decode(bytes.as_slice())
        .map_err(|_| ClassificationError::Corrupt("a stored response".into()))
}

/// `text`, with `: note` after it when there is a note.
pub(super) fn with_note(text: String, note: &str) -> String {
    if note.is_empty() {
        text
    } else {
        format!("{text}: {note}")
    }
}

/// What a change appends: its events, and the time it is made.
pub(super) struct Effects {
    pub(super) now: OffsetDateTime,
    pub(super) events: Vec<NewEvent>,
}

impl Effects {
    pub(super) fn new() -> Self {
        Self {
            now: OffsetDateTime::now_utc(),
            events: Vec::new(),
        }
    }

    pub(super) fn at(&self) -> DbTime {
        DbTime::new(self.now)
    }

    pub(super) fn event(&mut self, row: &RegisterRow, payload: &impl prost::Name) {
        self.events.push(NewEvent::new(
            row.id,
            row.reference.clone(),
            self.now,
            payload,
        ));
    }
}

impl IncidentApi {
    /// Saves the incident at its next revision (it is held, so its revision cannot have
    /// moved since it was read in this transaction).
    pub(super) async fn save(
        tx: &mut custos_kit::storage::Tx,
        row: &mut RegisterRow,
        at: DbTime,
    ) -> Result<(), ClassificationError> {
        row.updated_at = at;
        crate::continuity::record(row);
        if !store::save(tx, row).await? {
            return Err(ClassificationError::Corrupt(
                "an incident held by this transaction changed under it".into(),
            ));
        }
        row.revision += 1;
        Ok(())
    }

    /// Appends the events, records the change in the audit trail when the incident
    /// involves (or, until this change, involved) personal data, stores the response for
    /// the key, and commits.
    pub(super) async fn finish(
        &self,
        changing: Box<Changing>,
        caller: &Principal,
        action: &str,
        effects: Effects,
        involved_personal_data: bool,
    ) -> Result<pb::Incident, ClassificationError> {
        let Changing {
            mut tx,
            pending,
            row,
            notice_before,
            ..
        } = *changing;
        let mut events = effects.events;
        // A change of the public state is a notice for business continuity.
        if let Some(after) = crate::continuity::notice(&row)
            && crate::continuity::changed(notice_before.as_ref(), &after)
        {
            events.push(NewEvent::new(
                row.id,
                row.reference.clone(),
                effects.now,
                &after,
            ));
        }
        tx.append_events(&events).await?;
        if row.personal_data || involved_personal_data {
            custos_kit::audit::record(&mut tx, caller, action, "incident", &[row.id.to_string()])
                .await?;
        }
        let wire = incident_to_wire(row);
        idempotency::complete(&mut tx, pending, &wire).await?;
        tx.commit().await?;
        Ok(wire)
    }

    /// Moves an incident to `to`, the one state its lifecycle allows next.
    #[tracing::instrument(skip_all, fields(to = to.name()))]
    pub(super) async fn transition(
        &self,
        caller: &Principal,
        m: Move,
        to: IncidentState,
    ) -> Result<pb::Incident, ClassificationError> {
        let key = Key::new(&caller.subject, to.verb(), &m.idempotency_key);
        let fingerprint = idempotency::fingerprint(&(m.revision, &m.note, to.name()));
        let needs = Needs::Change("move the incident along its lifecycle");
        let mut c = match self
            .open_change(caller, &m.key, needs, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => return replayed(bytes),
            Opened::New(c) => c,
        };
        not_closed(&c.row)?;
        at_revision(&c.row, m.revision)?;
        let from = c.row.state;
        if from.next() != Some(to) {
            return Err(ClassificationError::IncidentState {
                state: from,
                wanted: to,
            });
        }
        let mut effects = Effects::new();
        c.row.state = to;
        Self::save(&mut c.tx, &mut c.row, effects.at()).await?;
        let detail = with_note(format!("{} → {}", from.name(), to.name()), &m.note);
        store::append_action(
            &mut c.tx,
            c.row.id,
            ActionKind::StateChanged,
            &detail,
            None,
            &caller.subject,
            effects.at(),
        )
        .await?;
        effects.event(
            &c.row,
            &pb::IncidentStateChanged {
                from: from.to_wire(),
                to: to.to_wire(),
                revision: c.row.revision,
                changed_at: Some(to_timestamp(effects.now)),
            },
        );
        self.finish(c, caller, "incident.state", effects, false)
            .await
    }

    /// AssignIncidentOfficer: an advisor, or the present officer handing over.
    #[tracing::instrument(skip_all)]
    pub(super) async fn assign(
        &self,
        caller: &Principal,
        req: pb::AssignIncidentOfficerRequest,
    ) -> Result<pb::Incident, ClassificationError> {
        let mut v = Violations::new();
        let incident_key = parse_key(&mut v, "incident_id", &req.incident_id);
        check_revision(&mut v, req.revision);
        let officer = parse_subject(&mut v, "officer", &req.officer);
        let note = text(&mut v, "note", &req.note, 2_000, false);
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        v.finish()?;
        let incident_key = incident_key.expect("checked");
        let key = Key::new(
            &caller.subject,
            "AssignIncidentOfficer",
            &req.idempotency_key,
        );
        let fingerprint = idempotency::fingerprint(&(req.revision, &officer, &note));
        let needs = Needs::Change("assign its responsible officer");
        let mut c = match self
            .open_change(caller, &incident_key, needs, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => return replayed(bytes),
            Opened::New(c) => c,
        };
        not_closed(&c.row)?;
        at_revision(&c.row, req.revision)?;
        let mut effects = Effects::new();
        if c.row.officer.as_deref() != Some(officer.as_str()) {
            let previous = c.row.officer.replace(officer.clone());
            Self::save(&mut c.tx, &mut c.row, effects.at()).await?;
            store::append_action(
                &mut c.tx,
                c.row.id,
                ActionKind::OfficerAssigned,
                &note,
                Some(&officer),
                &caller.subject,
                effects.at(),
            )
            .await?;
            effects.event(
                &c.row,
                &pb::IncidentOfficerAssigned {
                    officer: officer.clone(),
                    previous_officer: previous.unwrap_or_default(),
                    revision: c.row.revision,
                    assigned_at: Some(to_timestamp(effects.now)),
                },
            );
            Self::give_access(
                &mut c.tx,
                &c.row,
                &caller.subject,
                &officer,
                "responsible officer",
                &mut effects,
            )
            .await?;
        }
        self.finish(c, caller, "incident.officer", effects, false)
            .await
    }

    /// Puts `subject` on the incident's access list (if they are not on it), with its
    /// actions log entry and event. `Ok(true)`: they were added.
    pub(super) async fn give_access(
        tx: &mut custos_kit::storage::Tx,
        row: &RegisterRow,
        granted_by: &str,
        subject: &str,
        reason: &str,
        effects: &mut Effects,
    ) -> Result<bool, ClassificationError> {
        let access = AccessRow {
            subject: subject.to_owned(),
            granted_by: granted_by.to_owned(),
            granted_at: effects.at(),
        };
        let Some(sequence) = store::grant(tx, row.id, &access).await? else {
            return Ok(false);
        };
        store::append_action(
            tx,
            row.id,
            ActionKind::AccessGranted,
            reason,
            Some(subject),
            granted_by,
            effects.at(),
        )
        .await?;
        effects.event(
            row,
            &pb::IncidentAccessGranted {
                subject: subject.to_owned(),
                access_sequence: sequence,
                granted_at: Some(to_timestamp(effects.now)),
            },
        );
        Ok(true)
    }
}

//! The consumers of intake's and classification's feeds: what opens an escalation, what
//! re-routes it, and what stops it. Each event is applied once, in the transaction that
//! moves the cursor (the kit's consumer); a redelivered event opens nothing new (one
//! escalation per trigger and subject); types not handled here are ignored.

use std::{future::Future, pin::Pin};

use custos_kit::{
    consumer::{EventHandler, HandlerError},
    storage::{DbEnum, DbTime, JsonText, Tx},
    time_fmt::from_timestamp,
};
use custos_proto::{
    classification::v1 as classification, common::v1::Event, custody::v1 as custody,
    intake::v1 as intake, prost_types::Any,
};
use prost::Name;
use uuid::Uuid;

use crate::{
    directory::{Level, Trigger},
    engine::{self, Subject},
    escalation::{Facts, SubjectKind},
    store::{self, SubjectRow},
};

/// The consumers' names: their cursors and leases in escalation's database.
pub const INTAKE_CONSUMER: &str = "escalation.intake";
pub const CLASSIFICATION_CONSUMER: &str = "escalation.classification";
pub const CUSTODY_CONSUMER: &str = "escalation.custody";

fn bad(what: impl std::fmt::Display) -> HandlerError {
    HandlerError::failed(format!("event not understood: {what}"))
}

fn payload<M: prost::Message + Name + Default>(any: &Option<Any>) -> Result<M, HandlerError> {
    any.as_ref()
        .ok_or_else(|| bad("no payload"))?
        .to_msg::<M>()
        .map_err(|e| bad(format!("{}: {e}", M::full_name())))
}

fn aggregate(event: &Event) -> Result<Uuid, HandlerError> {
    Uuid::try_parse(&event.aggregate_id).map_err(|_| bad("aggregate_id is not an id"))
}

fn level(n: i32) -> Result<Level, HandlerError> {
    Level::from_wire(n).map_err(|e| bad(format!("level {e}")))
}

/// Whether an event is about something an anonymous caller did: such events have random
/// (version 4) ids and no trace context (`NewEvent::anonymous`).
fn anonymous_event(event: &Event) -> bool {
    event.trace_context.is_empty()
        && Uuid::try_parse(&event.event_id).is_ok_and(|id| id.get_version_num() == 4)
}

/// What escalation knew of the event's subject, or a new record of it.
/// (Locked until the transaction ends: the other feed's consumer may write it too.)
async fn known(tx: &mut Tx, kind: SubjectKind, event: &Event) -> Result<SubjectRow, HandlerError> {
    let id = aggregate(event)?;
    let new = SubjectRow {
        subject_id: id,
        kind,
        reference: event.aggregate_reference.clone(),
        facts: JsonText(Facts::default()),
        anonymous: false,
        ended_reason: None,
        ended_at: None,
    };
    Ok(store::hold_subject(tx, &new).await?)
}

/// Saves what the event said of its subject, and opens an escalation of each trigger in
/// `open` (those whose fact just turned on).
async fn record(tx: &mut Tx, row: &SubjectRow, open: &[Trigger]) -> Result<(), HandlerError> {
    store::save_subject(tx, row).await?;
    // About an anonymous report, every time recorded is cut to the minute, as intake's
    // own are: an exact time would date the report.
    let now = if row.anonymous {
        DbTime::now().to_minute()
    } else {
        DbTime::now()
    };
    let subject = Subject {
        kind: row.kind,
        id: row.subject_id,
        reference: row.reference.clone(),
        facts: row.facts.0.clone(),
        anonymous: row.anonymous,
    };
    for trigger in open {
        engine::open(tx, *trigger, &subject, now).await?;
    }
    Ok(())
}

/// Applies intake's events: every report opens REPORT_RECEIVED (14.1.3: at least two
/// nominated people act on it), and a report on paper, with personal information or
/// that asks for senior management's notice opens PAPER_OR_PERSONAL (14.1.1); a weakness
/// reported to a provider is watched until its fix is judged effective.
#[derive(Debug, Clone, Copy)]
pub struct IntakeEvents {
    /// How long a provider has to fix a weakness before the central point of contact is
    /// told.
    pub provider_fix: time::Duration,
}

async fn apply_intake(
    provider_fix: time::Duration,
    tx: &mut Tx,
    event: &Event,
) -> Result<(), HandlerError> {
    let t = event.event_type.as_str();
    if t == intake::ReportSubmitted::full_name() || t == intake::ReportAmended::full_name() {
        let (submitted, category, medium, personal, senior, anonymous) =
            if t == intake::ReportSubmitted::full_name() {
                let p: intake::ReportSubmitted = payload(&event.payload)?;
                (
                    true,
                    p.category,
                    p.medium,
                    p.personal_information,
                    p.requires_senior_management_notice,
                    p.anonymous,
                )
            } else {
                let p: intake::ReportAmended = payload(&event.payload)?;
                (
                    false,
                    p.category,
                    p.medium,
                    p.personal_information,
                    p.requires_senior_management_notice,
                    anonymous_event(event),
                )
            };
        let mut row = known(tx, SubjectKind::Report, event).await?;
        let before = row.facts.0.clone();
        // Nothing known yet of its routing facts (an amendment may come first, its
        // submission parked and replayed later).
        let first = before == Facts::default();
        row.anonymous |= anonymous;
        row.facts.0 = Facts {
            category,
            paper: medium == intake::ReportMedium::Paper as i32,
            personal,
            senior_notice: senior,
            ..before.clone()
        };
        let mut open = Vec::new();
        if submitted {
            // Every report (a redelivery is deduplicated before it gets here, and one
            // escalation of a trigger is open per subject at a time).
            open.push(Trigger::ReportReceived);
        }
        // Told once it involves them (an amendment may make it so).
        if row.facts.0.paper_or_personal() && (first || !before.paper_or_personal()) {
            open.push(Trigger::PaperOrPersonal);
        }
        record(tx, &row, &open).await?;
    } else if t == intake::ProviderReportRecorded::full_name() {
        let p: intake::ProviderReportRecorded = payload(&event.payload)?;
        let id = Uuid::try_parse(&p.provider_report_id)
            .map_err(|_| bad("provider_report_id is not an id"))?;
        let reported = p
            .reported_at
            .as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| bad("reported_at is not a time"))?;
        store::watch_provider(
            tx,
            id,
            aggregate(event)?,
            &event.aggregate_reference,
            DbTime::new(reported + provider_fix),
        )
        .await?;
    } else if t == intake::ProviderFixVerdictRecorded::full_name() {
        let p: intake::ProviderFixVerdictRecorded = payload(&event.payload)?;
        if p.verdict == intake::FixVerdict::Effective as i32 {
            let id = Uuid::try_parse(&p.provider_report_id)
                .map_err(|_| bad("provider_report_id is not an id"))?;
            store::provider_fixed(tx, id).await?;
            // Its overdue escalation is about the weakness reported to the provider.
            engine::stop(
                tx,
                id,
                |t| t == Trigger::ProviderWeaknessOverdue,
                "the provider's fix was judged effective",
                DbTime::now(),
            )
            .await?;
        }
    }
    Ok(())
}

impl EventHandler for IntakeEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        Box::pin(apply_intake(self.provider_fix, tx, event))
    }
}

/// Applies classification's events: an incident opens the escalation of its level (and
/// a raised level that of the new one: low → medium adds the high/medium list), service
/// affecting, paper or personal data, and evidence required open theirs; a closed
/// incident, and a report dismissed or taken into an incident, stop theirs.
#[derive(Debug, Clone, Copy)]
pub struct ClassificationEvents;

/// The triggers whose facts turned on from `before` to `after`.
fn turned_on(before: &Facts, after: &Facts, first: bool) -> Vec<Trigger> {
    let mut open = Vec::new();
    if after.service_affecting && (first || !before.service_affecting) {
        open.push(Trigger::ServiceAffecting);
    }
    if (after.personal || after.paper) && (first || !(before.personal || before.paper)) {
        open.push(Trigger::PaperOrPersonal);
    }
    if after.evidence && (first || !before.evidence) {
        open.push(Trigger::EvidenceRequired);
    }
    open
}

fn with_flags(facts: &Facts, flags: &classification::IncidentFlags) -> Facts {
    Facts {
        personal: flags.personal_data,
        paper: flags.paper_records,
        service_affecting: flags.service_affecting,
        evidence: flags.evidence_required,
        ..facts.clone()
    }
}

async fn apply_classification(tx: &mut Tx, event: &Event) -> Result<(), HandlerError> {
    let t = event.event_type.as_str();
    if t == classification::IncidentDeclared::full_name() {
        let p: classification::IncidentDeclared = payload(&event.payload)?;
        let level = level(p.overall_level)?;
        let mut row = known(tx, SubjectKind::Incident, event).await?;
        let before = row.facts.0.clone();
        if before.flags_revision > 0 || before.level_revision > 0 {
            // Applied late (parked, replayed): later events already said what is true
            // now. Only a level nothing has given yet is taken from it.
            let open: Vec<Trigger> = if before.level.is_none() {
                row.facts.0.level = Some(level.to_db());
                vec![Trigger::for_level(level)]
            } else {
                Vec::new()
            };
            return record(tx, &row, &open).await;
        }
        row.facts.0 = with_flags(
            &Facts {
                category: p.category.clone(),
                level: Some(level.to_db()),
                flags_revision: 1,
                level_revision: 1,
                ..before.clone()
            },
            &p.flags.unwrap_or_default(),
        );
        let mut open = vec![Trigger::for_level(level)];
        open.extend(turned_on(&before, &row.facts.0, true));
        record(tx, &row, &open).await?;
    } else if t == classification::IncidentLevelChanged::full_name() {
        let p: classification::IncidentLevelChanged = payload(&event.payload)?;
        let to = level(p.to)?;
        let mut row = known(tx, SubjectKind::Incident, event).await?;
        if p.revision <= row.facts.0.level_revision {
            return Ok(());
        }
        row.facts.0.level_revision = p.revision;
        let was = row.facts.0.level.or(level(p.from).ok().map(|l| l.to_db()));
        row.facts.0.level = Some(to.to_db());
        // A raised level re-routes: low → medium adds the high/medium list.
        let raised = was.is_none_or(|w| to.to_db() > w);
        let open: Vec<Trigger> = if raised {
            vec![Trigger::for_level(to)]
        } else {
            Vec::new()
        };
        record(tx, &row, &open).await?;
    } else if t == classification::IncidentFlagsChanged::full_name() {
        let p: classification::IncidentFlagsChanged = payload(&event.payload)?;
        let mut row = known(tx, SubjectKind::Incident, event).await?;
        if p.revision <= row.facts.0.flags_revision {
            return Ok(());
        }
        let before = row.facts.0.clone();
        // The level is IncidentLevelChanged's to move (which also re-routes).
        row.facts.0 = with_flags(&before, &p.flags.unwrap_or_default());
        row.facts.0.flags_revision = p.revision;
        let open = turned_on(&before, &row.facts.0, false);
        record(tx, &row, &open).await?;
    } else if t == classification::IncidentEvidenceRequired::full_name() {
        let p: classification::IncidentEvidenceRequired = payload(&event.payload)?;
        let mut row = known(tx, SubjectKind::Incident, event).await?;
        // (It follows the IncidentFlagsChanged of its own change, at the same revision.)
        if p.revision < row.facts.0.flags_revision {
            return Ok(());
        }
        let before = row.facts.0.clone();
        row.facts.0.evidence = true;
        row.facts.0.flags_revision = p.revision;
        let open = turned_on(&before, &row.facts.0, false);
        record(tx, &row, &open).await?;
    } else if t == classification::IncidentStateChanged::full_name() {
        let p: classification::IncidentStateChanged = payload(&event.payload)?;
        if p.to == classification::incident::State::Closed as i32 {
            engine::end(
                tx,
                SubjectKind::Incident,
                aggregate(event)?,
                &event.aggregate_reference,
                "the incident was closed",
                DbTime::now(),
            )
            .await?;
        }
    } else if t == classification::ReportAssessed::full_name() {
        let p: classification::ReportAssessed = payload(&event.payload)?;
        use classification::AssessmentDecision as D;
        let reason = match D::try_from(p.decision) {
            Ok(D::Dismiss) => "the report was dismissed".to_owned(),
            Ok(D::RaiseIncident | D::LinkIncident) => {
                format!(
                    "the report was taken into incident {}",
                    p.incident_reference
                )
            }
            _ => return Ok(()),
        };
        // The report's own escalations: the incident has its own from now on.
        let at = if anonymous_event(event) {
            DbTime::now().to_minute()
        } else {
            DbTime::now()
        };
        engine::end(
            tx,
            SubjectKind::Report,
            aggregate(event)?,
            &event.aggregate_reference,
            &reason,
            at,
        )
        .await?;
    }
    Ok(())
}

impl EventHandler for ClassificationEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        Box::pin(apply_classification(tx, event))
    }
}

/// Applies evidence-custody's events: evidence registered for an incident opens its
/// EVIDENCE_REQUIRED escalation (internal audit is told at once and guides the
/// collection, 14.2.1), unless one is open already (they are then on it), or the incident
/// was closed.
#[derive(Debug, Clone, Copy)]
pub struct CustodyEvents;

async fn apply_custody(tx: &mut Tx, event: &Event) -> Result<(), HandlerError> {
    if event.event_type != custody::EvidenceRegistered::full_name() {
        return Ok(());
    }
    let p: custody::EvidenceRegistered = payload(&event.payload)?;
    let incident = Uuid::try_parse(&p.incident_id).map_err(|_| bad("incident_id is not an id"))?;
    let new = SubjectRow {
        subject_id: incident,
        kind: SubjectKind::Incident,
        reference: p.incident_reference.clone(),
        facts: JsonText(Facts::default()),
        anonymous: false,
        ended_reason: None,
        ended_at: None,
    };
    let row = store::hold_subject(tx, &new).await?;
    record(tx, &row, &[Trigger::EvidenceRequired]).await
}

impl EventHandler for CustodyEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        Box::pin(apply_custody(tx, event))
    }
}

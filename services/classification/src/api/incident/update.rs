//! UpdateIncident: an incident's title, summary, expected recovery and flags, changed by
//! its officer or a security advisor with a reason; and the flags a linked report raises.

use custos_kit::{
    auth::Principal,
    error::{Violations, text},
    idempotency::{self, Key},
    outbox::NewEvent,
    storage::{DbTime, Tx},
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1 as pb;

use super::{
    IncidentApi, Needs, Opened, at_revision,
    change::{Effects, check_revision, replayed, with_note},
    not_closed, parse_key,
};
use crate::{
    error::ClassificationError,
    incident::{ActionKind, Flags, Standing},
    report::Medium,
    store::{self, Assessable, IncidentKey, RegisterRow},
};

impl IncidentApi {
    /// UpdateIncident: the officer or an advisor.
    #[tracing::instrument(skip_all)]
    pub(super) async fn update(
        &self,
        caller: &Principal,
        req: pb::UpdateIncidentRequest,
    ) -> Result<pb::Incident, ClassificationError> {
        let (incident_key, u) = self.parse_update(&req)?;
        let key = Key::new(&caller.subject, "UpdateIncident", &req.idempotency_key);
        let fingerprint = idempotency::fingerprint(&u);
        let needs = Needs::Change("change the incident");
        let mut c = match self
            .open_change(caller, &incident_key, needs, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => return replayed(bytes),
            Opened::New(c) => c,
        };
        not_closed(&c.row)?;
        at_revision(&c.row, u.revision)?;
        let before = c.row.clone();
        let flags_before = before.flags();
        let mut flags = flags_before.clone();
        u.apply(&mut c.row, &mut flags);
        let invalid = |description: &str| {
            ClassificationError::Invalid(vec![custos_kit::error::FieldViolation {
                field: "incident.flags.business_services".into(),
                description: description.into(),
            }])
        };
        if !flags.service_affecting {
            if u.business_services.as_ref().is_some_and(|s| !s.is_empty()) {
                return Err(invalid(
                    "names business services, but the incident is not service affecting: \
                     set flags.service_affecting too",
                ));
            }
            // Turning service_affecting off clears the services it named.
            flags.business_services.clear();
        } else if flags.business_services.is_empty() {
            return Err(invalid(
                "is required when the incident is service affecting: name the business \
                 services affected",
            ));
        }
        if flags_before.personal_data && !flags.personal_data && c.row.breach.is_some() {
            return Err(ClassificationError::Invalid(vec![
                custos_kit::error::FieldViolation {
                    field: "incident.flags.personal_data".into(),
                    description: "cannot be cleared: a personal-data breach is recorded on \
                                  this incident"
                        .into(),
                },
            ]));
        }
        // Clearing personal data stops the audit of every read: an advisor's decision.
        if flags_before.personal_data && !flags.personal_data && c.standing != Standing::Advisor {
            return Err(ClassificationError::AdvisorRequired(
                "clear flags.personal_data (reads of the incident would no longer be audited)",
            ));
        }
        let mut changed: Vec<&str> = Vec::new();
        for (path, differs) in [
            ("title", c.row.title != before.title),
            ("summary", c.row.summary != before.summary),
            (
                "expected_recovery_at",
                c.row.expected_recovery_at != before.expected_recovery_at,
            ),
            (
                "continuity_title",
                c.row.continuity_title != before.continuity_title,
            ),
            (
                "continuity_statement",
                c.row.continuity_statement != before.continuity_statement,
            ),
            (
                "flags.service_affecting",
                flags.service_affecting != flags_before.service_affecting,
            ),
            (
                "flags.business_services",
                flags.business_services != flags_before.business_services,
            ),
            (
                "flags.personal_data",
                flags.personal_data != flags_before.personal_data,
            ),
            (
                "flags.paper_records",
                flags.paper_records != flags_before.paper_records,
            ),
            (
                "flags.evidence_required",
                flags.evidence_required != flags_before.evidence_required,
            ),
        ] {
            if differs {
                changed.push(path);
            }
        }
        let mut effects = Effects::new();
        if !changed.is_empty() {
            c.row.set_flags(flags.clone());
            Self::save(&mut c.tx, &mut c.row, effects.at()).await?;
            let detail = with_note(format!("changed {}", changed.join(", ")), &u.reason);
            store::append_action(
                &mut c.tx,
                c.row.id,
                ActionKind::DetailsChanged,
                &detail,
                None,
                &caller.subject,
                effects.at(),
            )
            .await?;
            if flags != flags_before {
                effects.event(
                    &c.row,
                    &pb::IncidentFlagsChanged {
                        flags: Some(flags.to_wire()),
                        revision: c.row.revision,
                        changed_at: Some(to_timestamp(effects.now)),
                        overall_level: c.row.overall_level.to_wire(),
                    },
                );
            }
            if flags.evidence_required && !flags_before.evidence_required {
                effects.event(
                    &c.row,
                    &pb::IncidentEvidenceRequired {
                        revision: c.row.revision,
                        flagged_at: Some(to_timestamp(effects.now)),
                    },
                );
            }
        }
        // A change that turns personal data off is still a change of such an incident.
        self.finish(c, caller, "incident.update", effects, before.personal_data)
            .await
    }
}

/// UpdateIncident's request, validated: the values of the fields in its mask.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct Update {
    revision: i32,
    title: Option<String>,
    summary: Option<String>,
    expected_recovery_at: Option<Option<DbTime>>,
    continuity_statement: Option<String>,
    continuity_title: Option<String>,
    service_affecting: Option<bool>,
    business_services: Option<Vec<String>>,
    personal_data: Option<bool>,
    paper_records: Option<bool>,
    evidence_required: Option<bool>,
    reason: String,
}

impl Update {
    fn apply(&self, row: &mut RegisterRow, flags: &mut Flags) {
        if let Some(t) = &self.title {
            row.title = t.clone();
        }
        if let Some(s) = &self.summary {
            row.summary = s.clone();
        }
        if let Some(at) = self.expected_recovery_at {
            row.expected_recovery_at = at;
        }
        if let Some(t) = &self.continuity_statement {
            row.continuity_statement = t.clone();
        }
        if let Some(t) = &self.continuity_title {
            row.continuity_title = t.clone();
        }
        if let Some(b) = self.service_affecting {
            flags.service_affecting = b;
        }
        if let Some(s) = &self.business_services {
            flags.business_services = s.clone();
        }
        if let Some(b) = self.personal_data {
            flags.personal_data = b;
        }
        if let Some(b) = self.paper_records {
            flags.paper_records = b;
        }
        if let Some(b) = self.evidence_required {
            flags.evidence_required = b;
        }
    }
}

/// The paths UpdateIncident's mask may name.
const PATHS: &[&str] = &[
    "title",
    "summary",
    "expected_recovery_at",
    "continuity_title",
    "continuity_statement",
    "flags",
    "flags.service_affecting",
    "flags.business_services",
    "flags.personal_data",
    "flags.paper_records",
    "flags.evidence_required",
];

impl IncidentApi {
    fn parse_update(
        &self,
        req: &pb::UpdateIncidentRequest,
    ) -> Result<(IncidentKey, Update), ClassificationError> {
        let mut v = Violations::new();
        let key = parse_key(&mut v, "incident_id", &req.incident_id);
        check_revision(&mut v, req.revision);
        let mut u = Update {
            revision: req.revision,
            reason: text(&mut v, "reason", &req.reason, 2_000, true),
            ..Update::default()
        };
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        let given = req.incident.clone().unwrap_or_default();
        if req.incident.is_none() {
            v.add(
                "incident",
                "is required: the new values of the fields in update_mask",
            );
        }
        let flags = given.flags.clone().unwrap_or_default();
        let paths = req
            .update_mask
            .as_ref()
            .map(|m| m.paths.as_slice())
            .unwrap_or_default();
        if paths.is_empty() {
            v.add(
                "update_mask",
                format!(
                    "is required: name the fields to change ({})",
                    PATHS.join(", ")
                ),
            );
        }
        for (i, path) in paths.iter().enumerate() {
            let field = format!("update_mask.paths[{i}]");
            match path.as_str() {
                "title" => u.title = Some(text(&mut v, "incident.title", &given.title, 200, true)),
                "summary" => {
                    u.summary = Some(text(
                        &mut v,
                        "incident.summary",
                        &given.summary,
                        10_000,
                        false,
                    ))
                }
                "continuity_title" => {
                    u.continuity_title = Some(text(
                        &mut v,
                        "incident.continuity_title",
                        &given.continuity_title,
                        200,
                        false,
                    ))
                }
                "continuity_statement" => {
                    u.continuity_statement = Some(text(
                        &mut v,
                        "incident.continuity_statement",
                        &given.continuity_statement,
                        2_000,
                        false,
                    ))
                }
                "expected_recovery_at" => {
                    u.expected_recovery_at = Some(v.optional_time(
                        "incident.expected_recovery_at",
                        &given.expected_recovery_at,
                    ))
                }
                "flags"
                | "flags.service_affecting"
                | "flags.business_services"
                | "flags.personal_data"
                | "flags.paper_records"
                | "flags.evidence_required" => {
                    let all = path == "flags";
                    if all || path == "flags.service_affecting" {
                        u.service_affecting = Some(flags.service_affecting);
                    }
                    if all || path == "flags.business_services" {
                        u.business_services =
                            Some(self.parse_services(&mut v, &flags.business_services));
                    }
                    if all || path == "flags.personal_data" {
                        u.personal_data = Some(flags.personal_data);
                    }
                    if all || path == "flags.paper_records" {
                        u.paper_records = Some(flags.paper_records);
                    }
                    if all || path == "flags.evidence_required" {
                        u.evidence_required = Some(flags.evidence_required);
                    }
                }
                "*" => v.add(field, "`*` is not accepted: name each field to change"),
                other => v.add(
                    field,
                    format!(
                        "`{other}` is not a field UpdateIncident changes ({})",
                        PATHS.join(", ")
                    ),
                ),
            }
        }
        v.finish()?;
        Ok((key.expect("checked"), u))
    }

    /// Business service codes: configured ones, at most 50, sorted without repeats.
    fn parse_services(&self, v: &mut Violations, given: &[String]) -> Vec<String> {
        if given.len() > 50 {
            v.add(
                "incident.flags.business_services",
                "at most 50 business services",
            );
            return Vec::new();
        }
        for (i, code) in given.iter().enumerate() {
            if !self.business_services.contains(code) {
                v.add(
                    format!("incident.flags.business_services[{i}]"),
                    format!("`{code}` is not one of this organisation's business services"),
                );
            }
        }
        let mut codes = given.to_vec();
        codes.sort();
        codes.dedup();
        codes
    }
}

/// Links a report to an incident (the report's assessment is written by the caller): the
/// incident moves to its next revision with an entry in its actions log, and a report
/// that concerns personal information or paper records raises those flags if the
/// incident lacks them (so that its reads are audited and the right people are told),
/// which is an event.
pub(crate) async fn link_report(
    tx: &mut Tx,
    mut incident: RegisterRow,
    report: &Assessable,
    assessed_by: &str,
    now: time::OffsetDateTime,
) -> Result<Option<NewEvent>, ClassificationError> {
    let mut raised = Vec::new();
    if report.personal_information && !incident.personal_data {
        incident.personal_data = true;
        raised.push("flags.personal_data");
    }
    if report.medium == Medium::Paper && !incident.paper_records {
        incident.paper_records = true;
        raised.push("flags.paper_records");
    }
    let at = DbTime::new(now);
    incident.updated_at = at;
    if !store::save(tx, &incident).await? {
        return Err(ClassificationError::Corrupt(
            "an incident held by this transaction changed under it".into(),
        ));
    }
    let detail = if raised.is_empty() {
        format!("report {} linked", report.reference)
    } else {
        format!(
            "report {} linked; it raised {}",
            report.reference,
            raised.join(", ")
        )
    };
    store::append_action(
        tx,
        incident.id,
        ActionKind::ReportLinked,
        &detail,
        None,
        assessed_by,
        at,
    )
    .await?;
    if raised.is_empty() {
        return Ok(None);
    }
    Ok(Some(NewEvent::new(
        incident.id,
        incident.reference.clone(),
        now,
        &pb::IncidentFlagsChanged {
            flags: Some(incident.flags().to_wire()),
            revision: incident.revision + 1,
            changed_at: Some(to_timestamp(now)),
            overall_level: incident.overall_level.to_wire(),
        },
    )))
}

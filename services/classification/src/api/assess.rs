//! AssessReport and ListAssessments: a security advisor's decision about a report (the
//! category, the impact on every dimension of the matrix, and dismiss, monitor, raise or
//! link), recorded with its events in one transaction, and the history of them.

use custos_kit::{
    auth,
    error::{Violations, text},
    idempotency::{self, Claim, Key},
    outbox::NewEvent,
    page,
    storage::{DbTime, StorageError},
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1::{self as pb, assess_report_request::Decision as PbDecision};
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    ASSESS, ClassificationApi, TRIAGE,
    matrix::{parse_choices, parse_figures},
};
use crate::{
    assessment::{Decision, GivenFigures, Impact, IncidentState},
    error::ClassificationError,
    incident::{ActionKind, Flags},
    report::Medium,
    report::TriageState,
    store::{self, AssessmentRow, IncidentKey, NewAssessment, NewIncident},
};

/// The decision of a request, validated.
#[derive(Debug, Clone, PartialEq)]
enum Decided {
    Dismiss {
        reason: String,
    },
    Monitor,
    Raise {
        title: String,
        summary: String,
    },
    /// An incident's id, or its reference.
    Link(IncidentKey),
}

/// An assessment request, validated and scored.
#[derive(Debug, Clone, PartialEq)]
struct Assessing {
    report_id: Uuid,
    report_revision: i32,
    previous_sequence: i32,
    category: String,
    impact: Impact,
    decided: Decided,
    note: String,
    /// The descriptors chosen, `(dimension, row)`, as given.
    choices: Vec<(String, String)>,
}

impl Assessing {
    /// What the idempotency key is fingerprinted over: the request as given (validated),
    /// not the score, so that a retry after the matrix changed is still recognised, and
    /// two different figures that land on the same row are not.
    fn fingerprint(&self) -> Vec<u8> {
        idempotency::fingerprint(&(
            self.report_id,
            self.report_revision,
            self.previous_sequence,
            &self.category,
            &self.impact.figures,
            &self.choices,
            &self.decided,
            &self.note,
        ))
    }
}

fn parse_decision(v: &mut Violations, d: Option<&PbDecision>) -> Option<Decided> {
    Some(match d {
        None => {
            v.add(
                "decision",
                "is required: dismiss, monitor, raise_incident or link_incident",
            );
            return None;
        }
        Some(PbDecision::Dismiss(d)) => Decided::Dismiss {
            reason: text(v, "dismiss.reason", &d.reason, 2_000, true),
        },
        Some(PbDecision::Monitor(_)) => Decided::Monitor,
        Some(PbDecision::RaiseIncident(r)) => Decided::Raise {
            title: text(v, "raise_incident.title", &r.title, 200, true),
            summary: text(v, "raise_incident.summary", &r.summary, 10_000, false),
        },
        Some(PbDecision::LinkIncident(l)) => {
            let key = l.incident_id.trim();
            if key.is_empty() {
                v.add(
                    "link_incident.incident_id",
                    "is required: the incident's id or reference",
                );
                return None;
            }
            match Uuid::try_parse(key) {
                Ok(id) => Decided::Link(IncidentKey::Id(id)),
                Err(_) if key.len() <= 32 && key.bytes().all(|b| b.is_ascii_graphic()) => {
                    Decided::Link(IncidentKey::Reference(key.to_owned()))
                }
                Err(_) => {
                    v.add(
                        "link_incident.incident_id",
                        "must be an incident's id (a UUID) or reference (e.g. INC-2026-000017)",
                    );
                    return None;
                }
            }
        }
    })
}

fn parse_report_id(v: &mut Violations, id: &str) -> Option<Uuid> {
    v.check(
        "report_id",
        Uuid::try_parse(id).map_err(|_| "must be a report id (a UUID)"),
    )
}

pub(super) fn assessment_to_wire(r: AssessmentRow) -> pb::Assessment {
    pb::Assessment {
        id: r.id.to_string(),
        report_id: r.report_id.to_string(),
        report_reference: r.report_reference,
        sequence: r.sequence,
        report_revision: r.report_revision,
        category: r.category,
        impact: Some(r.impact.to_wire()),
        figures: Some(r.impact.figures.to_wire()),
        decision: r.decision.to_wire(),
        reason: r.reason,
        note: r.note,
        incident_id: r.incident_id.map(|i| i.to_string()).unwrap_or_default(),
        incident_reference: r.incident_reference.unwrap_or_default(),
        assessed_by: r.assessed_by,
        assessed_at: Some(to_timestamp(r.assessed_at.get())),
    }
}

impl ClassificationApi {
    /// The request, validated and scored; every bad field at once.
    fn parse_assessing(
        &self,
        req: &pb::AssessReportRequest,
    ) -> Result<Assessing, ClassificationError> {
        let m = &self.matrix;
        let mut v = Violations::new();
        let report_id = parse_report_id(&mut v, &req.report_id);
        if req.report_revision < 1 {
            v.add(
                "report_revision",
                "is required: the report's revision you read (TriageEntry.report_revision)",
            );
        }
        if req.previous_sequence < 0 {
            v.add(
                "previous_sequence",
                "must be 0 (a first assessment) or the sequence of the latest assessment you read",
            );
        }
        let category = text(&mut v, "category", &req.category, 64, true);
        if !category.is_empty() && self.taxonomy.get(&category).is_none() {
            v.add(
                "category",
                format!("`{category}` is not a category of this organisation's taxonomy"),
            );
        }
        let given = req.figures.clone().unwrap_or_default();
        let figures = parse_figures(&mut v, m, given.clone());
        let chosen = parse_choices(&mut v, m, &req.choices);
        let decided = parse_decision(&mut v, req.decision.as_ref());
        let note = text(&mut v, "note", &req.note, 10_000, false);
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        v.finish()?;
        let score = self.score_of(&figures, &chosen)?;
        Ok(Assessing {
            report_id: report_id.expect("checked"),
            report_revision: req.report_revision,
            previous_sequence: req.previous_sequence,
            category,
            impact: Impact::new(
                m,
                &self.matrix_wire.revision,
                &score,
                GivenFigures::from_wire(&given),
            ),
            decided: decided.expect("checked"),
            note,
            // In one order, so that a retry that lists them in another is the same request.
            choices: {
                let mut c: Vec<(String, String)> = req
                    .choices
                    .iter()
                    .map(|c| (c.dimension.clone(), c.row.clone()))
                    .collect();
                c.sort();
                c
            },
        })
    }

    /// Role: security advisor.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn assess(
        &self,
        request: Request<pb::AssessReportRequest>,
    ) -> Result<Response<pb::AssessReportResponse>, Status> {
        let principal = auth::require_any(&request, ASSESS)?.clone();
        let req = request.into_inner();
        let a = self.parse_assessing(&req)?;
        tracing::Span::current().record("report_id", tracing::field::display(a.report_id));
        let key = Key::new(&principal.subject, "AssessReport", &req.idempotency_key);
        let assessment = self.record_assessment(&principal.subject, &key, a).await?;
        Ok(Response::new(pb::AssessReportResponse {
            assessment: Some(assessment),
        }))
    }

    /// Records an assessment, the incident it raises, and their events, in one
    /// transaction; or replays the response of the first call with the same key.
    async fn record_assessment(
        &self,
        assessed_by: &str,
        key: &Key,
        a: Assessing,
    ) -> Result<pb::Assessment, ClassificationError> {
        let mut tx = self.db.begin().await?;
        let pending = match idempotency::claim(&mut tx, key, &a.fingerprint()).await? {
            Claim::Replay(bytes) => {
                return pb::AssessReportResponse::decode(bytes.as_slice())
                    .ok()
                    .and_then(|r| r.assessment)
                    .ok_or_else(|| ClassificationError::Corrupt("a stored response".into()));
            }
            Claim::New(pending) => pending,
        };
        let entry = store::assessable(&mut tx, a.report_id)
            .await?
            .ok_or(ClassificationError::ReportNotFound)?;
        if let Some(c) = self.taxonomy.get(&a.category)
            && !c.kinds.contains(&entry.kind.into())
        {
            return Err(ClassificationError::Invalid(vec![
                custos_kit::error::FieldViolation {
                    field: "category".into(),
                    description: format!(
                        "`{}` does not apply to a report of this kind ({})",
                        a.category,
                        entry.kind.name()
                    ),
                },
            ]));
        }
        if entry.report_revision != a.report_revision {
            return Err(ClassificationError::ReportAmended {
                expected: a.report_revision,
                current: entry.report_revision,
            });
        }
        if entry.assessment_sequence != a.previous_sequence {
            return Err(ClassificationError::ReportReassessed {
                expected: a.previous_sequence,
                latest: entry.assessment_sequence,
            });
        }
        let now = time::OffsetDateTime::now_utc();
        let at = DbTime::new(now);
        let (decision, state, reason) = match &a.decided {
            Decided::Dismiss { reason } => {
                (Decision::Dismiss, TriageState::Dismissed, reason.clone())
            }
            Decided::Monitor => (Decision::Monitor, TriageState::Monitoring, String::new()),
            Decided::Raise { .. } => (
                Decision::RaiseIncident,
                TriageState::Incident,
                String::new(),
            ),
            Decided::Link(_) => (Decision::LinkIncident, TriageState::Incident, String::new()),
        };
        let mut events = Vec::new();
        let incident = match &a.decided {
            Decided::Raise { title, summary } => {
                let id = Uuid::now_v7();
                let prefix = format!("{}-{}-", self.incident_prefix, now.year());
                let reference = store::declare(
                    &mut tx,
                    &NewIncident {
                        id,
                        title: title.clone(),
                        summary: summary.clone(),
                        category: a.category.clone(),
                        impact: a.impact.clone(),
                        declared_by: assessed_by.to_owned(),
                        declared_at: at,
                        personal_data: entry.personal_information,
                        paper_records: entry.medium == Medium::Paper,
                    },
                    &prefix,
                )
                .await?;
                store::append_action(
                    &mut tx,
                    id,
                    ActionKind::ReportLinked,
                    &format!("declared from report {}", entry.reference),
                    None,
                    assessed_by,
                    at,
                )
                .await?;
                events.push(NewEvent::new(
                    id,
                    reference.clone(),
                    now,
                    &pb::IncidentDeclared {
                        category: a.category.clone(),
                        overall_level: a.impact.overall.to_wire(),
                        report_id: a.report_id.to_string(),
                        declared_at: Some(to_timestamp(now)),
                        flags: Some(
                            Flags {
                                personal_data: entry.personal_information,
                                paper_records: entry.medium == Medium::Paper,
                                ..Flags::default()
                            }
                            .to_wire(),
                        ),
                    },
                ));
                Some((id, reference))
            }
            Decided::Link(key) => {
                store::hold_for_move(&mut tx, key, a.report_id).await?;
                let found = store::hold_incident(&mut tx, key).await?.ok_or(
                    ClassificationError::IncidentNotFound {
                        field: "link_incident.incident_id",
                    },
                )?;
                if found.state == IncidentState::Closed {
                    return Err(ClassificationError::IncidentClosed {
                        field: "link_incident.incident_id",
                    });
                }
                let (id, reference) = (found.id, found.reference.clone());
                if let Some(event) =
                    super::incident::link_report(&mut tx, found, &entry, assessed_by, now).await?
                {
                    events.push(event);
                }
                Some((id, reference))
            }
            Decided::Dismiss { .. } | Decided::Monitor => None,
        };
        let new = NewAssessment {
            id: Uuid::now_v7(),
            report_id: a.report_id,
            sequence: entry.assessment_sequence + 1,
            report_revision: entry.report_revision,
            category: a.category.clone(),
            impact: a.impact.clone(),
            decision,
            reason,
            note: a.note.clone(),
            incident_id: incident.as_ref().map(|(id, _)| *id),
            assessed_by: assessed_by.to_owned(),
            assessed_at: at,
        };
        let stale = || ClassificationError::ReportReassessed {
            expected: a.previous_sequence,
            latest: a.previous_sequence + 1,
        };
        match store::record(&mut tx, &new, state).await {
            Ok(true) => {}
            // Held since `assessable`, so neither should happen; if one does, the other
            // advisor's assessment stands (never ALREADY_EXISTS, which retrying clients
            // read as success).
            Ok(false) | Err(StorageError::Conflict { .. }) => return Err(stale()),
            Err(e) => return Err(e.into()),
        }
        events.push(NewEvent::new(
            a.report_id,
            entry.reference.clone(),
            now,
            &pb::ReportAssessed {
                assessment_id: new.id.to_string(),
                sequence: new.sequence,
                category: new.category.clone(),
                overall_level: a.impact.overall.to_wire(),
                decision: decision.to_wire(),
                incident_id: new.incident_id.map(|i| i.to_string()).unwrap_or_default(),
                incident_reference: incident
                    .as_ref()
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default(),
                assessed_at: Some(to_timestamp(now)),
                report_revision: new.report_revision,
            },
        ));
        tx.append_events(&events).await?;
        let incident_reference = incident.map(|(_, r)| r);
        let wire = assessment_to_wire(AssessmentRow {
            id: new.id,
            report_id: new.report_id,
            report_reference: entry.reference,
            sequence: new.sequence,
            report_revision: new.report_revision,
            category: new.category,
            impact: custos_kit::storage::JsonText(new.impact),
            overall_level: a.impact.overall,
            decision,
            reason: new.reason,
            note: new.note,
            incident_id: new.incident_id,
            incident_reference,
            assessed_by: new.assessed_by,
            assessed_at: new.assessed_at,
        });
        idempotency::complete(
            &mut tx,
            pending,
            &pb::AssessReportResponse {
                assessment: Some(wire.clone()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(wire)
    }

    /// Roles: security advisor, service.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn assessments(
        &self,
        request: Request<pb::ListAssessmentsRequest>,
    ) -> Result<Response<pb::ListAssessmentsResponse>, Status> {
        auth::require_any(&request, TRIAGE)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let report_id = parse_report_id(&mut v, &req.report_id);
        let limit = page::size(&mut v, "page_size", req.page_size);
        let scope = format!("ListAssessments {report_id:?}");
        let tokens = self.db.page_tokens();
        let before = v
            .check(
                "page_token",
                tokens.open::<i32>(scope.as_bytes(), &req.page_token),
            )
            .flatten();
        v.finish().map_err(ClassificationError::from)?;
        let report_id = report_id.expect("checked");
        tracing::Span::current().record("report_id", tracing::field::display(report_id));
        let mut conn = self.db.read().await.map_err(ClassificationError::from)?;
        if store::entry(&mut conn, report_id)
            .await
            .map_err(ClassificationError::from)?
            .is_none()
        {
            return Err(ClassificationError::ReportNotFound.into());
        }
        let mut rows = store::assessments(&mut conn, report_id, before, limit + 1)
            .await
            .map_err(ClassificationError::from)?;
        let next_page_token = page::cut(&mut rows, limit, |r| {
            tokens.seal(scope.as_bytes(), &r.sequence)
        });
        Ok(Response::new(pb::ListAssessmentsResponse {
            assessments: rows.into_iter().map(assessment_to_wire).collect(),
            next_page_token,
        }))
    }
}

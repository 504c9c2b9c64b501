//! AmendReport: helpdesk or an advisor adds or corrects details. The mask names the
//! fields; the amended report is validated whole, as a submission would be; only real
//! changes are recorded, each with who, when, why and the old and new values.

use custos_kit::{auth, error::Violations, outbox::NewEvent, storage::DbTime};
use custos_proto::intake::v1 as pb;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::{AMEND, IntakeApi, convert};
use crate::{
    error::IntakeError,
    report::{self, Contact},
    store::{self, Amendment},
};

/// Copies the masked `details.*` field from `from` into `into`; false if unknown.
fn copy_details_field(path: &str, from: &pb::ReportDetails, into: &mut pb::ReportDetails) -> bool {
    match path {
        "details.category" => into.category = from.category.clone(),
        "details.medium" => into.medium = from.medium,
        "details.data_involved" => into.data_involved = from.data_involved.clone(),
        "details.risk_to_others" => into.risk_to_others = from.risk_to_others,
        "details.risk_details" => into.risk_details = from.risk_details.clone(),
        "details.incident_location" => into.incident_location = from.incident_location.clone(),
        "details.inventory_numbers" => into.inventory_numbers = from.inventory_numbers.clone(),
        "details.occurred_at" => into.occurred_at = from.occurred_at,
        "details.affected_location" => into.affected_location = from.affected_location.clone(),
        "details.circumstances" => into.circumstances = from.circumstances.clone(),
        "details.symptoms" => into.symptoms = from.symptoms.clone(),
        "details.personal_information" => into.personal_information = from.personal_information,
        "details.malware_suspected" => into.malware_suspected = from.malware_suspected,
        _ => return false,
    }
    true
}

fn copy_contact_field(
    path: &str,
    from: &pb::ReporterContact,
    into: &mut pb::ReporterContact,
) -> bool {
    match path {
        "contact.name" => into.name = from.name.clone(),
        "contact.phone" => into.phone = from.phone.clone(),
        "contact.email" => into.email = from.email.clone(),
        _ => return false,
    }
    true
}

impl IntakeApi {
    /// Roles: helpdesk, security advisor.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn amend(
        &self,
        request: Request<pb::AmendReportRequest>,
    ) -> Result<Response<pb::AmendReportResponse>, Status> {
        let principal = auth::require_any(&request, AMEND)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = v.check("report_id", convert::parse_id(&req.report_id));
        let reason = report::text(&mut v, "reason", &req.reason, 1000, true);
        let paths = req
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        if paths.is_empty() {
            v.add(
                "update_mask",
                "name at least one field to change, e.g. details.category",
            );
        }
        let probe_details = pb::ReportDetails::default();
        let probe_contact = pb::ReporterContact::default();
        for (i, path) in paths.iter().enumerate() {
            let known = copy_details_field(path, &probe_details, &mut pb::ReportDetails::default())
                || copy_contact_field(path, &probe_contact, &mut pb::ReporterContact::default());
            if !known {
                v.add(
                    format!("update_mask.paths[{i}]"),
                    format!("`{path}` is not a field that can be amended"),
                );
            }
        }
        if req.expected_revision < 0 {
            v.add("expected_revision", "must not be negative");
        }
        v.finish().map_err(IntakeError::from)?;
        let id = id.expect("checked");
        tracing::Span::current().record("report_id", tracing::field::display(id));
        let now = OffsetDateTime::now_utc();
        let rules = self.rules(now);
        let expected = (req.expected_revision > 0).then_some(req.expected_revision);
        let new_details = req.details.clone().unwrap_or_default();
        let new_contact = req.contact.clone().unwrap_or_default();

        let mut tx = self.db().begin().await.map_err(IntakeError::from)?;
        let (row, revision) = store::amend(&mut tx, id, expected, |row| {
            let kind = row.kind;
            let old_details = &row.details.0;
            let old_contact = row.contact();
            let mut details = old_details.to_wire();
            let mut contact = old_contact.map(Contact::to_wire);
            for path in &paths {
                if copy_details_field(path, &new_details, &mut details) {
                    continue;
                }
                match contact.as_mut() {
                    Some(c) => {
                        copy_contact_field(path, &new_contact, c);
                    }
                    None => return Err(IntakeError::AnonymousHasNoContact),
                }
            }
            let mut v = Violations::new();
            let details = report::parse_details(&mut v, Some(kind), Some(&details), &rules);
            let contact = contact.map(|c| report::parse_contact(&mut v, &c));
            v.finish()?;
            let details = details.expect("checked");
            let mut before = old_details.fields();
            before.extend(old_contact.into_iter().flat_map(Contact::fields));
            let mut after = details.fields();
            after.extend(contact.iter().flat_map(Contact::fields));
            let changes: Vec<(String, String, String)> = before
                .into_iter()
                .zip(after)
                .filter(|((_, old), (_, new))| old != new)
                .map(|((field, old), (_, new))| (field.to_owned(), old, new))
                .collect();
            if changes.is_empty() {
                let mut v = Violations::new();
                v.add("update_mask", "the amendment changes nothing");
                return Err(v.finish().unwrap_err().into());
            }
            let event = NewEvent::new(
                row.id,
                row.reference.clone(),
                now,
                &pb::ReportAmended {
                    revision: row.revision + 1,
                    changed_fields: changes.iter().map(|c| c.0.clone()).collect(),
                    category: details.category.clone(),
                    medium: details.medium.to_wire(),
                    personal_information: details.personal_information,
                    requires_senior_management_notice: details.senior_notice(),
                    malware_suspected: Some(details.malware_suspected),
                    occurred_at: details.occurred_at.map(custos_kit::time_fmt::to_timestamp),
                    match_keys: Some(if row.anonymous {
                        Default::default()
                    } else {
                        self.match_keys.of(&details)
                    }),
                },
            );
            Ok(Amendment {
                details,
                contact,
                changes,
                reason: reason.clone(),
                changed_by: principal.subject.clone(),
                at: DbTime::new(now),
                event,
            })
        })
        .await?;
        // The answer holds the whole report, personal data included: the amendment is
        // recorded as a read too, in its own transaction.
        custos_kit::audit::record(
            &mut tx,
            &principal,
            "report.amend",
            "report",
            &[row.id.to_string()],
        )
        .await
        .map_err(IntakeError::from)?;
        tx.commit().await.map_err(IntakeError::from)?;
        tracing::info!(reference = %row.reference, revision = revision.number, "report amended");
        Ok(Response::new(pb::AmendReportResponse {
            report: Some(convert::report(&row)),
            revision: Some(convert::revision(&revision)),
        }))
    }
}

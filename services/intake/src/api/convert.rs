//! Rows and domain values → wire messages.

use custos_kit::{storage::DbTime, time_fmt::to_timestamp};
use custos_proto::intake::v1 as pb;
use uuid::Uuid;

use crate::store::{
    FollowUpRow, Original, ProviderReportRow, ProviderResponseRow, ReportRow, ReportSummaryRow,
    RevisionRow,
};

pub fn ts(at: DbTime) -> Option<prost_types::Timestamp> {
    Some(to_timestamp(at.get()))
}

pub fn report(row: &ReportRow) -> pb::Report {
    into_report(row.clone())
}

/// The same, consuming the row (lists convert many rows: no copies of their text).
pub fn into_report(row: ReportRow) -> pb::Report {
    pb::Report {
        id: row.id.to_string(),
        reference: row.reference,
        kind: row.kind.to_wire(),
        status: row.status.to_wire(),
        details: Some(row.details.into_inner().into_wire()),
        contact: row.contact.map(|c| c.into_inner().into_wire()),
        anonymous: row.anonymous,
        submitted_at: ts(row.submitted_at),
        submitted_by: row.submitted_by.unwrap_or_default(),
        requires_senior_management_notice: row.senior_notice,
        revision: row.revision,
        updated_at: ts(row.updated_at),
    }
}

/// A report in the basic view: what a triage list shows, no personal data.
pub fn summary(row: ReportSummaryRow) -> pb::Report {
    pb::Report {
        id: row.id.to_string(),
        reference: row.reference,
        kind: row.kind.to_wire(),
        status: row.status.to_wire(),
        details: Some(pb::ReportDetails {
            category: row.category,
            medium: row.medium.to_wire(),
            ..Default::default()
        }),
        anonymous: row.anonymous,
        submitted_at: ts(row.submitted_at),
        requires_senior_management_notice: row.senior_notice,
        revision: row.revision,
        updated_at: ts(row.updated_at),
        ..Default::default()
    }
}

/// The history: revision 1 is the original submission, then every amendment.
pub fn history(
    row: &ReportRow,
    original: &Original,
    revisions: &[RevisionRow],
) -> Vec<pb::Revision> {
    let mut fields = original.details.fields();
    if let Some(contact) = &original.contact {
        fields.extend(contact.fields());
    }
    let mut out = vec![pb::Revision {
        number: 1,
        changed_at: ts(row.submitted_at),
        changed_by: row.submitted_by.clone().unwrap_or_default(),
        reason: "submitted".into(),
        changes: fields
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(f, v)| pb::FieldChange {
                field: f.into(),
                old_value: String::new(),
                new_value: v,
            })
            .collect(),
    }];
    out.extend(revisions.iter().map(revision));
    out
}

pub fn revision(r: &RevisionRow) -> pb::Revision {
    pb::Revision {
        number: r.number,
        changed_at: ts(r.changed_at),
        changed_by: r.changed_by.clone(),
        reason: r.reason.clone(),
        changes: r
            .changes
            .iter()
            .map(|(field, old_value, new_value)| pb::FieldChange {
                field: field.clone(),
                old_value: old_value.clone(),
                new_value: new_value.clone(),
            })
            .collect(),
    }
}

pub fn follow_up(f: &FollowUpRow) -> pb::FollowUp {
    pb::FollowUp {
        id: f.id.to_string(),
        added_at: ts(f.added_at),
        source: f.source.to_wire(),
        added_by: f.added_by.clone().unwrap_or_default(),
        text: f.text.clone(),
    }
}

pub fn provider_report(
    p: &ProviderReportRow,
    responses: &[ProviderResponseRow],
) -> pb::ProviderReport {
    pb::ProviderReport {
        id: p.id.to_string(),
        report_id: p.report_id.to_string(),
        report_reference: p.report_reference.clone(),
        provider: p.provider.clone(),
        provider_reference: p.provider_reference.clone(),
        reported_at: ts(p.reported_at),
        recorded_by: p.recorded_by.clone(),
        recorded_at: ts(p.recorded_at),
        responses: responses
            .iter()
            .map(|r| pb::ProviderResponse {
                id: r.id.to_string(),
                responded_at: ts(r.responded_at),
                summary: r.summary.clone(),
                recorded_by: r.recorded_by.clone(),
                recorded_at: ts(r.recorded_at),
            })
            .collect(),
        verdict: p.verdict.to_wire(),
        verdict_notes: p.verdict_notes.clone(),
        verdict_by: p.verdict_by.clone().unwrap_or_default(),
        verdict_at: p.verdict_at.and_then(ts),
    }
}

pub fn parse_id(value: &str) -> Result<Uuid, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    Uuid::try_parse(value).map_err(|_| "must be a UUID".into())
}

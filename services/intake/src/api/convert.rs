//! Rows and domain values → wire messages, and page tokens.

use custos_kit::{db_time::DbTime, time_fmt::to_timestamp};
use custos_proto::intake::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    error::IntakeError,
    store::{FollowUpRow, ProviderReportRow, ProviderResponseRow, ReportRow, RevisionRow},
};

pub fn ts(at: DbTime) -> Option<prost_types::Timestamp> {
    Some(to_timestamp(at.get()))
}

pub fn report(row: &ReportRow) -> Result<pb::Report, IntakeError> {
    Ok(pb::Report {
        id: row.id.to_string(),
        reference: row.reference.clone(),
        kind: row.kind()?.to_wire(),
        status: row.status()?.to_wire(),
        details: Some(row.details()?.to_wire()),
        contact: row.contact()?.map(|c| c.to_wire()),
        anonymous: row.anonymous,
        submitted_at: ts(row.submitted_at),
        submitted_by: row.submitted_by.clone().unwrap_or_default(),
        requires_senior_management_notice: row.senior_notice,
        revision: row.revision,
        updated_at: ts(row.updated_at),
    })
}

/// The history: revision 1 is the original submission, then every amendment.
pub fn history(
    row: &ReportRow,
    revisions: &[RevisionRow],
) -> Result<Vec<pb::Revision>, IntakeError> {
    let original = row.original()?;
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
    for r in revisions {
        out.push(revision(r)?);
    }
    Ok(out)
}

fn changes(r: &RevisionRow) -> Result<Vec<(String, String, String)>, IntakeError> {
    serde_json::from_str(&r.changes).map_err(|e| IntakeError::Corrupt(e.to_string()))
}

pub fn revision(r: &RevisionRow) -> Result<pb::Revision, IntakeError> {
    Ok(pb::Revision {
        number: r.number,
        changed_at: ts(r.changed_at),
        changed_by: r.changed_by.clone(),
        reason: r.reason.clone(),
        changes: changes(r)?
            .into_iter()
            .map(|(field, old_value, new_value)| pb::FieldChange {
                field,
                old_value,
                new_value,
            })
            .collect(),
    })
}

pub fn follow_up(f: &FollowUpRow) -> pb::FollowUp {
    pb::FollowUp {
        id: f.id.to_string(),
        added_at: ts(f.added_at),
        source: i32::from(f.source),
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
        verdict: i32::from(p.verdict),
        verdict_notes: p.verdict_notes.clone(),
        verdict_by: p.verdict_by.clone().unwrap_or_default(),
        verdict_at: p.verdict_at.and_then(ts),
    }
}

/// A keyset page token: the time and id of the last item returned.
pub fn page_token(at: DbTime, id: Uuid) -> String {
    let micros = at.get().unix_timestamp_nanos() / 1_000;
    format!("{micros}_{}", id.simple())
}

pub fn parse_page_token(token: &str) -> Result<Option<(DbTime, Uuid)>, String> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || "is not a page token returned by this call".to_owned();
    let (micros, id) = token.split_once('_').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000).map_err(|_| bad())?;
    let id = Uuid::try_parse(id).map_err(|_| bad())?;
    Ok(Some((DbTime::new(at), id)))
}

pub fn parse_id(value: &str) -> Result<Uuid, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    Uuid::try_parse(value).map_err(|_| "must be a UUID".into())
}

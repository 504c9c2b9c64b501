//! How the CLI shows results: readable tables by default, JSON with `--json`, and gRPC
//! errors as a sentence with every bad field listed.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::{classification::v1 as cpb, intake::v1 as pb};
use serde_json::{Value, json};

pub fn time(ts: &Option<prost_types::Timestamp>) -> String {
    ts.as_ref()
        .and_then(custos_kit::time_fmt::from_timestamp)
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn name<E: Copy>(
    value: i32,
    parse: fn(i32) -> Result<E, prost::UnknownEnumValue>,
    show: fn(&E) -> &'static str,
    prefix: &str,
) -> String {
    parse(value)
        .map(|e| show(&e).trim_start_matches(prefix).to_lowercase())
        .unwrap_or_else(|_| value.to_string())
}

pub fn kind(v: i32) -> String {
    name(
        v,
        pb::ReportKind::try_from,
        pb::ReportKind::as_str_name,
        "REPORT_KIND_",
    )
}

pub fn status(v: i32) -> String {
    name(
        v,
        pb::ReportStatus::try_from,
        pb::ReportStatus::as_str_name,
        "REPORT_STATUS_",
    )
}

pub fn medium(v: i32) -> String {
    name(
        v,
        pb::ReportMedium::try_from,
        pb::ReportMedium::as_str_name,
        "REPORT_MEDIUM_",
    )
}

pub fn report_json(r: &pb::Report) -> Value {
    let d = r.details.clone().unwrap_or_default();
    json!({
        "id": r.id, "reference": r.reference, "kind": kind(r.kind), "status": status(r.status),
        "anonymous": r.anonymous, "submitted_at": time(&r.submitted_at), "submitted_by": r.submitted_by,
        "revision": r.revision, "requires_senior_management_notice": r.requires_senior_management_notice,
        "contact": r.contact.as_ref().map(|c| json!({"name": c.name, "phone": c.phone, "email": c.email})),
        "details": {
            "category": d.category, "medium": medium(d.medium), "data_involved": d.data_involved,
            "incident_location": d.incident_location, "inventory_numbers": d.inventory_numbers,
            "occurred_at": time(&d.occurred_at), "affected_location": d.affected_location,
            "circumstances": d.circumstances, "symptoms": d.symptoms,
            "personal_information": d.personal_information, "malware_suspected": d.malware_suspected,
        },
    })
}

pub fn reports_table(reports: &[pb::Report]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "reference",
        "kind",
        "status",
        "category",
        "medium",
        "submitted",
        "by",
    ]);
    for r in reports {
        let d = r.details.clone().unwrap_or_default();
        let by = if r.anonymous {
            "(anonymous)".to_owned()
        } else {
            r.submitted_by.clone()
        };
        table.add_row([
            r.reference.clone(),
            kind(r.kind),
            status(r.status),
            d.category,
            medium(d.medium),
            time(&r.submitted_at),
            by,
        ]);
    }
    table.to_string()
}

pub fn report_detail(r: &pb::Report) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let d = r.details.clone().unwrap_or_default();
    let contact = r
        .contact
        .as_ref()
        .map(|c| format!("{} {} {}", c.name, c.phone, c.email))
        .unwrap_or_else(|| "(anonymous)".into());
    for (k, v) in [
        ("reference", r.reference.clone()),
        ("id", r.id.clone()),
        ("kind", kind(r.kind)),
        ("status", status(r.status)),
        ("category", d.category),
        ("medium", medium(d.medium)),
        ("reporter", contact),
        ("data involved", d.data_involved),
        ("location", d.incident_location),
        ("occurred", time(&d.occurred_at)),
        ("circumstances", d.circumstances),
        ("symptoms", d.symptoms),
        (
            "senior management notice",
            r.requires_senior_management_notice.to_string(),
        ),
        ("revision", r.revision.to_string()),
        ("submitted", time(&r.submitted_at)),
    ] {
        table.add_row([k.to_owned(), v]);
    }
    table.to_string()
}

/// A gRPC error as the person at the terminal should read it.
pub fn status_error(status: &tonic::Status) -> String {
    use tonic::Code;
    let what = match status.code() {
        Code::Unauthenticated => {
            "not signed in (set --token or CUSTOS_TOKEN; `custos token` makes one in standalone mode)"
        }
        Code::PermissionDenied => "not allowed",
        Code::NotFound => "not found",
        Code::InvalidArgument => "invalid request",
        Code::AlreadyExists => "already exists",
        Code::FailedPrecondition => "not possible now",
        Code::Aborted => "changed by someone else meanwhile",
        Code::Unavailable => "service unavailable (is it running? check --server)",
        Code::DeadlineExceeded => "timed out",
        _ => "failed",
    };
    let mut out = format!("error: {what}: {}", status.message());
    for v in custos_kit::error::status_violations(status) {
        out.push_str(&format!("\n  - {}: {}", v.field, v.description));
    }
    out
}

/// Incidents, as `custos incident` prints them.
pub fn incident_state(v: i32) -> String {
    cpb::incident::State::try_from(v)
        .map(|s| s.as_str_name().trim_start_matches("STATE_").to_lowercase())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn incident_json(i: &cpb::Incident) -> Value {
    let flags = i.flags.clone().unwrap_or_default();
    json!({"id": i.id, "reference": i.reference, "title": i.title, "summary": i.summary,
        "category": i.category, "level": crate::classification_cli::level(i.overall_level), "state": incident_state(i.state),
        "officer": i.officer, "revision": i.revision, "report_count": i.report_count,
        "service_affecting": flags.service_affecting,
        "business_services": flags.business_services, "personal_data": flags.personal_data,
        "paper_records": flags.paper_records, "evidence_required": flags.evidence_required,
        "continuity_statement": i.continuity_statement,
        "continuity_title": i.continuity_title,
        "expected_recovery_at": time(&i.expected_recovery_at),
        "breach": i.breach.as_ref().map(|b| json!({"aware_at": time(&b.aware_at),
            "report_due_at": time(&b.report_due_at), "decision": b.decision,
            "reason": b.decision_reason})),
        "review": i.review.as_ref().map(|r| json!({"root_cause": r.root_cause,
            "approved_by": r.approved_by})),
        "declared_by": i.declared_by, "declared_at": time(&i.declared_at),
        "updated_at": time(&i.updated_at), "closed_at": time(&i.closed_at)})
}

pub fn incident(json_out: bool, i: &cpb::Incident) {
    if json_out {
        println!("{}", incident_json(i));
    } else {
        let flags = i.flags.clone().unwrap_or_default();
        println!(
            "{} {} ({}, {}) revision {}: {}{}{}",
            i.reference,
            incident_state(i.state),
            crate::classification_cli::level(i.overall_level),
            if i.officer.is_empty() {
                "no officer"
            } else {
                &i.officer
            },
            i.revision,
            i.title,
            if flags.service_affecting {
                format!(
                    " [service affecting: {}]",
                    flags.business_services.join(", ")
                )
            } else {
                String::new()
            },
            if flags.personal_data {
                " [personal data]"
            } else {
                ""
            },
        );
    }
}

/// Every page of a list call, in order: `fetch(page_token)` answers one page's items and
/// the next page's token (empty after the last).
pub async fn every_page<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, String>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = fetch(token).await.map_err(|s| status_error(&s))?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_page_follows_the_tokens_to_the_last() {
        let mut asked = Vec::new();
        let all = every_page(|token| {
            asked.push(token.clone());
            async move {
                Ok(match token.as_str() {
                    "" => (vec![1, 2], "b".to_owned()),
                    "b" => (vec![3], "c".to_owned()),
                    _ => (vec![4], String::new()),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(all, [1, 2, 3, 4]);
        assert_eq!(asked, ["", "b", "c"]);
        let failed = every_page(|_| async {
            Err::<(Vec<u8>, String), _>(tonic::Status::not_found("no such escalation"))
        })
        .await
        .unwrap_err();
        assert!(failed.contains("no such escalation"), "{failed}");
    }

    #[test]
    fn grpc_errors_read_as_sentences_with_every_bad_field() {
        let mut details = tonic_types::ErrorDetails::new();
        details.add_bad_request_violation("contact.phone", "must be a phone number");
        details.add_bad_request_violation("details.category", "is required");
        let status = <tonic::Status as tonic_types::StatusExt>::with_error_details(
            tonic::Code::InvalidArgument,
            "the request has invalid fields",
            details,
        );
        let text = status_error(&status);
        assert!(text.starts_with("error: invalid request: the request has invalid fields"));
        assert!(text.contains("\n  - contact.phone: must be a phone number"));
        assert!(text.contains("\n  - details.category: is required"));
        let text = status_error(&tonic::Status::unauthenticated(
            "this call needs a bearer token",
        ));
        assert!(text.contains("CUSTOS_TOKEN"));
    }
}

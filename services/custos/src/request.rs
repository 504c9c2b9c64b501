//! Turning the command line's flags into API requests: a new report from `report
//! submit`, and the `FIELD=VALUE` sets of `report amend`.

use custos_proto::intake::v1::{self as pb, submit_report_request::Reporter};

use crate::cli::Submit;

fn timestamp(field: &str, text: &str) -> Result<prost_types::Timestamp, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(custos_kit::time_fmt::to_timestamp)
        .map_err(|_| {
            format!("{field}: `{text}` is not an RFC 3339 time such as 2026-11-28T09:30:00Z")
        })
}

fn risk(text: &str) -> Result<i32, String> {
    match text {
        "yes" => Ok(pb::RiskToOthers::Yes as i32),
        "no" => Ok(pb::RiskToOthers::No as i32),
        "unknown" => Ok(pb::RiskToOthers::Unknown as i32),
        other => Err(format!("`{other}` must be yes, no or unknown")),
    }
}

pub fn submit_request(s: &Submit) -> Result<pb::SubmitReportRequest, String> {
    let kind = s.kind.to_wire();
    let medium = s.medium.to_wire();
    let reporter = if s.anonymous {
        Reporter::Anonymous(pb::Anonymous {})
    } else {
        Reporter::Contact(pb::ReporterContact {
            name: s.name.clone(),
            phone: s.phone.clone(),
            email: s.email.clone(),
        })
    };
    Ok(pb::SubmitReportRequest {
        kind,
        details: Some(pb::ReportDetails {
            category: s.category.clone(),
            medium,
            data_involved: s.data_involved.clone(),
            risk_to_others: risk(&s.at_risk).map_err(|e| format!("--at-risk: {e}"))?,
            incident_location: s.location.clone(),
            occurred_at: s
                .occurred_at
                .as_deref()
                .map(|t| timestamp("--occurred-at", t))
                .transpose()?,
            circumstances: s.circumstances.clone(),
            symptoms: s.symptoms.clone(),
            personal_information: s.personal_information,
            malware_suspected: s.malware_suspected,
            ..Default::default()
        }),
        reporter: Some(reporter),
        idempotency_key: s
            .idempotency_key
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
    })
}

/// Sets one `FIELD=VALUE` on an amendment.
pub fn apply_set(
    set: &str,
    details: &mut pb::ReportDetails,
    contact: &mut pb::ReporterContact,
) -> Result<String, String> {
    let (field, value) = set
        .split_once('=')
        .ok_or_else(|| format!("--set `{set}`: write FIELD=VALUE"))?;
    let value = value.to_owned();
    let flag = |v: &str| {
        v.parse::<bool>()
            .map_err(|_| format!("{field}: `{v}` is not true or false"))
    };
    match field {
        "details.category" => details.category = value,
        "details.data_involved" => details.data_involved = value,
        "details.risk_details" => details.risk_details = value,
        "details.incident_location" => details.incident_location = value,
        "details.affected_location" => details.affected_location = value,
        "details.circumstances" => details.circumstances = value,
        "details.symptoms" => details.symptoms = value,
        "details.inventory_numbers" => {
            details.inventory_numbers = value
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }
        "details.occurred_at" => details.occurred_at = Some(timestamp(field, &value)?),
        "details.risk_to_others" => {
            details.risk_to_others = risk(&value).map_err(|e| format!("{field}: {e}"))?
        }
        "details.medium" => {
            details.medium = match value.as_str() {
                "electronic" => pb::ReportMedium::Electronic as i32,
                "paper" => pb::ReportMedium::Paper as i32,
                other => return Err(format!("{field}: `{other}` must be electronic or paper")),
            }
        }
        "details.personal_information" => details.personal_information = flag(&value)?,
        "details.malware_suspected" => details.malware_suspected = flag(&value)?,
        "contact.name" => contact.name = value,
        "contact.phone" => contact.phone = value,
        "contact.email" => contact.email = value,
        other => {
            return Err(format!(
                "--set: `{other}` is not a field that can be amended"
            ));
        }
    }
    Ok(field.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amend_sets_build_the_mask_and_values() {
        let (mut d, mut c) = (pb::ReportDetails::default(), pb::ReporterContact::default());
        let paths: Vec<String> = [
            "details.medium=paper",
            "details.inventory_numbers=A1, B2",
            "contact.phone=01632 960000",
        ]
        .iter()
        .map(|s| apply_set(s, &mut d, &mut c).unwrap())
        .collect();
        assert_eq!(
            paths,
            [
                "details.medium",
                "details.inventory_numbers",
                "contact.phone"
            ]
        );
        assert_eq!(d.medium, pb::ReportMedium::Paper as i32);
        assert_eq!(d.inventory_numbers, ["A1", "B2"]);
        assert_eq!(c.phone, "01632 960000");
        assert!(
            apply_set("details.reference=x", &mut d, &mut c)
                .unwrap_err()
                .contains("not a field")
        );
        assert!(
            apply_set("details.occurred_at=yesterday", &mut d, &mut c)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}

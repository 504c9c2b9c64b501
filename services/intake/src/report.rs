//! The report domain: what a report holds (policy 14.1.1), parsed and validated from the
//! wire once ("parse, don't validate"), so that the store only ever sees valid reports.

use custos_kit::{error::Violations, time_fmt};
use custos_proto::intake::v1 as pb;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use custos_taxonomy::Taxonomy;

custos_kit::wire_enum!(
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    Kind, pb::ReportKind, "EVENT or WEAKNESS", {
    Event = 1 => Event,
    Weakness = 2 => Weakness,
});
impl From<Kind> for custos_taxonomy::Kind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Event => custos_taxonomy::Kind::Event,
            Kind::Weakness => custos_taxonomy::Kind::Weakness,
        }
    }
}

impl From<custos_taxonomy::Kind> for Kind {
    fn from(k: custos_taxonomy::Kind) -> Self {
        match k {
            custos_taxonomy::Kind::Event => Kind::Event,
            custos_taxonomy::Kind::Weakness => Kind::Weakness,
        }
    }
}

custos_kit::wire_enum!(
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    Medium, pb::ReportMedium, "ELECTRONIC or PAPER", {
    Electronic = 1 => Electronic,
    Paper = 2 => Paper,
});
custos_kit::wire_enum!(
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    RiskToOthers, pb::RiskToOthers, "YES, NO or UNKNOWN", {
    Yes = 1 => Yes,
    No = 2 => No,
    Unknown = 3 => Unknown,
});
custos_kit::wire_enum!(
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    Status, pb::ReportStatus, "a report status", {
    Received = 1 => Received,
    UnderAssessment = 2 => UnderAssessment,
    EscalatedToIncident = 3 => EscalatedToIncident,
    Closed = 4 => Closed,
});
custos_kit::wire_enum!(
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    FollowUpSource, pb::FollowUpSource, "ACCOUNT or RECEIPT", {
    Account = 1 => Account,
    Receipt = 2 => Receipt,
});
custos_kit::wire_enum!(
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    FixVerdict, pb::FixVerdict, "PENDING, EFFECTIVE or INEFFECTIVE", {
    Pending = 1 => Pending,
    Effective = 2 => Effective,
    Ineffective = 3 => Ineffective,
});

/// What the reporter supplied about the event or weakness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Details {
    pub category: String,
    pub medium: Medium,
    pub data_involved: String,
    pub risk_to_others: Option<RiskToOthers>,
    pub risk_details: String,
    pub incident_location: String,
    pub inventory_numbers: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub occurred_at: Option<OffsetDateTime>,
    pub affected_location: String,
    pub circumstances: String,
    pub symptoms: String,
    pub personal_information: bool,
    pub malware_suspected: bool,
}

/// A named reporter's contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub phone: String,
    pub email: String,
}

/// A valid report, ready to store.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub kind: Kind,
    pub details: Details,
    /// `None` for an anonymous report.
    pub contact: Option<Contact>,
}

impl NewReport {
    /// Paper or personal information goes to senior management and the DPO / Caldicott
    /// Guardian (14.1.1).
    pub fn senior_notice(&self) -> bool {
        self.details.senior_notice()
    }
}

impl Details {
    pub fn senior_notice(&self) -> bool {
        self.medium == Medium::Paper || self.personal_information
    }

    /// Each field as displayed in a report's history, by its request path.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("details.category", self.category.clone()),
            ("details.medium", self.medium.name().to_owned()),
            ("details.data_involved", self.data_involved.clone()),
            (
                "details.risk_to_others",
                self.risk_to_others
                    .map(|r| r.name().to_owned())
                    .unwrap_or_default(),
            ),
            ("details.risk_details", self.risk_details.clone()),
            ("details.incident_location", self.incident_location.clone()),
            (
                "details.inventory_numbers",
                self.inventory_numbers.join(", "),
            ),
            (
                "details.occurred_at",
                self.occurred_at
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default(),
            ),
            ("details.affected_location", self.affected_location.clone()),
            ("details.circumstances", self.circumstances.clone()),
            ("details.symptoms", self.symptoms.clone()),
            (
                "details.personal_information",
                self.personal_information.to_string(),
            ),
            (
                "details.malware_suspected",
                self.malware_suspected.to_string(),
            ),
        ]
    }

    pub fn to_wire(&self) -> pb::ReportDetails {
        self.clone().into_wire()
    }

    /// The same, consuming the details (no copies of the text).
    pub fn into_wire(self) -> pb::ReportDetails {
        pb::ReportDetails {
            category: self.category,
            medium: self.medium.to_wire(),
            data_involved: self.data_involved,
            risk_to_others: self.risk_to_others.map_or(0, RiskToOthers::to_wire),
            risk_details: self.risk_details,
            incident_location: self.incident_location,
            inventory_numbers: self.inventory_numbers,
            occurred_at: self.occurred_at.map(time_fmt::to_timestamp),
            affected_location: self.affected_location,
            circumstances: self.circumstances,
            symptoms: self.symptoms,
            personal_information: self.personal_information,
            malware_suspected: self.malware_suspected,
        }
    }
}

impl Contact {
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("contact.name", self.name.clone()),
            ("contact.phone", self.phone.clone()),
            ("contact.email", self.email.clone()),
        ]
    }

    pub fn to_wire(&self) -> pb::ReporterContact {
        self.clone().into_wire()
    }

    /// The same, consuming the contact.
    pub fn into_wire(self) -> pb::ReporterContact {
        pb::ReporterContact {
            name: self.name,
            phone: self.phone,
            email: self.email,
        }
    }
}

/// Limits and context for validation.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub taxonomy: &'a Taxonomy,
    pub now: OffsetDateTime,
    /// How far in the future a time may be (clock skew between devices).
    pub skew: Duration,
}

pub use custos_kit::error::text;

/// Checks a time: valid, not in the future beyond the skew, not before 2000.
pub fn past_time(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
    rules: &Rules<'_>,
) -> Option<OffsetDateTime> {
    let ts = value?;
    let Some(at) = time_fmt::from_timestamp(ts) else {
        v.add(field, "is not a valid timestamp");
        return None;
    };
    if at > rules.now + rules.skew {
        v.add(field, "must not be in the future");
    } else if at.year() < 2000 {
        v.add(field, "must not be before the year 2000");
    }
    Some(at)
}

/// Parses a report's details, adding every problem to `v`. Fields are named from the
/// request's root (`details.…`).
pub fn parse_details(
    v: &mut Violations,
    kind: Option<Kind>,
    details: Option<&pb::ReportDetails>,
    rules: &Rules<'_>,
) -> Option<Details> {
    let Some(d) = details else {
        v.add("details", "is required");
        return None;
    };
    let event = kind == Some(Kind::Event);
    let category = text(v, "details.category", &d.category, 64, true);
    if !category.is_empty() {
        match rules.taxonomy.get(&category) {
            None => v.add(
                "details.category",
                format!("`{category}` is not a category of this organisation (see ListCategories)"),
            ),
            Some(c) => {
                if let Some(kind) = kind
                    && !c.kinds.contains(&kind.into())
                {
                    v.add(
                        "details.category",
                        format!("`{category}` does not apply to a {kind:?} report").to_lowercase(),
                    );
                }
            }
        }
    }
    let medium = v.check("details.medium", Medium::from_wire(d.medium));
    let data_involved = text(v, "details.data_involved", &d.data_involved, 2000, true);
    let risk_to_others = if d.risk_to_others == 0 && !event {
        None
    } else {
        v.check(
            "details.risk_to_others",
            RiskToOthers::from_wire(d.risk_to_others),
        )
    };
    let risk_details = text(v, "details.risk_details", &d.risk_details, 4000, false);
    let incident_location = text(
        v,
        "details.incident_location",
        &d.incident_location,
        500,
        event,
    );
    if d.inventory_numbers.len() > 50 {
        v.add("details.inventory_numbers", "at most 50 inventory numbers");
    }
    let inventory_numbers: Vec<String> = d
        .inventory_numbers
        .iter()
        .enumerate()
        .map(|(i, n)| text(v, &format!("details.inventory_numbers[{i}]"), n, 64, true))
        .collect();
    let occurred_at = past_time(v, "details.occurred_at", d.occurred_at.as_ref(), rules);
    if event && d.occurred_at.is_none() {
        v.add("details.occurred_at", "is required for an event");
    }
    let affected_location = text(
        v,
        "details.affected_location",
        &d.affected_location,
        500,
        false,
    );
    let circumstances = text(v, "details.circumstances", &d.circumstances, 10_000, true);
    let symptoms = text(v, "details.symptoms", &d.symptoms, 10_000, false);
    Some(Details {
        category,
        medium: medium?,
        data_involved,
        risk_to_others,
        risk_details,
        incident_location,
        inventory_numbers,
        occurred_at,
        affected_location,
        circumstances,
        symptoms,
        personal_information: d.personal_information,
        malware_suspected: d.malware_suspected,
    })
}

/// Parses a named reporter's contact: name and phone required (14.1.1), email optional.
pub fn parse_contact(v: &mut Violations, c: &pb::ReporterContact) -> Contact {
    let name = text(v, "contact.name", &c.name, 200, true);
    let phone = text(v, "contact.phone", &c.phone, 32, true);
    if !phone.is_empty() && !valid_phone(&phone) {
        v.add(
            "contact.phone",
            "must be a phone number: digits, spaces, + - ( ) and 7 to 15 digits",
        );
    }
    let email = text(v, "contact.email", &c.email, 254, false);
    if !email.is_empty() && !email_address::EmailAddress::is_valid(&email) {
        v.add("contact.email", "is not a valid email address");
    }
    Contact { name, phone, email }
}

fn valid_phone(phone: &str) -> bool {
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let plus_only_first = phone.chars().skip(1).all(|c| c != '+');
    allowed && plus_only_first && (7..=15).contains(&digits)
}

/// Parses a whole submission.
pub fn parse_submission(
    request: &pb::SubmitReportRequest,
    rules: &Rules<'_>,
) -> Result<NewReport, Vec<custos_kit::error::FieldViolation>> {
    let mut v = Violations::new();
    let kind = v.check("kind", Kind::from_wire(request.kind));
    let details = parse_details(&mut v, kind, request.details.as_ref(), rules);
    let contact = match &request.reporter {
        Some(pb::submit_report_request::Reporter::Contact(c)) => Some(parse_contact(&mut v, c)),
        Some(pb::submit_report_request::Reporter::Anonymous(_)) => None,
        None => {
            v.add("reporter", "choose `contact` (named) or `anonymous`");
            None
        }
    };
    custos_kit::idempotency::check(&mut v, "idempotency_key", &request.idempotency_key, true);
    // Every anonymous reporter shares one key scope, and a retry returns the receipt: the
    // key must be a UUID, as random as the client can make it, not a guessable string.
    if contact.is_none()
        && !request.idempotency_key.is_empty()
        && uuid::Uuid::try_parse(&request.idempotency_key).is_err()
    {
        v.add(
            "idempotency_key",
            "must be a UUID for an anonymous report (generate a random one per report)",
        );
    }
    v.finish()?;
    Ok(NewReport {
        kind: kind.expect("checked"),
        details: details.expect("checked"),
        contact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        for ok in ["01632 960123", "+44 (0)1632 960123", "07700-900123"] {
            assert!(valid_phone(ok), "{ok}");
        }
        for bad in ["12345", "call me", "+44+1632960123", "0163296012345678"] {
            assert!(!valid_phone(bad), "{bad}");
        }
    }
}

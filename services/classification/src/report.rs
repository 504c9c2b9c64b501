//! What classification knows of a report: the routing facts of intake's events. The
//! enums are classification's own on its API (so that it versions independently of
//! intake's), and read from intake's events by number, which both share.

use custos_proto::classification::v1 as pb;

custos_kit::wire_enum!(Kind, pb::ReportKind, "EVENT or WEAKNESS", {
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

custos_kit::wire_enum!(Medium, pb::ReportMedium, "ELECTRONIC or PAPER", {
    Electronic = 1 => Electronic,
    Paper = 2 => Paper,
});

custos_kit::wire_enum!(
    /// Where a report stands in triage. Stored values: never renumber one.
    TriageState, pb::TriageState, "a triage state", {
    // Queued, waiting for a security advisor's assessment.
    AwaitingAssessment = 1 => AwaitingAssessment,
    // Assessed: watched, not an incident.
    Monitoring = 2 => Monitored,
    // Assessed: dismissed.
    Dismissed = 3 => Dismissed,
    // Assessed: raised as, or linked to, an incident.
    Incident = 4 => InIncident,
});

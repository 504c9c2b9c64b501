//! Who is told (policy 14.1.3, 14.2): the triggers that open escalations, the policy's
//! lists, and the escalation policies: chains of tiers, each with its nominees and a
//! response deadline, and the shipped default of each trigger.

use custos_proto::escalation::v1 as pb;
use serde::{Deserialize, Serialize};
use time::Duration;
use uuid::Uuid;

custos_kit::wire_enum!(
    /// What opens an escalation. Stored values: never renumber one.
    Trigger, pb::EscalationTrigger, "an escalation trigger", {
    ReportReceived = 1 => ReportReceived,
    IncidentLow = 2 => IncidentLow,
    IncidentMedium = 3 => IncidentMedium,
    IncidentHigh = 4 => IncidentHigh,
    ServiceAffecting = 5 => ServiceAffecting,
    PaperOrPersonal = 6 => PaperOrPersonal,
    EvidenceRequired = 7 => EvidenceRequired,
    ProviderWeaknessOverdue = 8 => ProviderWeaknessOverdue,
});

custos_kit::wire_enum!(
    /// One of the policy's lists. Stored values: never renumber one.
    ListKind, pb::ContactListKind, "a contact list", {
    CentralPointOfContact = 1 => CentralPointOfContact,
    HighMedium = 2 => HighMedium,
    Low = 3 => Low,
    BusinessContinuity = 4 => BusinessContinuity,
    SeniorManagement = 5 => SeniorManagement,
    DataProtectionOfficer = 6 => DataProtectionOfficer,
    CaldicottGuardian = 7 => CaldicottGuardian,
    InternalAudit = 8 => InternalAudit,
});

custos_kit::wire_enum!(
    /// An incident's overall level, as classification scored it. Stored values: never
    /// renumber one.
    Level, pb::ImpactLevel, "an impact level", {
    Low = 1 => Low,
    Medium = 2 => Medium,
    High = 3 => High,
});

impl Trigger {
    /// The lists the policy routes the trigger to: the first tier of its shipped default.
    pub fn duty_lists(self) -> &'static [ListKind] {
        match self {
            Trigger::ReportReceived | Trigger::ProviderWeaknessOverdue => {
                &[ListKind::CentralPointOfContact]
            }
            Trigger::IncidentLow => &[ListKind::Low],
            Trigger::IncidentMedium | Trigger::IncidentHigh => &[ListKind::HighMedium],
            Trigger::ServiceAffecting => &[ListKind::BusinessContinuity],
            Trigger::PaperOrPersonal => &[
                ListKind::SeniorManagement,
                ListKind::DataProtectionOfficer,
                ListKind::CaldicottGuardian,
            ],
            Trigger::EvidenceRequired => &[ListKind::InternalAudit],
        }
    }

    /// How long the shipped default gives its nominees: "at once" duties (high and
    /// medium incidents, service affecting, evidence) an hour, the rest four hours, a
    /// low incident and an overdue provider fix a working day.
    pub fn default_deadline(self) -> Duration {
        match self {
            Trigger::IncidentHigh | Trigger::ServiceAffecting | Trigger::EvidenceRequired => {
                Duration::hours(1)
            }
            Trigger::IncidentMedium | Trigger::ReportReceived | Trigger::PaperOrPersonal => {
                Duration::hours(4)
            }
            Trigger::IncidentLow | Trigger::ProviderWeaknessOverdue => Duration::hours(24),
        }
    }

    /// The trigger of an incident at `level`.
    pub fn for_level(level: Level) -> Trigger {
        match level {
            Level::Low => Trigger::IncidentLow,
            Level::Medium => Trigger::IncidentMedium,
            Level::High => Trigger::IncidentHigh,
        }
    }

    /// In words, for messages: "a high incident".
    pub fn describe(self) -> &'static str {
        match self {
            Trigger::ReportReceived => "a new report",
            Trigger::IncidentLow => "a low incident",
            Trigger::IncidentMedium => "a medium incident",
            Trigger::IncidentHigh => "a high incident",
            Trigger::ServiceAffecting => "a service-affecting incident",
            Trigger::PaperOrPersonal => "paper records or personal information involved",
            Trigger::EvidenceRequired => {
                "evidence required (internal audit to guide its collection)"
            }
            Trigger::ProviderWeaknessOverdue => "a provider's fix of a weakness is overdue",
        }
    }
}

impl Serialize for ListKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use custos_kit::storage::DbEnum;
        s.serialize_i16(self.to_db())
    }
}

impl<'de> Deserialize<'de> for ListKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use custos_kit::storage::DbEnum;
        let n = i16::deserialize(d)?;
        ListKind::from_db(n).ok_or_else(|| serde::de::Error::custom(format!("no list {n}")))
    }
}

/// One step of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub contacts: Vec<Uuid>,
    pub lists: Vec<ListKind>,
    pub deadline_secs: i64,
    /// 0: no reminder.
    pub reminder_before_secs: i64,
}

impl Tier {
    pub fn deadline(&self) -> Duration {
        Duration::seconds(self.deadline_secs)
    }

    pub fn reminder_before(&self) -> Option<Duration> {
        (self.reminder_before_secs > 0).then(|| Duration::seconds(self.reminder_before_secs))
    }
}

/// A trigger's chain (stored as JSON with the policy, and with each escalation as it
/// opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub tiers: Vec<Tier>,
    pub single_accountable: bool,
    pub repeat_secs: i64,
}

/// Bounds of a policy (EscalationPolicy's documentation).
pub const MAX_TIERS: usize = 10;
pub const MIN_DEADLINE: Duration = Duration::minutes(1);
pub const MAX_DEADLINE: Duration = Duration::days(30);
pub const MIN_REPEAT: Duration = Duration::minutes(5);
pub const MAX_REPEAT: Duration = Duration::days(7);
/// Contacts named one by one in a tier, and members of a list.
pub const MAX_NOMINEES: usize = 100;

impl Policy {
    /// The shipped default: the trigger's lists, its default deadline, a reminder a
    /// quarter of the way before it, repeating hourly past the tier.
    pub fn default_for(trigger: Trigger) -> Policy {
        let deadline = trigger.default_deadline();
        Policy {
            tiers: vec![Tier {
                contacts: Vec::new(),
                lists: trigger.duty_lists().to_vec(),
                deadline_secs: deadline.whole_seconds(),
                reminder_before_secs: deadline.whole_seconds() / 4,
            }],
            single_accountable: false,
            repeat_secs: Duration::hours(1).whole_seconds(),
        }
    }

    pub fn repeat(&self) -> Duration {
        Duration::seconds(self.repeat_secs)
    }
}

/// What keeps a policy from being followed as the directory stands, as (field relative
/// to the policy, problem). `people[i]` is, for tier `i`, whether each distinct active
/// person it names can act (has a token subject).
pub fn policy_problems(
    trigger: Trigger,
    policy: &Policy,
    people: &[Vec<bool>],
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if policy.single_accountable {
        if people.first().is_some_and(|p| p.len() == 1 && !p[0]) {
            problems.push((
                "tiers[0].contact_ids[0]".to_owned(),
                "has no token_subject: the accountable person must be able to acknowledge"
                    .to_owned(),
            ));
        } else if people.first().is_none_or(|p| p.is_empty()) {
            problems.push((
                "tiers[0].contact_ids[0]".to_owned(),
                "is not an active contact: a single accountable line needs its person".to_owned(),
            ));
        }
        return problems;
    }
    if let Some(first) = policy.tiers.first() {
        let missing: Vec<&str> = trigger
            .duty_lists()
            .iter()
            .filter(|l| !first.lists.contains(l))
            .map(|l| l.name())
            .collect();
        if !missing.is_empty() {
            problems.push((
                "tiers[0].lists".to_owned(),
                format!(
                    "must include {}: the policy routes {} to them",
                    missing.join(", "),
                    trigger.name()
                ),
            ));
        }
    }
    for (i, named) in people.iter().enumerate() {
        let can_act = named.iter().filter(|c| **c).count();
        if named.len() > MAX_NOMINEES {
            problems.push((
                format!("tiers[{i}]"),
                format!(
                    "names {} people, its lists' members counted: at most {MAX_NOMINEES}",
                    named.len()
                ),
            ));
        } else if can_act < 2 {
            problems.push((
                format!("tiers[{i}]"),
                format!(
                    "names {can_act} active {} who can act (a token_subject to acknowledge \
                     with), its lists' members counted: a tier needs at least two nominees \
                     (policy 14.1.3), unless the policy is a single accountable line",
                    if can_act == 1 { "person" } else { "people" }
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_routes_somewhere_and_defaults_within_bounds() {
        for t in Trigger::ALL {
            let p = Policy::default_for(*t);
            assert!(!t.duty_lists().is_empty(), "{t:?}");
            let tier = &p.tiers[0];
            assert!(tier.deadline() >= MIN_DEADLINE && tier.deadline() <= MAX_DEADLINE);
            assert!(tier.reminder_before().unwrap() < tier.deadline());
            assert!(p.repeat() >= MIN_REPEAT && p.repeat() <= MAX_REPEAT);
        }
        assert_eq!(
            Trigger::PaperOrPersonal.duty_lists(),
            [
                ListKind::SeniorManagement,
                ListKind::DataProtectionOfficer,
                ListKind::CaldicottGuardian
            ]
        );
    }

    #[test]
    fn a_chain_survives_storage_as_json() {
        let p = Policy::default_for(Trigger::IncidentHigh);
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&text).unwrap(), p);
        assert!(serde_json::from_str::<Policy>(&text.replace("[2]", "[99]")).is_err());
    }
}

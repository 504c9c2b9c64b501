//! An escalation's domain: where it stands, what it is about, what its timeline records,
//! and the kinds of its deadlines.

use custos_kit::storage::DbEnum;
use custos_proto::escalation::v1 as pb;
use serde::{Deserialize, Serialize};

custos_kit::wire_enum!(
    /// Where an escalation stands. Stored values: never renumber one.
    EscalationState, pb::escalation::State, "an escalation state", {
    Open = 1 => Open,
    Satisfied = 2 => Satisfied,
    Stopped = 3 => Stopped,
});

custos_kit::wire_enum!(
    /// What an entry of the timeline records. Stored values: never renumber one.
    TimelineKind, pb::timeline_entry::Kind, "a timeline entry kind", {
    Opened = 1 => Opened,
    TierReached = 2 => TierReached,
    MessageQueued = 3 => MessageQueued,
    MessageSent = 4 => MessageSent,
    MessageFailed = 5 => MessageFailed,
    Acknowledged = 6 => Acknowledged,
    Reminded = 7 => Reminded,
    DeadlineMissed = 8 => DeadlineMissed,
    Exhausted = 9 => Exhausted,
    Satisfied = 10 => Satisfied,
    Stopped = 11 => Stopped,
});

/// What an escalation is about. Stored values: never renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    Report,
    Incident,
}

impl DbEnum for SubjectKind {
    const NAME: &'static str = "SubjectKind";

    fn to_db(self) -> i16 {
        match self {
            SubjectKind::Report => 1,
            SubjectKind::Incident => 2,
        }
    }

    fn from_db(n: i16) -> Option<Self> {
        match n {
            1 => Some(SubjectKind::Report),
            2 => Some(SubjectKind::Incident),
            _ => None,
        }
    }
}
custos_kit::db_enum!(SubjectKind);

/// What a deadline does when it falls due. Stored values: never renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadlineKind {
    /// Remind the tier's nominees who have not acted.
    Reminder,
    /// The tier's time is up: the next tier is told (or, past the last, senior
    /// management).
    TierDeadline,
    /// Past the last tier: remind again, and schedule the next.
    Repeat,
}

impl DbEnum for DeadlineKind {
    const NAME: &'static str = "DeadlineKind";

    fn to_db(self) -> i16 {
        match self {
            DeadlineKind::Reminder => 1,
            DeadlineKind::TierDeadline => 2,
            DeadlineKind::Repeat => 3,
        }
    }

    fn from_db(n: i16) -> Option<Self> {
        match n {
            1 => Some(DeadlineKind::Reminder),
            2 => Some(DeadlineKind::TierDeadline),
            3 => Some(DeadlineKind::Repeat),
            _ => None,
        }
    }
}
custos_kit::db_enum!(DeadlineKind);

/// The routing facts the feeds gave about the subject (stored as JSON): nothing that
/// identifies a reporter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub category: String,
    /// An incident's overall level (`Level` as stored), if known.
    pub level: Option<i16>,
    pub personal: bool,
    pub paper: bool,
    pub service_affecting: bool,
    /// The report asks for senior management's notice.
    #[serde(default)]
    pub senior_notice: bool,
    /// The incident needs evidence.
    #[serde(default)]
    pub evidence: bool,
    /// The incident's revision when its flags, and its level, were last given (0: not
    /// yet): an older event, replayed or parked and applied late, changes nothing.
    #[serde(default)]
    pub flags_revision: i32,
    #[serde(default)]
    pub level_revision: i32,
}

impl Facts {
    /// What PAPER_OR_PERSONAL is about: paper records, personal information, or a report
    /// that asks for senior management's notice (14.1.1).
    pub fn paper_or_personal(&self) -> bool {
        self.paper || self.personal || self.senior_notice
    }
}

/// A message's state in the queue. Stored values: never renumber one.
pub const MAIL_PENDING: i16 = 1;

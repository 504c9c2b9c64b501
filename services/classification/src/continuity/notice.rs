//! An incident's public state for business continuity (`custos.continuity.v1`), and the
//! record an incident keeps for it: once it is service affecting it is published, and
//! from then on every change of that state is a notice.

use custos_kit::{storage::JsonText, time_fmt::to_timestamp};
use custos_proto::continuity::v1 as cpb;

use crate::{incident::IncidentState, matrix::Level, store::RegisterRow};

fn level(l: Level) -> i32 {
    match l {
        Level::Low => cpb::IncidentLevel::Low,
        Level::Medium => cpb::IncidentLevel::Medium,
        Level::High => cpb::IncidentLevel::High,
    }
    .into()
}

fn stage(s: IncidentState) -> i32 {
    use cpb::incident_notice::Stage;
    match s {
        IncidentState::Open => Stage::Open,
        IncidentState::Investigating => Stage::Investigating,
        IncidentState::Contained => Stage::Contained,
        IncidentState::Recovering => Stage::Recovering,
        IncidentState::Resolved => Stage::Resolved,
        IncidentState::Closed => Stage::Closed,
    }
    .into()
}

/// Keeps what the feed's filters match up to date before a change is saved: the highest
/// level reached, and, while service affecting, that the incident is published and
/// every service it has affected.
pub fn record(row: &mut RegisterRow) {
    row.highest_level = row.highest_level.max(row.overall_level);
    if row.service_affecting {
        row.continuity_published = true;
        let mut ever = row.ever_affected_services.0.clone();
        ever.extend(row.business_services.0.iter().cloned());
        ever.sort();
        ever.dedup();
        row.ever_affected_services = JsonText(ever);
    }
}

/// The incident's public state, if it has ever been service affecting.
pub fn notice(row: &RegisterRow) -> Option<cpb::IncidentNotice> {
    if !row.continuity_published {
        return None;
    }
    Some(cpb::IncidentNotice {
        reference: row.reference.clone(),
        revision: row.revision,
        // Written for this audience; the incident's own title is need-to-know.
        title: row.continuity_title.clone(),
        stage: stage(row.state),
        level: level(row.overall_level),
        service_affecting: row.service_affecting,
        business_services: row.business_services.0.clone(),
        started_at: Some(to_timestamp(row.declared_at.get())),
        current_action: row.continuity_statement.clone(),
        expected_recovery_at: row.expected_recovery_at.map(|t| to_timestamp(t.get())),
        resolved: matches!(row.state, IncidentState::Resolved | IncidentState::Closed),
        updated_at: Some(to_timestamp(row.updated_at.get())),
        ever_affected_services: row.ever_affected_services.0.clone(),
        highest_level: level(row.highest_level),
    })
}

/// Whether a change altered the public state (revisions and times aside).
pub fn changed(before: Option<&cpb::IncidentNotice>, after: &cpb::IncidentNotice) -> bool {
    let Some(before) = before else { return true };
    let strip = |n: &cpb::IncidentNotice| cpb::IncidentNotice {
        revision: 0,
        updated_at: None,
        ..n.clone()
    };
    strip(before) != strip(after)
}

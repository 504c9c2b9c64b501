//! Classification's store: functions that take the caller's transaction (writes) or any
//! connection (reads), each query written once for both backends (the kit's design
//! note, section 2).

mod assessment;
mod history;
mod incident;
mod related;
mod triage;

pub use assessment::{
    Assessable, AssessmentRow, NewAssessment, NewIncident, assessable, assessments, declare,
    incident_report_ids, record,
};
pub use history::{CostRow, ImpactRow, add_cost, append_impact, cost_totals, costs, impacts};
pub use incident::{
    AccessPage, AccessRow, ActionRow, IncidentFilter, IncidentKey, IncidentPage,
    IncidentRow as RegisterRow, SeenRow, access_entry, access_list, actions, append_action, grant,
    hold_for_move, hold_incident, hold_incident_for, incident_for, is_listed, list_incidents,
    published_incidents, revoke, save,
};
pub use related::{
    INVENTORY_KEY, IncidentRow, LOCATION_KEY, RelatedBy, RelatedRow, flag_possible_incident,
    related,
};
pub use triage::{
    Amendment, Applied, NewEntry, Page, TriageEntryRow, TriageFilter, add_follow_up, amend, entry,
    list, queue,
};

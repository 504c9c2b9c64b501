//! A series of events becoming an incident (policy 6, 14.2): from what the store finds
//! around a report, the open reports and the incidents that may belong with it, and
//! whether there are enough of them to flag a possible incident. The decision stays with
//! the advisor; nothing here changes a report's assessment.

use std::collections::BTreeMap;

use custos_kit::storage::{DbTime, StorageError, Tx};
use uuid::Uuid;

use crate::{
    assessment::IncidentState,
    report::TriageState,
    store::{self, INVENTORY_KEY, IncidentRow, LOCATION_KEY, RelatedBy, RelatedRow},
};

/// At most this many related reports and incidents are suggested.
pub const MOST: usize = 100;

/// The configured window and threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    /// Either side of a report's submission.
    pub window: time::Duration,
    /// How many related reports, the report included, make a possible incident.
    pub threshold: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelatedReport {
    pub report_id: Uuid,
    pub reference: String,
    pub category: String,
    pub submitted_at: DbTime,
    pub monitored: bool,
    pub related_by: Vec<RelatedBy>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelatedIncident {
    pub id: Uuid,
    pub reference: String,
    pub title: String,
    pub related_by: Vec<RelatedBy>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Suggestions {
    /// Newest first.
    pub reports: Vec<RelatedReport>,
    pub incidents: Vec<RelatedIncident>,
    pub possible_incident: bool,
}

fn reason(key: Option<&str>) -> RelatedBy {
    match key {
        Some(k) if k.starts_with(INVENTORY_KEY) => RelatedBy::InventoryNumber,
        Some(k) if k.starts_with(LOCATION_KEY) => RelatedBy::Location,
        _ => RelatedBy::Category,
    }
}

fn add(reasons: &mut Vec<RelatedBy>, r: RelatedBy) {
    if !reasons.contains(&r) {
        reasons.push(r);
        reasons.sort();
    }
}

impl Series {
    /// Groups what the store found: open reports (waiting or monitored) as reports,
    /// reports in an incident that is not closed as that incident.
    pub fn suggest(&self, rows: Vec<RelatedRow>, incidents: Vec<IncidentRow>) -> Suggestions {
        let mut reports: BTreeMap<Uuid, RelatedReport> = BTreeMap::new();
        let mut by_incident: Vec<RelatedIncident> = Vec::new();
        for row in rows {
            let why = reason(row.match_key.as_deref());
            match row.state {
                TriageState::AwaitingAssessment | TriageState::Monitoring => {
                    let r = reports
                        .entry(row.report_id)
                        .or_insert_with(|| RelatedReport {
                            report_id: row.report_id,
                            reference: row.reference.clone(),
                            category: row.category.clone(),
                            submitted_at: row.submitted_at,
                            monitored: row.state == TriageState::Monitoring,
                            related_by: Vec::new(),
                        });
                    add(&mut r.related_by, why);
                }
                TriageState::Incident => {
                    let (Some(id), Some(reference), Some(title), Some(state)) = (
                        row.incident_id,
                        row.incident_reference,
                        row.incident_title,
                        row.incident_state,
                    ) else {
                        continue;
                    };
                    if state == IncidentState::Closed {
                        continue;
                    }
                    match by_incident.iter_mut().find(|i| i.id == id) {
                        Some(i) => add(&mut i.related_by, why),
                        None => by_incident.push(RelatedIncident {
                            id,
                            reference,
                            title,
                            related_by: vec![why],
                        }),
                    }
                }
                TriageState::Dismissed => {}
            }
        }
        for i in incidents {
            match by_incident.iter_mut().find(|x| x.id == i.id) {
                Some(x) => add(&mut x.related_by, RelatedBy::Category),
                None => by_incident.push(RelatedIncident {
                    id: i.id,
                    reference: i.reference,
                    title: i.title,
                    related_by: vec![RelatedBy::Category],
                }),
            }
        }
        let mut reports: Vec<RelatedReport> = reports.into_values().collect();
        reports.sort_by_key(|r| std::cmp::Reverse((r.submitted_at, r.report_id)));
        let possible_incident = reports.len() + 1 >= self.threshold as usize;
        reports.truncate(MOST);
        by_incident.truncate(MOST);
        Suggestions {
            reports,
            incidents: by_incident,
            possible_incident,
        }
    }

    /// What is related to a queued report (None: not queued).
    pub async fn around(
        &self,
        conn: impl custos_kit::storage::AsConn,
        report_id: Uuid,
    ) -> Result<Option<Suggestions>, StorageError> {
        // One more than is shown, of each kind, so that the count reaches the threshold
        // whenever it can be reached.
        let most = (MOST as i64).max(i64::from(self.threshold)) + 1;
        Ok(store::related(conn, report_id, self.window, most)
            .await?
            .map(|(rows, incidents)| self.suggest(rows, incidents)))
    }

    /// After a report is queued or amended (in the consumer's transaction): when it and
    /// its related open reports reach the threshold, flags them all.
    pub async fn flag(&self, tx: &mut Tx, report_id: Uuid) -> Result<(), StorageError> {
        if let Some(s) = self.around(&mut *tx, report_id).await?
            && s.possible_incident
        {
            let mut ids: Vec<Uuid> = s.reports.iter().map(|r| r.report_id).collect();
            ids.push(report_id);
            store::flag_possible_incident(tx, &ids).await?;
        }
        Ok(())
    }
}

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
    /// How many reports sharing an inventory number or a location, the report included,
    /// make a possible incident.
    pub threshold: u32,
    /// How many reports of one category, the report included, make a possible incident
    /// (a category is shared far more often than a laptop or a room).
    pub category_threshold: u32,
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
    /// The reports (besides the report) of the series that reached a threshold.
    pub series: Vec<Uuid>,
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
    pub fn suggest(
        &self,
        own_incident: Option<Uuid>,
        rows: Vec<RelatedRow>,
        incidents: Vec<IncidentRow>,
    ) -> Suggestions {
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
                    if state == IncidentState::Closed || Some(id) == own_incident {
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
        let sharing = |by: &[RelatedBy]| -> Vec<Uuid> {
            reports
                .iter()
                .filter(|r| r.related_by.iter().any(|x| by.contains(x)))
                .map(|r| r.report_id)
                .collect()
        };
        let keyed = sharing(&[RelatedBy::InventoryNumber, RelatedBy::Location]);
        let same_category = sharing(&[RelatedBy::Category]);
        let mut series = Vec::new();
        if keyed.len() + 1 >= self.threshold as usize {
            series.extend(keyed);
        }
        if same_category.len() + 1 >= self.category_threshold as usize {
            series.extend(same_category);
        }
        series.sort();
        series.dedup();
        let possible_incident = !series.is_empty();
        reports.truncate(MOST);
        by_incident.truncate(MOST);
        Suggestions {
            reports,
            incidents: by_incident,
            possible_incident,
            series,
        }
    }

    /// What is related to a queued report, as SuggestRelated shows it (None: not queued).
    pub async fn around(
        &self,
        conn: impl custos_kit::storage::AsConn,
        report_id: Uuid,
    ) -> Result<Option<Suggestions>, StorageError> {
        // One more than is shown, of each kind, so that the count reaches the threshold
        // whenever it can be reached.
        let most = (MOST as i64)
            .max(i64::from(self.threshold))
            .max(i64::from(self.category_threshold))
            + 1;
        self.read(conn, report_id, most, false).await
    }

    async fn read(
        &self,
        conn: impl custos_kit::storage::AsConn,
        report_id: Uuid,
        most: i64,
        open_only: bool,
    ) -> Result<Option<Suggestions>, StorageError> {
        Ok(
            store::related(conn, report_id, self.window, most, open_only)
                .await?
                .map(|(anchor, rows, incidents)| {
                    self.suggest(anchor.own_incident, rows, incidents)
                }),
        )
    }

    /// After a report is queued or amended (in the consumer's transaction): when it and
    /// the open reports sharing a key with it, or its category, reach their threshold,
    /// flags them all. A flag is never lowered here (SuggestRelated says how things stand
    /// now; the decision is the advisor's).
    pub async fn flag(&self, tx: &mut Tx, report_id: Uuid) -> Result<(), StorageError> {
        // Only open reports, and only as many as a threshold needs, newest first. A
        // series' older members were flagged as it grew, when each arrival counted them
        // within its own window; members at opposite ends of a window may not be.
        let most = i64::from(self.threshold.max(self.category_threshold));
        if let Some(s) = self.read(&mut *tx, report_id, most, true).await?
            && s.possible_incident
        {
            let mut ids = s.series;
            ids.push(report_id);
            store::flag_possible_incident(tx, &ids).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u8, state: TriageState, key: Option<&str>) -> RelatedRow {
        RelatedRow {
            report_id: Uuid::from_bytes([n; 16]),
            reference: format!("SIR-{n}"),
            category: "phishing".into(),
            submitted_at: DbTime::new(
                time::OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(n.into()),
            ),
            state,
            match_key: key.map(str::to_owned),
            incident_id: (state == TriageState::Incident).then(|| Uuid::from_bytes([100 + n; 16])),
            incident_reference: (state == TriageState::Incident).then(|| format!("INC-{n}")),
            incident_title: (state == TriageState::Incident).then(|| "t".to_owned()),
            incident_state: (state == TriageState::Incident).then_some(if n.is_multiple_of(2) {
                IncidentState::Open
            } else {
                IncidentState::Closed
            }),
        }
    }

    const SERIES: Series = Series {
        window: time::Duration::hours(72),
        threshold: 3,
        category_threshold: 4,
    };

    #[test]
    fn keys_and_categories_have_their_own_thresholds() {
        use TriageState::*;
        // One report sharing a key (twice: two keys) and one by category: no series.
        let rows = vec![
            row(1, AwaitingAssessment, Some("i:a")),
            row(1, AwaitingAssessment, Some("l:b")),
            row(2, Monitoring, None),
        ];
        let s = SERIES.suggest(None, rows.clone(), vec![]);
        assert!(!s.possible_incident);
        assert_eq!(
            s.reports[1].related_by,
            [RelatedBy::InventoryNumber, RelatedBy::Location]
        );
        assert!(s.reports[0].monitored);
        // A second keyed report: the keyed series of three.
        let mut more = rows.clone();
        more.push(row(3, AwaitingAssessment, Some("i:a")));
        let s = SERIES.suggest(None, more, vec![]);
        assert!(s.possible_incident);
        assert_eq!(
            s.series,
            [Uuid::from_bytes([1; 16]), Uuid::from_bytes([3; 16])]
        );
        // Two of the category (three with the report): not yet a series of a category.
        let mut category = rows;
        category.push(row(4, AwaitingAssessment, None));
        assert!(
            !SERIES
                .suggest(None, category.clone(), vec![])
                .possible_incident
        );
        // Three of the category (four with the report): the category series.
        category.push(row(5, Monitoring, None));
        let s = SERIES.suggest(None, category, vec![]);
        assert!(s.possible_incident);
        assert_eq!(s.series.len(), 3, "{:?}", s.series);
    }

    #[test]
    fn reports_in_incidents_are_their_incidents_and_closed_ones_are_not() {
        use TriageState::*;
        let rows = vec![
            row(2, Incident, Some("i:a")),
            row(2, Incident, None),
            row(3, Incident, Some("i:a")),
            row(4, Dismissed, Some("i:a")),
        ];
        let own = SERIES.suggest(Some(Uuid::from_bytes([102; 16])), rows.clone(), vec![]);
        assert!(
            own.incidents.is_empty(),
            "a report's own incident is not suggested to it"
        );
        let s = SERIES.suggest(None, rows, vec![]);
        assert!(
            s.reports.is_empty(),
            "neither incidents' nor dismissed reports are open"
        );
        assert_eq!(s.incidents.len(), 1, "the closed incident is left out");
        assert_eq!(s.incidents[0].reference, "INC-2");
        assert_eq!(
            s.incidents[0].related_by,
            [RelatedBy::InventoryNumber, RelatedBy::Category]
        );
        assert!(!s.possible_incident);
    }
}

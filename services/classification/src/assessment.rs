//! Assessments: what a security advisor decided about a report (policy 6, 14.2), with the
//! impact as the matrix scored it at the time, and the incident states the register
//! knows.

use custos_proto::classification::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::matrix::{Level, RiskMatrix, Score};

custos_kit::wire_enum!(Decision, pb::AssessmentDecision, "dismiss, monitor, raise_incident or link_incident", {
    Dismiss = 1 => Dismiss,
    Monitor = 2 => Monitor,
    RaiseIncident = 3 => RaiseIncident,
    LinkIncident = 4 => LinkIncident,
});

/// Where an incident stands (14.2.2). Stored values: never renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentState {
    Open,
    Investigating,
    Contained,
    Recovering,
    Resolved,
    Closed,
}

impl custos_kit::storage::DbEnum for IncidentState {
    const NAME: &'static str = "IncidentState";

    fn to_db(self) -> i16 {
        match self {
            IncidentState::Open => 1,
            IncidentState::Investigating => 2,
            IncidentState::Contained => 3,
            IncidentState::Recovering => 4,
            IncidentState::Resolved => 5,
            IncidentState::Closed => 6,
        }
    }

    fn from_db(n: i16) -> Option<Self> {
        Some(match n {
            1 => IncidentState::Open,
            2 => IncidentState::Investigating,
            3 => IncidentState::Contained,
            4 => IncidentState::Recovering,
            5 => IncidentState::Resolved,
            6 => IncidentState::Closed,
            _ => return None,
        })
    }
}

custos_kit::db_enum!(IncidentState);

/// An impact as it was scored: the rows, levels and words of the matrix then in force,
/// and that matrix's revision. Kept as made, so that replacing the matrix later does not
/// rewrite an assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    pub matrix_revision: String,
    pub overall: Level,
    pub dimensions: Vec<DimensionImpact>,
}

/// One dimension of an [`Impact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionImpact {
    pub dimension: String,
    pub row: String,
    pub level: Level,
    pub descriptor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figure_row: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_row: Option<String>,
}

impl Impact {
    pub fn new(m: &RiskMatrix, revision: &str, s: &Score) -> Self {
        let code = |r: Option<usize>| r.map(|r| m.rows[r].code.clone());
        Self {
            matrix_revision: revision.to_owned(),
            overall: s.overall,
            dimensions: s
                .dimensions
                .iter()
                .map(|d| DimensionImpact {
                    dimension: m.dimensions[d.dimension].code.clone(),
                    row: m.rows[d.row].code.clone(),
                    level: m.rows[d.row].level,
                    descriptor: m.dimensions[d.dimension].descriptors[d.row].clone(),
                    figure_row: code(d.figure_row),
                    chosen_row: code(d.chosen_row),
                })
                .collect(),
        }
    }

    pub fn to_wire(&self) -> pb::ImpactScore {
        pb::ImpactScore {
            dimensions: self
                .dimensions
                .iter()
                .map(|d| pb::DimensionScore {
                    dimension: d.dimension.clone(),
                    row: d.row.clone(),
                    level: d.level.to_wire(),
                    descriptor: d.descriptor.clone(),
                    figure_row: d.figure_row.clone().unwrap_or_default(),
                    chosen_row: d.chosen_row.clone().unwrap_or_default(),
                })
                .collect(),
            overall_level: self.overall.to_wire(),
            matrix_revision: self.matrix_revision.clone(),
        }
    }
}

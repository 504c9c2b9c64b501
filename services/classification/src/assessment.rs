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

pub use crate::incident::IncidentState;

/// An impact as it was scored: the rows, levels and words of the matrix then in force,
/// and that matrix's revision. Kept as made, so that replacing the matrix later does not
/// rewrite an assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    pub matrix_revision: String,
    pub overall: Level,
    pub dimensions: Vec<DimensionImpact>,
    /// The figures it was scored from.
    #[serde(default)]
    pub figures: GivenFigures,
}

/// The figures an impact was scored from, as given (validated): kept with the assessment
/// as the evidence for its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GivenFigures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_financial_loss: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damages_and_fines: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people_disciplined: Option<i32>,
    /// Seconds each system has gone without a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_gap_secs: Option<Vec<i64>>,
}

/// Money as given: `google.type.Money`'s fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub currency_code: String,
    pub units: i64,
    pub nanos: i32,
}

impl GivenFigures {
    pub fn from_wire(f: &pb::ImpactFigures) -> Self {
        let amount = |m: &Option<custos_proto::google::r#type::Money>| {
            m.as_ref().map(|m| Amount {
                currency_code: m.currency_code.clone(),
                units: m.units,
                nanos: m.nanos,
            })
        };
        Self {
            estimated_financial_loss: amount(&f.estimated_financial_loss),
            damages_and_fines: amount(&f.damages_and_fines),
            people_disciplined: f.people_disciplined,
            backup_gap_secs: f
                .systems_without_backup
                .as_ref()
                .map(|s| s.backup_gaps.iter().map(|d| d.seconds).collect()),
        }
    }

    pub fn to_wire(&self) -> pb::ImpactFigures {
        let money = |a: &Option<Amount>| {
            a.as_ref().map(|a| custos_proto::google::r#type::Money {
                currency_code: a.currency_code.clone(),
                units: a.units,
                nanos: a.nanos,
            })
        };
        pb::ImpactFigures {
            estimated_financial_loss: money(&self.estimated_financial_loss),
            damages_and_fines: money(&self.damages_and_fines),
            people_disciplined: self.people_disciplined,
            systems_without_backup: self.backup_gap_secs.as_ref().map(|gaps| {
                pb::SystemsWithoutBackup {
                    backup_gaps: gaps
                        .iter()
                        .map(|s| prost_types::Duration {
                            seconds: *s,
                            nanos: 0,
                        })
                        .collect(),
                }
            }),
        }
    }
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
    pub fn new(m: &RiskMatrix, revision: &str, s: &Score, figures: GivenFigures) -> Self {
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
            figures,
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

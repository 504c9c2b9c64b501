//! Scoring an impact: each dimension lands on the higher of the row its figure reaches
//! and the row chosen for it; the overall level is the highest level of any dimension.

use super::{Dimension, Figure, Level, RiskMatrix};

/// Measured quantities; money in billionths of a unit of the matrix's currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub financial_loss: Option<i128>,
    pub damages_and_fines: Option<i128>,
    pub people_disciplined: Option<i128>,
    /// Systems gone at least the matrix's backup gap without a backup.
    pub systems_without_backup: Option<i128>,
}

impl Figures {
    pub fn get(&self, figure: Figure) -> Option<i128> {
        match figure {
            Figure::FinancialLoss => self.financial_loss,
            Figure::DamagesAndFines => self.damages_and_fines,
            Figure::PeopleDisciplined => self.people_disciplined,
            Figure::SystemsWithoutBackup => self.systems_without_backup,
        }
    }
}

/// Where one dimension lands (indices into the matrix's rows and dimensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimensionScore {
    pub dimension: usize,
    pub row: usize,
    pub figure_row: Option<usize>,
    pub chosen_row: Option<usize>,
}

/// Every dimension's place, and the overall level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    pub dimensions: Vec<DimensionScore>,
    pub overall: Level,
}

impl RiskMatrix {
    /// The highest row whose bound the figure meets, if any.
    pub fn figure_row(&self, dimension: &Dimension, figures: &Figures) -> Option<usize> {
        let figure = dimension.figure?;
        let value = figures.get(figure)?;
        dimension
            .bounds
            .iter()
            .enumerate()
            .rev()
            .find(|(_, b)| b.is_some_and(|b| b.met_by(value, figure.is_money())))
            .map(|(i, _)| i)
    }

    /// Scores every dimension from the figures and the chosen rows (`chosen[d]` for
    /// dimension `d`). Dimensions that neither a figure nor a choice places are returned
    /// as the error: an impact is never assumed to be nil.
    pub fn score(&self, figures: &Figures, chosen: &[Option<usize>]) -> Result<Score, Vec<usize>> {
        let mut unscored = Vec::new();
        let mut dimensions = Vec::with_capacity(self.dimensions.len());
        for (d, dimension) in self.dimensions.iter().enumerate() {
            let figure_row = self.figure_row(dimension, figures);
            let chosen_row = chosen.get(d).copied().flatten();
            match figure_row.max(chosen_row) {
                Some(row) => dimensions.push(DimensionScore {
                    dimension: d,
                    row,
                    figure_row,
                    chosen_row,
                }),
                None => unscored.push(d),
            }
        }
        if !unscored.is_empty() {
            return Err(unscored);
        }
        let overall = dimensions
            .iter()
            .map(|s| self.rows[s.row].level)
            .max()
            .expect("a matrix has at least one dimension");
        Ok(Score {
            dimensions,
            overall,
        })
    }
}

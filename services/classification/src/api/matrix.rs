//! GetRiskMatrix and ScoreImpact: the matrix as front-ends draw it, and an impact scored
//! from figures and chosen descriptors. Nothing here is stored.

use custos_kit::{auth, error::Violations};
use custos_proto::{
    classification::v1 as pb, google::r#type::Money, prost_types::Duration as PbDuration,
};
use tonic::{Request, Response, Status};

use super::ClassificationApi;
use crate::{
    error::ClassificationError,
    matrix::{Bound, Figure, Figures, MAX_SYSTEMS, NANOS_PER_UNIT, RiskMatrix, Score},
};

/// Bad durations reported one by one, at most this many (the rest in one line): a
/// response must stay well under the header limits of clients.
const MAX_REPORTED: usize = 10;

/// What a violation quotes of a client's value, at most.
fn quoted(value: &str) -> String {
    const MOST: usize = 64;
    match value.char_indices().nth(MOST) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_owned(),
    }
}

impl ClassificationApi {
    /// Scores an impact; IMPACT_UNSCORED names the dimensions nothing scored.
    pub(super) fn score_of(
        &self,
        figures: &Figures,
        chosen: &[Option<usize>],
    ) -> Result<Score, ClassificationError> {
        let m = &self.matrix;
        m.score(figures, chosen).map_err(|unscored| {
            ClassificationError::unscored(
                unscored
                    .iter()
                    .map(|&d| m.dimensions[d].code.clone())
                    .collect(),
            )
        })
    }

    /// Any authenticated caller.
    pub(super) fn risk_matrix(
        &self,
        request: Request<pb::GetRiskMatrixRequest>,
    ) -> Result<Response<pb::GetRiskMatrixResponse>, Status> {
        auth::require_authenticated(&request)?;
        Ok(Response::new(pb::GetRiskMatrixResponse {
            matrix: Some((*self.matrix_wire).clone()),
        }))
    }

    /// Any authenticated caller: it stores nothing, and the policy asks everyone to refer
    /// to the matrix.
    #[tracing::instrument(skip_all)]
    pub(super) fn score(
        &self,
        request: Request<pb::ScoreImpactRequest>,
    ) -> Result<Response<pb::ScoreImpactResponse>, Status> {
        auth::require_authenticated(&request)?;
        let req = request.into_inner();
        let m = &self.matrix;
        let mut v = Violations::new();
        let figures = parse_figures(&mut v, m, req.figures.unwrap_or_default());
        let chosen = parse_choices(&mut v, m, &req.choices);
        v.finish().map_err(ClassificationError::from)?;
        let score = self.score_of(&figures, &chosen)?;
        Ok(Response::new(pb::ScoreImpactResponse {
            score: Some(score_to_wire(m, &self.matrix_wire.revision, &score)),
        }))
    }
}

/// The figures of a request, in the matrix's terms. A figure the matrix does not use is
/// refused rather than silently ignored.
pub(crate) fn parse_figures(v: &mut Violations, m: &RiskMatrix, f: pb::ImpactFigures) -> Figures {
    let mut money = |field: &str, figure: Figure, value: Option<Money>| {
        let value = value?;
        if !m.uses(figure) {
            v.add(
                field,
                "the risk matrix scores no dimension from this figure",
            );
            return None;
        }
        match money_nanos(&value, &m.currency, m.minor_unit_digits) {
            Ok(nanos) => Some(nanos),
            Err((part, message)) => {
                v.add(format!("{field}{part}"), message);
                None
            }
        }
    };
    let financial_loss = money(
        "figures.estimated_financial_loss",
        Figure::FinancialLoss,
        f.estimated_financial_loss,
    );
    let damages_and_fines = money(
        "figures.damages_and_fines",
        Figure::DamagesAndFines,
        f.damages_and_fines,
    );
    let people_disciplined = f.people_disciplined.and_then(|n| {
        let field = "figures.people_disciplined";
        if !m.uses(Figure::PeopleDisciplined) {
            v.add(
                field,
                "the risk matrix scores no dimension from this figure",
            );
            None
        } else if n < 0 {
            v.add(field, "must not be negative");
            None
        } else {
            Some(i128::from(n))
        }
    });
    let systems_without_backup = f.systems_without_backup.and_then(|s| {
        let field = "figures.systems_without_backup";
        if !m.uses(Figure::SystemsWithoutBackup) {
            v.add(
                field,
                "the risk matrix scores no dimension from this figure",
            );
            return None;
        }
        if s.backup_gaps.len() > MAX_SYSTEMS {
            v.add(
                format!("{field}.backup_gaps"),
                format!("at most {MAX_SYSTEMS} systems"),
            );
            return None;
        }
        let mut lapsed = 0i128;
        let mut bad = 0usize;
        for (i, gap) in s.backup_gaps.iter().enumerate() {
            match duration(gap) {
                Some(gap) => lapsed += i128::from(gap >= m.backup_gap),
                None => {
                    bad += 1;
                    if bad <= MAX_REPORTED {
                        v.add(
                            format!("{field}.backup_gaps[{i}]"),
                            "must be a valid duration, not negative",
                        );
                    }
                }
            }
        }
        if bad > MAX_REPORTED {
            v.add(
                format!("{field}.backup_gaps"),
                format!("{} more invalid durations", bad - MAX_REPORTED),
            );
        }
        (bad == 0).then_some(lapsed)
    });
    Figures {
        financial_loss,
        damages_and_fines,
        people_disciplined,
        systems_without_backup,
    }
}

/// An amount in billionths of a unit, if it is a valid, non-negative amount in whole
/// minor units (pence for GBP: `digits` 2) of `currency`; else which part is wrong
/// (`.nanos`, or empty for the whole amount) and why.
fn money_nanos(m: &Money, currency: &str, digits: u32) -> Result<i128, (&'static str, String)> {
    if m.currency_code != currency {
        return Err((
            ".currency_code",
            format!(
                "must be {currency}, the risk matrix's currency (got `{}`)",
                quoted(&m.currency_code)
            ),
        ));
    }
    if !(-999_999_999..=999_999_999).contains(&m.nanos) {
        return Err((
            ".nanos",
            "must be between -999,999,999 and 999,999,999".into(),
        ));
    }
    if (m.units > 0 && m.nanos < 0) || (m.units < 0 && m.nanos > 0) {
        return Err((".nanos", "must have the sign of units".into()));
    }
    let step = 10i32.pow(9 - digits);
    if m.nanos % step != 0 {
        return Err((
            ".nanos",
            format!("must be whole minor units of {currency}: a multiple of {step}"),
        ));
    }
    let nanos = i128::from(m.units) * NANOS_PER_UNIT + i128::from(m.nanos);
    if nanos < 0 {
        return Err(("", "must not be negative".into()));
    }
    Ok(nanos)
}

fn duration(d: &PbDuration) -> Option<std::time::Duration> {
    if d.seconds < 0 || !(0..1_000_000_000).contains(&d.nanos) {
        return None;
    }
    Some(std::time::Duration::new(d.seconds as u64, d.nanos as u32))
}

/// The chosen row of each dimension (by index), refusing unknown codes and a dimension
/// chosen twice.
pub(crate) fn parse_choices(
    v: &mut Violations,
    m: &RiskMatrix,
    choices: &[pb::ImpactChoice],
) -> Vec<Option<usize>> {
    let mut chosen: Vec<Option<usize>> = vec![None; m.dimensions.len()];
    let mut first_at: Vec<Option<usize>> = vec![None; m.dimensions.len()];
    if choices.len() > m.dimensions.len() {
        v.add(
            "choices",
            format!(
                "at most {} (one per dimension of the risk matrix)",
                m.dimensions.len()
            ),
        );
        return chosen;
    }
    for (i, c) in choices.iter().enumerate() {
        let dimension = match m.dimension_index(&c.dimension) {
            Some(d) => Some(d),
            None => {
                let codes: Vec<&str> = m.dimensions.iter().map(|d| d.code.as_str()).collect();
                v.add(
                    format!("choices[{i}].dimension"),
                    format!(
                        "`{}` is not a dimension of the risk matrix (dimensions: {})",
                        quoted(&c.dimension),
                        codes.join(", ")
                    ),
                );
                None
            }
        };
        let row = m.row_index(&c.row);
        if row.is_none() {
            v.add(
                format!("choices[{i}].row"),
                format!(
                    "`{}` is not a row of the risk matrix (rows: {})",
                    quoted(&c.row),
                    m.row_codes()
                ),
            );
        }
        if let Some(d) = dimension {
            if let Some(first) = first_at[d] {
                v.add(
                    format!("choices[{i}].dimension"),
                    format!("`{}` is already chosen at choices[{first}]", c.dimension),
                );
            } else {
                first_at[d] = Some(i);
                chosen[d] = row;
            }
        }
    }
    chosen
}

fn figure_to_wire(figure: Option<Figure>) -> i32 {
    match figure {
        None => pb::ImpactFigure::None,
        Some(Figure::FinancialLoss) => pb::ImpactFigure::FinancialLoss,
        Some(Figure::DamagesAndFines) => pb::ImpactFigure::DamagesAndFines,
        Some(Figure::PeopleDisciplined) => pb::ImpactFigure::PeopleDisciplined,
        Some(Figure::SystemsWithoutBackup) => pb::ImpactFigure::SystemsWithoutBackup,
    }
    .into()
}

fn bound_to_wire(bound: Bound, figure: Figure, currency: &str) -> pb::FigureBound {
    use pb::figure_bound::Value;
    let value = if figure.is_money() {
        Value::Amount(Money {
            currency_code: currency.to_owned(),
            units: bound.value,
            nanos: 0,
        })
    } else {
        Value::Count(i32::try_from(bound.value).unwrap_or(i32::MAX))
    };
    pb::FigureBound {
        value: Some(value),
        exclusive: bound.exclusive,
    }
}

pub(crate) fn matrix_to_wire(m: &RiskMatrix) -> pb::RiskMatrix {
    pb::RiskMatrix {
        display_name: m.display_name.clone(),
        rows: m
            .rows
            .iter()
            .map(|r| pb::ImpactRow {
                code: r.code.clone(),
                display_name: r.display_name.clone(),
                level: r.level.to_wire(),
            })
            .collect(),
        dimensions: m
            .dimensions
            .iter()
            .map(|d| pb::ImpactDimension {
                code: d.code.clone(),
                display_name: d.display_name.clone(),
                descriptors: m
                    .rows
                    .iter()
                    .zip(&d.descriptors)
                    .zip(&d.bounds)
                    .map(|((row, text), bound)| pb::ImpactDescriptor {
                        row: row.code.clone(),
                        text: text.clone(),
                        bound: bound
                            .zip(d.figure)
                            .map(|(b, f)| bound_to_wire(b, f, &m.currency)),
                    })
                    .collect(),
                figure: figure_to_wire(d.figure),
            })
            .collect(),
        currency_code: m.currency.clone(),
        backup_gap_threshold: Some(PbDuration {
            seconds: i64::try_from(m.backup_gap.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        revision: m.revision(),
    }
}

pub(crate) fn score_to_wire(m: &RiskMatrix, revision: &str, s: &Score) -> pb::ImpactScore {
    crate::assessment::Impact::new(m, revision, s, Default::default()).to_wire()
}

//! The risk impact matrix (policy Appendix 4): descriptor rows in levels, impact
//! dimensions with a descriptor per row, and the figures that place some dimensions on a
//! row. The policy's matrix ships in `config/risk_matrix.toml`; an organisation may
//! replace it, and a matrix that does not validate is refused with what is wrong.

mod file;
mod score;

use std::{path::Path, time::Duration};

pub use score::{DimensionScore, Figures, Score};

const DEFAULT: &str = include_str!("../config/risk_matrix.toml");

/// The level of an impact. Routing follows it: high and medium to one list, low to
/// another (14.2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }

    pub fn to_wire(self) -> i32 {
        match self {
            Level::Low => custos_proto::classification::v1::ImpactLevel::Low,
            Level::Medium => custos_proto::classification::v1::ImpactLevel::Medium,
            Level::High => custos_proto::classification::v1::ImpactLevel::High,
        }
        .into()
    }

    /// Parses a wire value; unspecified and unknown values are errors.
    pub fn from_wire(n: i32) -> Result<Level, String> {
        use custos_proto::classification::v1::ImpactLevel;
        match ImpactLevel::try_from(n) {
            Ok(ImpactLevel::Low) => Ok(Level::Low),
            Ok(ImpactLevel::Medium) => Ok(Level::Medium),
            Ok(ImpactLevel::High) => Ok(Level::High),
            Ok(ImpactLevel::Unspecified) => Err("is required (LOW, MEDIUM or HIGH)".into()),
            Err(_) => Err(format!("unknown value {n} (LOW, MEDIUM or HIGH)")),
        }
    }
}

/// Stored as a small integer (levels are part of the schema: never renumber one).
impl custos_kit::storage::DbEnum for Level {
    const NAME: &'static str = "Level";

    fn to_db(self) -> i16 {
        match self {
            Level::Low => 1,
            Level::Medium => 2,
            Level::High => 3,
        }
    }

    fn from_db(n: i16) -> Option<Self> {
        match n {
            1 => Some(Level::Low),
            2 => Some(Level::Medium),
            3 => Some(Level::High),
            _ => None,
        }
    }
}

custos_kit::db_enum!(Level);

/// A measured quantity that places a dimension on a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// Estimated financial loss, money.
    FinancialLoss,
    /// Damages and fines, money.
    DamagesAndFines,
    /// People facing disciplinary action, a count.
    PeopleDisciplined,
    /// Systems gone at least the matrix's backup gap without a backup, a count.
    SystemsWithoutBackup,
}

impl Figure {
    pub const ALL: [Figure; 4] = [
        Figure::FinancialLoss,
        Figure::DamagesAndFines,
        Figure::PeopleDisciplined,
        Figure::SystemsWithoutBackup,
    ];

    /// Whether the figure is an amount of money (else a count).
    pub fn is_money(self) -> bool {
        matches!(self, Figure::FinancialLoss | Figure::DamagesAndFines)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Figure::FinancialLoss => "financial_loss",
            Figure::DamagesAndFines => "damages_and_fines",
            Figure::PeopleDisciplined => "people_disciplined",
            Figure::SystemsWithoutBackup => "systems_without_backup",
        }
    }
}

/// At most this many systems in one request's `systems_without_backup`.
pub const MAX_SYSTEMS: usize = 10_000;

/// Billionths of a currency unit in one unit (the precision of `google.type.Money`).
pub const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Where a row begins for a dimension's figure: whole currency units for money, or a
/// count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub value: i64,
    /// More than `value` (else at least `value`).
    pub exclusive: bool,
}

impl Bound {
    /// Whether a figure meets the bound. Money figures are in billionths of a unit.
    pub fn met_by(self, figure: i128, money: bool) -> bool {
        let value = i128::from(self.value) * if money { NANOS_PER_UNIT } else { 1 };
        if self.exclusive {
            figure > value
        } else {
            figure >= value
        }
    }

    /// The order of bounds: "at least N" < "more than N" < "at least N+1".
    fn key(self) -> (i64, bool) {
        (self.value, self.exclusive)
    }
}

/// One descriptor row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub code: String,
    pub display_name: String,
    pub level: Level,
}

/// One type of impact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    pub code: String,
    pub display_name: String,
    pub figure: Option<Figure>,
    /// One per row, in row order.
    pub descriptors: Vec<String>,
    /// One per row, in row order; only for a dimension with a figure.
    pub bounds: Vec<Option<Bound>>,
}

/// A validated risk impact matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskMatrix {
    pub display_name: String,
    /// ISO 4217 code of money bounds and money figures.
    pub currency: String,
    /// A system counts as without backup once it has gone this long without one.
    pub backup_gap: Duration,
    /// Digits of the currency's minor unit (ISO 4217 exponent: GBP 2, JPY 0): money
    /// figures are whole minor units.
    pub minor_unit_digits: u32,
    pub rows: Vec<Row>,
    pub dimensions: Vec<Dimension>,
}

impl RiskMatrix {
    /// The matrix of the policy's Appendix 4, shipped with custos.
    pub fn policy_default() -> Self {
        Self::parse(DEFAULT).expect("the shipped risk matrix is valid")
    }

    /// Reads and validates a matrix file; the error names the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates a matrix.
    pub fn parse(text: &str) -> Result<Self, String> {
        file::parse(text)
    }

    pub fn row_index(&self, code: &str) -> Option<usize> {
        self.rows.iter().position(|r| r.code == code)
    }

    pub fn dimension_index(&self, code: &str) -> Option<usize> {
        self.dimensions.iter().position(|d| d.code == code)
    }

    /// Whether any dimension is scored by `figure`.
    pub fn uses(&self, figure: Figure) -> bool {
        self.dimensions.iter().any(|d| d.figure == Some(figure))
    }

    /// Identifies the matrix by its content, the same from release to release: a digest of
    /// a versioned canonical text of every value that scoring or display uses.
    pub fn revision(&self) -> String {
        use sha2::{Digest, Sha256};
        use std::fmt::Write;
        let mut text = String::from("custos risk matrix v1\n");
        let mut field = |s: &str| {
            let _ = writeln!(text, "{}:{s}", s.len());
        };
        field(&self.display_name);
        field(&self.currency);
        field(&self.minor_unit_digits.to_string());
        field(&self.backup_gap.as_secs().to_string());
        for r in &self.rows {
            field(&r.code);
            field(&r.display_name);
            field(r.level.as_str());
        }
        for d in &self.dimensions {
            field(&d.code);
            field(&d.display_name);
            field(d.figure.map_or("", Figure::as_str));
            for (text, bound) in d.descriptors.iter().zip(&d.bounds) {
                field(text);
                field(&bound.map_or(String::new(), |b| format!("{}{}", b.value, b.exclusive)));
            }
        }
        let digest = Sha256::digest(text.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The codes of every row, for messages that list what is allowed.
    pub fn row_codes(&self) -> String {
        let codes: Vec<&str> = self.rows.iter().map(|r| r.code.as_str()).collect();
        codes.join(", ")
    }
}

#[cfg(test)]
mod tests;

//! The matrix file (TOML) and its validation: every way a replacement matrix can be wrong
//! is refused here, with the row or dimension named.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use serde::Deserialize;

use super::{Bound, Dimension, Figure, Level, RiskMatrix, Row};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    display_name: String,
    currency: String,
    backup_gap_days: Option<u32>,
    minor_unit_digits: Option<u32>,
    #[serde(default)]
    row: Vec<RowFile>,
    #[serde(default)]
    dimension: Vec<DimensionFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowFile {
    code: String,
    display_name: String,
    level: Level,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DimensionFile {
    code: String,
    display_name: String,
    figure: Option<Figure>,
    #[serde(default)]
    descriptors: BTreeMap<String, String>,
    #[serde(default)]
    bounds: BTreeMap<String, BoundFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoundFile {
    at_least: Option<i64>,
    more_than: Option<i64>,
}

/// At most this many rows, and this many dimensions: every refusal of a request lists
/// them, and must stay small.
const MOST: usize = 32;

/// Codes are what clients store and send: short, lowercase, stable.
fn check_code(what: &str, code: &str) -> Result<(), String> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && code.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} code `{code}` must be 1 to 64 characters of a-z, 0-9 and _, starting with a letter"
        ))
    }
}

pub(super) fn parse(text: &str) -> Result<RiskMatrix, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.display_name.trim().is_empty() {
        return Err("display_name is empty".into());
    }
    if file.currency.len() != 3 || !file.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "currency `{}` must be an ISO 4217 code such as GBP",
            file.currency
        ));
    }
    let minor_unit_digits = file.minor_unit_digits.unwrap_or(2);
    if minor_unit_digits > 4 {
        return Err(format!(
            "minor_unit_digits {minor_unit_digits} is not an ISO 4217 exponent (0 to 4; GBP 2)"
        ));
    }
    let backup_gap_days = file.backup_gap_days.unwrap_or(2);
    if backup_gap_days == 0 {
        return Err("backup_gap_days must be at least 1".into());
    }
    let rows = rows(file.row)?;
    if file.dimension.len() > MOST {
        return Err(format!("the matrix has more than {MOST} dimensions"));
    }
    if file.dimension.is_empty() {
        return Err("the matrix has no dimensions: add at least one [[dimension]]".into());
    }
    let mut seen = HashSet::new();
    let mut dimensions = Vec::with_capacity(file.dimension.len());
    for d in file.dimension {
        if !seen.insert(d.code.clone()) {
            return Err(format!("dimension `{}` appears twice", d.code));
        }
        let code = d.code.clone();
        dimensions.push(dimension(d, &rows).map_err(|e| format!("dimension `{code}`: {e}"))?);
    }
    Ok(RiskMatrix {
        display_name: file.display_name,
        currency: file.currency,
        backup_gap: Duration::from_secs(u64::from(backup_gap_days) * 86_400),
        minor_unit_digits,
        rows,
        dimensions,
    })
}

fn rows(files: Vec<RowFile>) -> Result<Vec<Row>, String> {
    if files.len() > MOST {
        return Err(format!("the matrix has more than {MOST} rows"));
    }
    if files.len() < 2 {
        return Err("the matrix needs at least two [[row]]s, lowest first".into());
    }
    let mut seen = HashSet::new();
    let mut rows: Vec<Row> = Vec::with_capacity(files.len());
    for r in files {
        check_code("row", &r.code)?;
        if !seen.insert(r.code.clone()) {
            return Err(format!("row `{}` appears twice", r.code));
        }
        if r.display_name.trim().is_empty() {
            return Err(format!("row `{}` has an empty display_name", r.code));
        }
        if let Some(before) = rows.last()
            && r.level < before.level
        {
            return Err(format!(
                "row `{}` is {} but follows `{}`, which is {}: rows go lowest first",
                r.code,
                r.level.as_str(),
                before.code,
                before.level.as_str()
            ));
        }
        rows.push(Row {
            code: r.code,
            display_name: r.display_name,
            level: r.level,
        });
    }
    Ok(rows)
}

fn dimension(d: DimensionFile, rows: &[Row]) -> Result<Dimension, String> {
    check_code("dimension", &d.code)?;
    if d.display_name.trim().is_empty() {
        return Err("display_name is empty".into());
    }
    for code in d.descriptors.keys().chain(d.bounds.keys()) {
        if !rows.iter().any(|r| &r.code == code) {
            return Err(format!(
                "`{code}` is not a row of the matrix (rows: {})",
                rows.iter()
                    .map(|r| r.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut descriptors = Vec::with_capacity(rows.len());
    for row in rows {
        match d.descriptors.get(&row.code) {
            Some(text) if !text.trim().is_empty() => descriptors.push(text.clone()),
            _ => return Err(format!("no descriptor for row `{}`", row.code)),
        }
    }
    let mut bounds = vec![None; rows.len()];
    match d.figure {
        None if !d.bounds.is_empty() => {
            return Err("has bounds but no figure to compare them with".into());
        }
        None => {}
        Some(figure) => {
            if d.bounds.is_empty() {
                return Err(format!(
                    "is scored by {} but has no bounds",
                    figure.as_str()
                ));
            }
            let mut last: Option<(&str, Bound)> = None;
            for (i, row) in rows.iter().enumerate() {
                let Some(b) = d.bounds.get(&row.code) else {
                    continue;
                };
                let bound = match (b.at_least, b.more_than) {
                    (Some(v), None) => Bound {
                        value: v,
                        exclusive: false,
                    },
                    (None, Some(v)) => Bound {
                        value: v,
                        exclusive: true,
                    },
                    _ => {
                        return Err(format!(
                            "bound of `{}` needs exactly one of at_least and more_than",
                            row.code
                        ));
                    }
                };
                if bound.value < 0 {
                    return Err(format!("bound of `{}` is negative", row.code));
                }
                // Counts arrive as int32 (and at most MAX_SYSTEMS systems): a bound no
                // figure can reach would be a row that silently never scores.
                let most = match figure {
                    Figure::SystemsWithoutBackup => super::MAX_SYSTEMS as i64,
                    Figure::PeopleDisciplined => i64::from(i32::MAX),
                    Figure::FinancialLoss | Figure::DamagesAndFines => i64::MAX / 2,
                };
                if !bound.met_by(i128::from(most), false) {
                    return Err(format!(
                        "bound of `{}` ({}) is beyond any {} a request can give (at most {most})",
                        row.code,
                        bound.value,
                        figure.as_str()
                    ));
                }
                if let Some((before, b)) = last
                    && bound.key() <= b.key()
                {
                    return Err(format!(
                        "bound of `{}` must be above the bound of `{before}`: bounds rise from row to row",
                        row.code
                    ));
                }
                last = Some((row.code.as_str(), bound));
                bounds[i] = Some(bound);
            }
        }
    }
    Ok(Dimension {
        code: d.code,
        display_name: d.display_name,
        figure: d.figure,
        descriptors,
        bounds,
    })
}

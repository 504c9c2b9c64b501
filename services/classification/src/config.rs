//! Classification's own settings, the `[classification]` section (the kit's sections come
//! with every service).

use std::path::PathBuf;

use custos_kit::config::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassificationSettings {
    /// Address of the intake service, whose event feed fills the triage queue, e.g.
    /// `http://custos-intake:50051`. Required.
    pub intake_url: Option<String>,
    /// A replacement for the policy's risk impact matrix (`config/risk_matrix.toml`
    /// shows the format).
    pub risk_matrix_file: Option<PathBuf>,
    /// A replacement for the shipped report taxonomy (`shared/taxonomy/taxonomy.toml`):
    /// the same file as intake's, since advisors assign its categories.
    pub taxonomy_file: Option<PathBuf>,
    /// Prefix of incident references, e.g. `INC` for `INC-2026-000042`.
    pub incident_reference_prefix: String,
    /// Reports submitted this many hours either side of a report, sharing an inventory
    /// number, a location or its category, are suggested as related (policy 6).
    pub related_window_hours: u32,
    /// This many open reports sharing an inventory number or a location, the report
    /// included, within the window flag a possible incident.
    pub possible_incident_threshold: u32,
    /// This many open reports of one category, the report included, within the window
    /// flag a possible incident.
    pub possible_incident_category_threshold: u32,
    /// The organisation's business services: the codes a service-affecting incident
    /// names (lower case letters, digits, hyphens and underscores), as business continuity
    /// knows them.
    pub business_services: Vec<String>,
    /// The categories an incident's costs are itemised in (codes as for business
    /// services).
    pub cost_categories: Vec<String>,
    /// How many items of the continuity broadcast (notices, and marks of how far the
    /// outbox was read) a live subscriber may fall behind before its stream is ended (it
    /// resumes from its cursor); each is shared by every subscriber.
    pub continuity_buffer: usize,
}

impl Default for ClassificationSettings {
    fn default() -> Self {
        Self {
            intake_url: None,
            risk_matrix_file: None,
            taxonomy_file: None,
            incident_reference_prefix: "INC".into(),
            related_window_hours: 72,
            possible_incident_threshold: 3,
            possible_incident_category_threshold: 10,
            business_services: [
                "email",
                "telephony",
                "website",
                "network",
                "finance",
                "payroll",
                "customer-services",
                "revenues-and-benefits",
                "social-care",
                "housing",
                "education",
                "waste-and-environment",
                "planning",
                "libraries",
            ]
            .map(String::from)
            .to_vec(),
            continuity_buffer: 4_096,
            cost_categories: [
                "staff_time",
                "external_services",
                "equipment",
                "recovery",
                "fines_and_penalties",
                "compensation",
                "lost_income",
                "other",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl ClassificationSettings {
    pub fn series(&self) -> crate::series::Series {
        crate::series::Series {
            window: time::Duration::hours(i64::from(self.related_window_hours)),
            threshold: self.possible_incident_threshold,
            category_threshold: self.possible_incident_category_threshold,
        }
    }
}

impl Validate for ClassificationSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match &self.intake_url {
            None => {
                return Err(ConfigError::invalid(
                    "classification.intake_url",
                    "is required: the address of the intake service, e.g. http://custos-intake:50051",
                ));
            }
            Some(url) => custos_kit::config::check_service_url("classification.intake_url", url)?,
        }
        if self.incident_reference_prefix.is_empty()
            || self.incident_reference_prefix.len() > 8
            || !self
                .incident_reference_prefix
                .chars()
                .all(|c| c.is_ascii_uppercase())
        {
            return Err(ConfigError::invalid(
                "classification.incident_reference_prefix",
                "must be 1 to 8 capital letters",
            ));
        }
        if !(1..=8_760).contains(&self.related_window_hours) {
            return Err(ConfigError::invalid(
                "classification.related_window_hours",
                "must be 1 to 8760 (a year)",
            ));
        }
        for (key, value) in [
            (
                "classification.possible_incident_threshold",
                self.possible_incident_threshold,
            ),
            (
                "classification.possible_incident_category_threshold",
                self.possible_incident_category_threshold,
            ),
        ] {
            if !(2..=1_000).contains(&value) {
                return Err(ConfigError::invalid(key, "must be 2 to 1000"));
            }
        }
        if !(16..=1_000_000).contains(&self.continuity_buffer) {
            return Err(ConfigError::invalid(
                "classification.continuity_buffer",
                "must be 16 to 1000000",
            ));
        }
        for (key, codes) in [
            ("classification.business_services", &self.business_services),
            ("classification.cost_categories", &self.cost_categories),
        ] {
            check_codes(key, codes)?;
        }
        if let Some(path) = &self.taxonomy_file {
            custos_taxonomy::Taxonomy::load(path)
                .map_err(|e| ConfigError::invalid("classification.taxonomy_file", e))?;
        }
        if let Some(path) = &self.risk_matrix_file {
            crate::matrix::RiskMatrix::load(path)
                .map_err(|e| ConfigError::invalid("classification.risk_matrix_file", e))?;
        }
        Ok(())
    }
}

/// A configured list of codes: 1 to 500, each 1 to 64 lower case letters, digits, hyphens
/// or underscores, none twice.
fn check_codes(key: &str, codes: &[String]) -> Result<(), ConfigError> {
    if codes.is_empty() || codes.len() > 500 {
        return Err(ConfigError::invalid(key, "must list 1 to 500 codes"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for code in codes {
        let well_formed = (1..=64).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "`{code}` is not a code: 1 to 64 lower case letters, digits, hyphens and \
                     underscores"
                ),
            ));
        }
        if !seen.insert(code) {
            return Err(ConfigError::invalid(
                key,
                format!("`{code}` is listed twice"),
            ));
        }
    }
    Ok(())
}

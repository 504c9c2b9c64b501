//! Classification's own settings, the `[classification]` section (the kit's sections come
//! with every service).

use std::path::PathBuf;

use custos_kit::config::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassificationSettings {
    /// A replacement for the policy's risk impact matrix (`config/risk_matrix.toml`
    /// shows the format).
    pub risk_matrix_file: Option<PathBuf>,
}

impl Validate for ClassificationSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.risk_matrix_file {
            crate::matrix::RiskMatrix::load(path)
                .map_err(|e| ConfigError::invalid("classification.risk_matrix_file", e))?;
        }
        Ok(())
    }
}

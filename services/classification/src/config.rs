//! Classification's own settings, the `[classification]` section (the kit's sections come
//! with every service).

use std::path::PathBuf;

use custos_kit::config::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassificationSettings {
    /// Address of the intake service, whose event feed fills the triage queue, e.g.
    /// `http://custos-intake:50051`. Required.
    pub intake_url: Option<String>,
    /// A replacement for the policy's risk impact matrix (`config/risk_matrix.toml`
    /// shows the format).
    pub risk_matrix_file: Option<PathBuf>,
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
            Some(url) => {
                url.parse::<tonic::transport::Uri>()
                    .ok()
                    .filter(|u| u.scheme_str() == Some("http") && u.host().is_some())
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "classification.intake_url",
                            format!(
                                "`{url}` is not an http:// address (services talk h2c inside \
                                 the cluster)"
                            ),
                        )
                    })?;
            }
        }
        if let Some(path) = &self.risk_matrix_file {
            crate::matrix::RiskMatrix::load(path)
                .map_err(|e| ConfigError::invalid("classification.risk_matrix_file", e))?;
        }
        Ok(())
    }
}

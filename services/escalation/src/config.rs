//! Escalation's own settings, the `[escalation]` section (the kit's sections come with
//! every service).

use custos_kit::config::{ConfigError, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscalationSettings {}

impl Validate for EscalationSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}
